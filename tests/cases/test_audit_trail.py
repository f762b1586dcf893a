"""The audit trail (state history, case notes, calls to Align, events from Align) is
never rewritten or deleted: not in the admin, not through the models, and on PostgreSQL
not even by raw SQL on the state history table."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, CaseAsset, CaseNote
from align_workflow.cases.records import RecordIsImmutable
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow import fire
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff):
    staff.is_superuser = True
    staff.save()
    client = Client()
    client.force_login(staff)
    return client


def shipped_case():
    case = make_case(state=wf.ACCEPTED)
    fire(case, "ship", by=None, carrier="UPS", tracking_number="1Z")
    return case


def an_attempt(case):
    return OutboundAttempt.objects.create(
        case=case,
        step="create_patient",
        idempotency_key="k-1",
        attempt=1,
        status=OutboundAttempt.Status.IN_FLIGHT,
        params={"x": 1},
    )


def an_event(case):
    return InboundEvent.objects.create(
        event_id="evt-audit",
        type="case.status_changed",
        case=case,
        summary="status SHIPPED",
        payload={"a": 1},
        raw_body="{}",
        occurred_at=timezone.now(),
    )


# --- the models ---------------------------------------------------------------------


def test_a_case_note_is_never_changed_or_deleted():
    note = CaseNote.objects.create(case=make_case(), text="Align accepted Create Patient.")
    note.text = "Nothing happened."
    with pytest.raises(RecordIsImmutable):
        note.save()
    with pytest.raises(RecordIsImmutable):
        CaseNote.objects.filter(pk=note.pk).update(text="Nothing happened.")
    with pytest.raises(RecordIsImmutable):
        CaseNote.objects.get(pk=note.pk).delete()
    with pytest.raises(RecordIsImmutable):
        CaseNote.objects.filter(pk=note.pk).delete()
    assert CaseNote.objects.get(pk=note.pk).text == "Align accepted Create Patient."


def test_a_state_history_row_is_never_changed_or_deleted(local_effects_only):
    case = shipped_case()
    log = StateLog.objects.for_(case).get()
    log.state = wf.CANCELLED
    with pytest.raises(RecordIsImmutable):
        log.save()
    with pytest.raises(RecordIsImmutable):
        StateLog.objects.filter(pk=log.pk).update(state=wf.CANCELLED)
    with pytest.raises(RecordIsImmutable):
        StateLog.objects.get(pk=log.pk).delete()
    with pytest.raises(RecordIsImmutable):
        StateLog.objects.for_(case).delete()
    assert StateLog.objects.get(pk=log.pk).state == wf.SHIPPING


def test_an_attempt_s_record_is_fixed_and_only_its_progress_moves():
    attempt = an_attempt(make_case())
    # The lifecycle: what the engine writes as the call goes out and is answered.
    OutboundAttempt.objects.filter(pk=attempt.pk).update(
        status=OutboundAttempt.Status.FAILED_RETRYABLE, http_status=503, next_retry_at=timezone.now()
    )
    attempt = OutboundAttempt.objects.get(pk=attempt.pk)
    attempt.status, attempt.message = OutboundAttempt.Status.SUCCEEDED, "ok"
    attempt.save()
    assert OutboundAttempt.objects.get(pk=attempt.pk).status == OutboundAttempt.Status.SUCCEEDED
    # The record: which call it was.
    for field, value in [
        ("idempotency_key", "k-2"),
        ("step", "create_order"),
        ("attempt", 2),
        ("params", {"x": 2}),
        ("by", None),
    ]:
        if field == "by":
            continue
        with pytest.raises(RecordIsImmutable):
            OutboundAttempt.objects.filter(pk=attempt.pk).update(**{field: value})
        fresh = OutboundAttempt.objects.get(pk=attempt.pk)
        setattr(fresh, field, value)
        with pytest.raises(RecordIsImmutable):
            fresh.save()
    with pytest.raises(RecordIsImmutable):
        attempt.save(update_fields=["idempotency_key", "status"])
    with pytest.raises(RecordIsImmutable):
        attempt.delete()
    with pytest.raises(RecordIsImmutable):
        OutboundAttempt.objects.all().delete()
    stored = OutboundAttempt.objects.get(pk=attempt.pk)
    assert (stored.idempotency_key, stored.step, stored.attempt, stored.params) == (
        "k-1",
        "create_patient",
        1,
        {"x": 1},
    )


def test_an_event_s_record_is_fixed_and_only_its_outcome_moves():
    event = an_event(make_case())
    event.status, event.attempts = InboundEvent.Status.APPLIED, 1
    event.save()
    InboundEvent.objects.filter(pk=event.pk).update(status_detail="done")
    for field, value in [
        ("payload", {"a": 2}),
        ("raw_body", "{}x"),
        ("event_id", "evt-other"),
        ("occurred_at", timezone.now()),
        ("received_at", timezone.now()),
        ("type", "x"),
    ]:
        with pytest.raises(RecordIsImmutable):
            InboundEvent.objects.filter(pk=event.pk).update(**{field: value})
        fresh = InboundEvent.objects.get(pk=event.pk)
        setattr(fresh, field, value)
        with pytest.raises(RecordIsImmutable):
            fresh.save()
    with pytest.raises(RecordIsImmutable):
        InboundEvent.objects.filter(pk=event.pk).delete()
    stored = InboundEvent.objects.get(pk=event.pk)
    assert (stored.payload, stored.status, stored.status_detail) == ({"a": 1}, "applied", "done")


def test_a_case_with_history_cannot_be_deleted_but_a_fresh_one_can(local_effects_only):
    logged = shipped_case()
    noted = make_case()
    CaseNote.objects.create(case=noted, text="Patient gender corrected.")
    called, told = make_case(), make_case()
    an_attempt(called)
    an_event(told)
    for case in (logged, noted, called, told):
        with pytest.raises(RecordIsImmutable):
            Case.objects.get(pk=case.pk).delete()
        with pytest.raises(RecordIsImmutable):
            Case.objects.filter(pk=case.pk).delete()
        assert Case.objects.filter(pk=case.pk).exists()
    fresh = make_case()
    Case.objects.get(pk=fresh.pk).delete()
    assert not Case.objects.filter(pk=fresh.pk).exists()


@pytest.mark.postgres
def test_postgres_refuses_raw_update_and_delete_of_the_state_history(require_postgres, local_effects_only):
    case = shipped_case()
    log = StateLog.objects.for_(case).get()
    table = StateLog._meta.db_table
    for sql in (f"UPDATE {table} SET state = 'cancelled' WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [log.pk])
    assert StateLog.objects.get(pk=log.pk).state == wf.SHIPPING
    # Inserting is what the engine does: still allowed.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (timestamp, source_state, state, transition, content_type_id, "
            f"object_id) SELECT timestamp, state, state, 'noop', content_type_id, object_id FROM {table} "
            "WHERE id = %s",
            [log.pk],
        )
    assert StateLog.objects.for_(case).count() == 2


# --- the admin -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["statelog", "casenote", "outboundattempt", "inboundevent"])
def test_the_admin_only_shows_the_audit_trail(admin, model, local_effects_only):
    case = shipped_case()
    rows = {
        "statelog": ("django_fsm_log", StateLog.objects.for_(case).get()),
        "casenote": ("cases", CaseNote.objects.create(case=case, text="A note.")),
        "outboundattempt": ("workflow", an_attempt(case)),
        "inboundevent": ("integration", an_event(case)),
    }
    app, row = rows[model]
    base = f"/admin/{app}/{model}/"
    listing = admin.get(base)
    assert listing.status_code == 200
    assert "delete_selected" not in listing.content.decode()
    assert admin.get(f"{base}add/").status_code == 403
    assert admin.get(f"{base}{row.pk}/delete/").status_code == 403
    view = admin.get(f"{base}{row.pk}/change/")
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()
    assert admin.post(f"{base}{row.pk}/change/", {"text": "changed", "state": "cancelled"}).status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()


def test_the_admin_lists_every_state_change_filterable_and_searchable(admin, local_effects_only):
    shipped = shipped_case()
    other = make_case(case_number="OTHER-77", state=wf.ORDER_CREATED)
    fire(other, "cancel", by=None, reason="Clinic closed")
    page = admin.get("/admin/django_fsm_log/statelog/")
    assert page.status_code == 200
    assert {r.pk for r in page.context["cl"].result_list} == set(StateLog.objects.values_list("pk", flat=True))
    html = page.content.decode()
    assert shipped.case_number in html and "OTHER-77" in html
    filtered = admin.get("/admin/django_fsm_log/statelog/", {"transition": "cancel"})
    assert [r.transition for r in filtered.context["cl"].result_list] == ["cancel"]
    found = admin.get("/admin/django_fsm_log/statelog/", {"q": "OTHER-77"})
    assert [r.object_id for r in found.context["cl"].result_list] == [other.pk]


def test_the_admin_cannot_delete_a_case_with_history(admin, local_effects_only):
    case = shipped_case()
    assert admin.get(f"/admin/cases/case/{case.pk}/delete/").status_code == 403
    assert admin.post(f"/admin/cases/case/{case.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = admin.get("/admin/cases/case/")
    assert "delete_selected" not in listing.content.decode()
    assert Case.objects.filter(pk=case.pk).exists()


def test_the_admin_shows_assets_and_the_purchase_time_read_only(admin):
    case = make_case(state=wf.PROVIDER_APPROVED)
    page = admin.get(f"/admin/cases/case/{case.pk}/change/")
    form = page.context["adminform"].form
    assert "aligners_purchased_at" not in form.fields
    assert "aligners_purchased_at" in [
        f
        for fs in page.context["adminform"]
        for line in fs
        for f in [field.field["name"] if isinstance(field.field, dict) else field.field.name for field in line]
    ]
    formsets = {fs.opts.model: fs for fs in page.context["inline_admin_formsets"]}
    assets = formsets[CaseAsset]
    assert not assets.has_add_permission and not assets.has_change_permission and not assets.has_delete_permission
    before = list(CaseAsset.objects.filter(case=case).values_list("pk", "filename", "removed"))
    admin.post(
        f"/admin/cases/case/{case.pk}/change/",
        {"case_number": case.case_number, "aligners_purchased_at_0": "2020-01-01", "aligners_purchased_at_1": "10:00"},
    )
    assert Case.objects.get(pk=case.pk).aligners_purchased_at is None
    assert list(CaseAsset.objects.filter(case=case).values_list("pk", "filename", "removed")) == before


def test_the_admin_cancel_asks_for_a_reason(admin, staff):
    case = make_case(state=wf.ORDER_CREATED)
    asked = admin.post("/admin/cases/case/", {"action": "cancel_cases", "_selected_action": [case.pk]})
    assert asked.status_code == 200
    assert 'name="reason"' in asked.content.decode()
    assert Case.objects.get(pk=case.pk).state == wf.ORDER_CREATED
    blank = admin.post(
        "/admin/cases/case/", {"action": "cancel_cases", "_selected_action": [case.pk], "apply": "1", "reason": "   "}
    )
    assert blank.status_code == 200
    assert "A reason is required" in blank.content.decode()
    assert Case.objects.get(pk=case.pk).state == wf.ORDER_CREATED
    done = admin.post(
        "/admin/cases/case/",
        {"action": "cancel_cases", "_selected_action": [case.pk], "apply": "1", "reason": "Patient moved abroad"},
        follow=True,
    )
    assert done.status_code == 200
    case = Case.objects.get(pk=case.pk)
    assert case.state == wf.CANCELLED
    assert case.cancel_reason == "Patient moved abroad"
    assert StateLog.objects.for_(case).get().by == staff


def test_a_user_named_in_the_history_is_not_deleted_from_the_admin(admin, staff):
    from tests.support.factories import UserFactory

    case = make_case(state=wf.ORDER_CREATED)
    fire(case, "cancel", by=staff, reason="Clinic closed")
    assert admin.get(f"/admin/auth/user/{staff.pk}/delete/").status_code == 403
    unused = UserFactory()
    assert admin.get(f"/admin/auth/user/{unused.pk}/delete/").status_code == 200
    assert StateLog.objects.for_(case).get().by == staff
