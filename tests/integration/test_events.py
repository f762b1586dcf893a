"""POST /api/align/events end to end: one fixture per event type, delivered through the
Django test client with real signatures, and what each does to the case."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import QuerySet
from django_fsm_log.models import StateLog

from align_workflow.cases.models import AlignOrder, Case, CaseAsset, TreatmentPlan
from align_workflow.integration import events
from align_workflow.integration.models import AlignCaseStatus, InboundEvent
from align_workflow.workflow import TransitionNotAllowed, fire
from states import align_case as wf
from tests.support.deliveries import deliver, encode, make_event, post, row_counts, svix_headers
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes):
    return T0 + timedelta(minutes=minutes)


def ok(response):
    assert response.status_code == 200, response.content
    return response.json()


def plan_event(case, version=1, minutes=0, **data):
    return make_event(
        "treatment_plan.submitted",
        case,
        occurred_at=at(minutes),
        version=version,
        treatmentPlanId=f"TP-{case.pk}-{version}",
        **data,
    )


def status_event(case, status, minutes=0, **data):
    data.setdefault("shipment", None)
    return make_event("case.status_changed", case, occurred_at=at(minutes), status=status, **data)


def shipped_event(case, minutes=0):
    return make_event("case.status_changed", case, occurred_at=at(minutes))


def stored(payload):
    return InboundEvent.objects.get(event_id=payload["event_id"])


# --- One fixture per event type ---------------------------------------------------------


def test_sales_order_created(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = make_event("sales_order.created", case)
    body = ok(deliver(client, payload))

    assert body == {
        "event_id": payload["event_id"],
        "status": "applied",
        "duplicate": False,
        "detail": "Sales order SO-100001 (PRIMARY) recorded.",
    }
    order = AlignOrder.objects.get()
    assert (order.case, order.sales_order_number, order.order_kind, order.order_type, order.p_id) == (
        case,
        "SO-100001",
        "PRIMARY",
        "IAS",
        "P0001234",
    )
    assert order.align_created_at == datetime(2026, 3, 2, 9, 14, 58, tzinfo=UTC)
    assert (case.align_sales_order_number, case.align_patient_id) == ("SO-100001", "P0001234")
    event = stored(payload)
    assert (event.type, event.case, event.status, event.attempts) == ("sales_order.created", case, "applied", 1)
    assert event.raw_body == encode(payload).decode()
    assert event.payload == payload
    assert event.summary == "sales order SO-100001 (PRIMARY)"
    assert Case.objects.get(pk=case.pk).state == wf.ASSETS_UPLOADED  # no state change


def test_treatment_plan_submitted(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = make_event("treatment_plan.submitted", case)
    assert ok(deliver(client, payload))["status"] == "applied"

    case.refresh_from_db()
    assert case.state == wf.PLAN_RECEIVED
    plan = TreatmentPlan.objects.get(case=case)
    assert (plan.plan_id, plan.version, plan.revision_of, plan.sales_order_number) == ("TP-500001", 1, "", "SO-100001")
    assert (plan.stages_upper, plan.stages_lower, plan.attachments, plan.ipr) == (14, 12, False, False)
    assert plan.notes == "Mild crowding, upper and lower arches."
    preview = plan.preview
    assert (preview.kind, preview.case, preview.filename, preview.size) == (
        CaseAsset.Kind.PROVPREV,
        case,
        "preview.mp4",
        482133,
    )
    assert preview.url == "https://align.example.com/previews/TP-500001/preview.mp4"
    assert preview.sha256 == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    log = StateLog.objects.for_(case).get()
    assert (log.source_state, log.state, log.transition, log.by) == (
        wf.ASSETS_UPLOADED,
        wf.PLAN_RECEIVED,
        "receive_plan",
        None,
    )
    assert log.description == "Plan TP-500001 version 1 received"


def test_case_status_changed_shipped(client):
    case = make_case(state=wf.ACCEPTED)
    payload = make_event("case.status_changed", case)
    assert ok(deliver(client, payload))["status"] == "applied"

    case.refresh_from_db()
    assert case.state == wf.SHIPPING
    assert (case.carrier, case.tracking_number) == ("UPS", "1Z999AA10123456784")
    assert case.shipped_at == datetime(2026, 3, 20, 15, 58, tzinfo=UTC)
    known = AlignCaseStatus.objects.get(case=case)
    assert (known.status, known.previous_status, known.furthest_status, known.event) == (
        "SHIPPED",
        "IN_MANUFACTURING",
        "SHIPPED",
        stored(payload),
    )
    assert StateLog.objects.for_(case).get().transition == "ship"


def test_case_status_changed_cancelled_with_the_reason(client):
    case = make_case(state=wf.PLAN_RECEIVED)
    ok(deliver(client, status_event(case, "CANCELLED", reason="Patient declined treatment")))
    case.refresh_from_db()
    assert (case.state, case.cancel_reason) == (wf.CANCELLED, "Patient declined treatment")
    log = StateLog.objects.for_(case).get()
    assert (log.transition, log.by) == ("cancel", None)


def test_cancelled_without_a_reason_still_cancels(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    ok(deliver(client, status_event(case, "CANCELLED")))
    case.refresh_from_db()
    assert case.state == wf.CANCELLED
    assert "no reason given" in case.cancel_reason


@pytest.mark.parametrize(
    "status",
    [
        "RECEIVED",
        "SETUP_IN_PROGRESS",
        "CLINCHECK_READY",
        "APPROVED",
        "IN_MANUFACTURING",
        "ON_HOLD",
        "MODIFICATION_REQUESTED",
    ],
)
def test_other_statuses_are_recorded_without_a_state_change(client, status):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = status_event(case, status, reason="Waiting for records" if status == "ON_HOLD" else None)
    body = ok(deliver(client, payload))
    assert body["status"] == "applied"
    assert body["detail"] == f"Align status {status} recorded."
    assert AlignCaseStatus.objects.get(case=case).status == status
    assert Case.objects.get(pk=case.pk).state == wf.ASSETS_UPLOADED
    assert not StateLog.objects.for_(case).exists()


# --- Repeats ----------------------------------------------------------------------------


def test_a_repeated_event_id_answers_200_and_changes_nothing(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = make_event("treatment_plan.submitted", case)
    ok(deliver(client, payload))
    before = row_counts()
    event_before = InboundEvent.objects.values().get()

    again = ok(deliver(client, payload))
    assert (again["status"], again["duplicate"]) == ("applied", True)
    assert row_counts() == before
    assert InboundEvent.objects.values().get() == event_before


def test_a_repeat_may_carry_a_different_body_and_still_changes_nothing(client):
    # The id is what identifies an event; the service re-signs each attempt.
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = make_event("sales_order.created", case)
    ok(deliver(client, payload))
    ok(deliver(client, {**payload, "data": {**payload["data"], "salesOrderNumber": "SO-OTHER"}}))
    assert list(AlignOrder.objects.values_list("sales_order_number", flat=True)) == ["SO-100001"]


def test_a_sales_order_number_is_never_stored_twice(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    ok(deliver(client, make_event("sales_order.created", case)))
    second = ok(deliver(client, make_event("sales_order.created", case, orderType="CHANGED")))
    assert second["status"] == "ignored"
    assert "already recorded" in second["detail"]
    assert AlignOrder.objects.get().order_type == "IAS"  # never updated in place


def test_a_sales_order_number_of_another_case_is_not_moved(client):
    first, second = make_case(state=wf.ASSETS_UPLOADED), make_case(state=wf.ASSETS_UPLOADED)
    ok(deliver(client, make_event("sales_order.created", first)))
    body = ok(deliver(client, make_event("sales_order.created", second)))
    assert body["status"] == "ignored"
    assert f"already recorded for case {first.pk}" in body["detail"]
    assert AlignOrder.objects.get().case == first


def test_the_newest_primary_order_counts_whatever_the_arrival_order(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    Case.objects.filter(pk=case.pk).update(align_pid="P-FROM-CREATE")
    case.refresh_from_db()
    assert (case.align_sales_order_number, case.align_patient_id) == ("", "P-FROM-CREATE")
    newer = make_event(
        "sales_order.created", case, salesOrderNumber="SO-2", pId="P-2", createdAt="2026-05-01T00:00:00Z"
    )
    older = make_event(
        "sales_order.created", case, salesOrderNumber="SO-1", pId="P-1", createdAt="2026-04-01T00:00:00Z"
    )
    secondary = make_event(
        "sales_order.created",
        case,
        salesOrderNumber="SO-3",
        pId="P-3",
        orderKind="SECONDARY",
        createdAt="2026-06-01T00:00:00Z",
    )
    for payload in (newer, secondary, older):
        ok(deliver(client, payload))
    assert AlignOrder.objects.filter(case=case).count() == 3
    assert (case.align_sales_order_number, case.align_patient_id) == ("SO-2", "P-2")


# --- Plans ------------------------------------------------------------------------------


def test_a_newer_plan_replaces_the_pending_one(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    ok(deliver(client, plan_event(case, 1)))
    body = ok(deliver(client, plan_event(case, 2, minutes=5, revisionOf=f"TP-{case.pk}-1")))
    assert body["status"] == "applied"
    case.refresh_from_db()
    assert case.state == wf.PLAN_RECEIVED
    current = case.treatment_plans.first()
    assert (current.version, current.revision_of) == (2, f"TP-{case.pk}-1")
    assert [log.transition for log in StateLog.objects.for_(case)] == ["receive_plan", "receive_plan"]


def test_a_new_version_after_a_revision_request_brings_the_case_back(client):
    case = make_case(state=wf.REVISION_REQUESTED)
    TreatmentPlan.objects.create(case=case, plan_id="TP-old", version=1)
    ok(deliver(client, plan_event(case, 2)))
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED


def test_a_plan_refused_while_a_call_holds_the_case_applies_when_the_failed_call_lets_go(
    client, django_capture_on_commit_callbacks
):
    from django.utils import timezone as django_tz

    from align_workflow.workflow.engine import _release

    case = make_case(state=wf.PLAN_RECEIVED)
    TreatmentPlan.objects.create(case=case, plan_id=f"TP-{case.pk}-1", version=1)
    Case.objects.filter(pk=case.pk).update(
        busy_with="request_revision", busy_until=django_tz.now() + timedelta(minutes=1)
    )
    payload = plan_event(case, 2, minutes=5)
    assert ok(deliver(client, payload))["status"] == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        _release(Case.objects.get(pk=case.pk), "request_revision")  # what the engine does when a call fails
    assert stored(payload).status == InboundEvent.Status.APPLIED
    assert case.treatment_plans.first().version == 2


def test_an_older_version_is_recorded_and_otherwise_ignored(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    ok(deliver(client, plan_event(case, 2, minutes=5)))
    body = ok(deliver(client, plan_event(case, 1)))
    assert body["status"] == "ignored"
    assert "not newer than version 2" in body["detail"]
    assert sorted(case.treatment_plans.values_list("version", flat=True)) == [1, 2]
    assert case.treatment_plans.first().version == 2
    assert StateLog.objects.for_(case).count() == 1


def test_the_same_version_again_is_ignored(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    ok(deliver(client, plan_event(case, 1)))
    body = ok(deliver(client, plan_event(case, 1, notes="resent")))
    assert body["status"] == "ignored"
    assert TreatmentPlan.objects.filter(case=case).count() == 1
    assert CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.PROVPREV).count() == 1


@pytest.mark.parametrize("state", [wf.CANCELLED, wf.SHIPPING, wf.PROVIDER_APPROVED, wf.ACCEPTED])
def test_a_plan_the_case_can_never_take_is_ignored_with_the_reason(client, state):
    """Ignored for the workflow, but stored for the record, as it is when it arrives before
    the case moved on: the records must not depend on the delivery order."""
    case = make_case(state=state)
    body = ok(deliver(client, plan_event(case)))
    assert body["status"] == "ignored"
    assert body["detail"].startswith(f"Can never apply: the case is {state.replace('_', ' ')}")
    assert body["detail"].endswith("Stored for the record; the case is unchanged.")
    assert list(TreatmentPlan.objects.filter(case=case).values_list("version", flat=True)) == [1]
    assert ok(deliver(client, plan_event(case, minutes=1)))["detail"].endswith("Version 1 is already stored.")
    assert TreatmentPlan.objects.filter(case=case).count() == 1
    assert Case.objects.get(pk=case.pk).state == state


def test_receive_plan_needs_a_plan(local_effects_only):
    case = make_case(state=wf.ASSETS_UPLOADED)
    with pytest.raises(TransitionNotAllowed, match="treatment plan") as refused:
        fire(case, "receive_plan", by=None)
    assert refused.value.code == "invalid_input"


# --- Align's status order -----------------------------------------------------------------


def test_a_status_older_than_the_known_one_is_recorded_and_ignored(client):
    case = make_case(state=wf.ACCEPTED)
    ok(deliver(client, shipped_event(case, minutes=10)))
    late = status_event(case, "IN_MANUFACTURING", minutes=5)
    body = ok(deliver(client, late))
    assert body["status"] == "ignored"
    assert "before SHIPPED" in body["detail"]
    assert stored(late).payload["data"]["status"] == "IN_MANUFACTURING"  # recorded
    assert AlignCaseStatus.objects.get(case=case).status == "SHIPPED"


def test_a_status_behind_in_align_order_is_stale_even_with_a_later_timestamp(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    ok(deliver(client, status_event(case, "APPROVED", minutes=10)))
    body = ok(deliver(client, status_event(case, "CLINCHECK_READY", minutes=20)))
    assert body["status"] == "ignored"
    assert "comes before APPROVED" in body["detail"]


def test_the_setup_steps_repeat_after_a_modification_request(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    for minutes, status in enumerate(
        ["CLINCHECK_READY", "MODIFICATION_REQUESTED", "SETUP_IN_PROGRESS", "CLINCHECK_READY"]
    ):
        assert ok(deliver(client, status_event(case, status, minutes=minutes)))["status"] == "applied"
    assert ok(deliver(client, status_event(case, "SETUP_IN_PROGRESS", minutes=2)))["status"] == "ignored"
    known = AlignCaseStatus.objects.get(case=case)
    assert (known.status, known.occurred_at) == ("CLINCHECK_READY", at(3))


def test_on_hold_is_recorded_whenever_it_comes(client):
    case = make_case(state=wf.ACCEPTED)
    ok(deliver(client, status_event(case, "IN_MANUFACTURING", minutes=1)))
    ok(deliver(client, status_event(case, "ON_HOLD", minutes=2, reason="Payment")))
    known = AlignCaseStatus.objects.get(case=case)
    assert (known.status, known.furthest_status) == ("ON_HOLD", "IN_MANUFACTURING")
    assert ok(deliver(client, status_event(case, "APPROVED", minutes=3)))["status"] == "ignored"


def test_shipped_twice_is_ignored_the_second_time(client):
    case = make_case(state=wf.ACCEPTED)
    ok(deliver(client, shipped_event(case, minutes=1)))
    body = ok(deliver(client, shipped_event(case, minutes=2)))
    assert body["status"] == "ignored"
    assert "Can never apply: the case is shipping" in body["detail"]
    assert StateLog.objects.for_(case).count() == 1


# --- Early events wait ----------------------------------------------------------------------


@pytest.fixture
def commit_hooks(django_capture_on_commit_callbacks):
    """Run what the engine does after commit (the test transaction never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_a_plan_before_the_assets_waits_and_applies_when_the_case_is_ready(
    client, staff, flags_on, local_effects_only, commit_hooks
):
    case = make_case(state=wf.ORDER_CREATED)
    payload = plan_event(case)
    body = ok(deliver(client, payload))
    assert body["status"] == "pending"
    assert "Waiting for the case to reach" in body["detail"]
    assert not TreatmentPlan.objects.exists()

    with commit_hooks():
        fire(case, "upload_assets", by=staff)
    case.refresh_from_db()
    assert case.state == wf.PLAN_RECEIVED
    event = stored(payload)
    assert (event.status, event.attempts) == ("applied", 2)
    assert event.applied_at is not None
    assert [log.transition for log in StateLog.objects.for_(case).order_by("id")] == ["upload_assets", "receive_plan"]


def test_shipped_before_accepted_waits_and_ships_on_acceptance(
    client, staff, flags_on, local_effects_only, commit_hooks
):
    case = make_case(state=wf.PROVIDER_APPROVED)
    payload = shipped_event(case)
    assert ok(deliver(client, payload))["status"] == "pending"
    assert AlignCaseStatus.objects.get(case=case).status == "SHIPPED"  # known at once

    with commit_hooks():
        fire(case, "accept_clincheck", by=staff)
    case.refresh_from_db()
    assert (case.state, case.tracking_number) == (wf.SHIPPING, "1Z999AA10123456784")
    assert stored(payload).status == "applied"


def test_pending_events_apply_in_the_order_they_happened(client, staff, flags_on, local_effects_only, commit_hooks):
    case = make_case(state=wf.ORDER_CREATED)
    v2, v1 = plan_event(case, 2, minutes=9), plan_event(case, 1, minutes=1)
    for payload in (v2, v1):
        assert ok(deliver(client, payload))["status"] == "pending"
    with commit_hooks():
        fire(case, "upload_assets", by=staff)
    assert (stored(v1).status, stored(v2).status) == ("applied", "applied")
    descriptions = [log.description for log in StateLog.objects.for_(case).order_by("id")][1:]
    assert descriptions == [f"Plan TP-{case.pk}-1 version 1 received", f"Plan TP-{case.pk}-2 version 2 received"]
    assert Case.objects.get(pk=case.pk).treatment_plans.first().version == 2


def test_a_pending_event_that_can_no_longer_apply_becomes_ignored(client, staff, commit_hooks):
    case = make_case(state=wf.PLAN_RECEIVED)
    payload = shipped_event(case)
    assert ok(deliver(client, payload))["status"] == "pending"
    with commit_hooks():
        fire(case, "cancel", by=staff, reason="Patient moved away")
    event = stored(payload)
    assert event.status == "ignored"
    assert "Can never apply: the case is cancelled" in event.status_detail


def test_a_pending_event_waits_while_an_outbound_call_holds_the_case(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    Case.objects.filter(pk=case.pk).update(
        busy_with="upload_assets", busy_until=datetime.now(tz=UTC) + timedelta(minutes=1)
    )
    body = ok(deliver(client, plan_event(case)))
    assert body["status"] == "pending"
    assert "already being sent" in body["detail"]


def test_an_unrelated_transition_leaves_pending_events_pending(
    client, staff, flags_on, local_effects_only, commit_hooks
):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = shipped_event(case)
    ok(deliver(client, payload))
    with commit_hooks():
        fire(case, "receive_plan", by=None, plan={"plan_id": "TP-x", "version": 1})
    event = stored(payload)
    assert (event.status, event.attempts) == ("pending", 2)


def test_a_failing_pending_apply_never_breaks_the_transition_that_triggered_it(monkeypatch, staff, commit_hooks):
    case = make_case(state=wf.ORDER_CREATED)

    def broken(case_id):
        raise RuntimeError("database went away")

    monkeypatch.setattr(events, "apply_pending", broken)
    with commit_hooks():
        fire(case, "cancel", by=staff, reason="Patient moved away")
    assert Case.objects.get(pk=case.pk).state == wf.CANCELLED


# --- Needs attention ---------------------------------------------------------------------


def test_pending_too_long_or_failed_needs_attention(client, settings):
    settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS = 3600
    case = make_case(state=wf.ORDER_CREATED)
    old, fresh = plan_event(case, 1), plan_event(case, 2)
    ok(deliver(client, old))
    ok(deliver(client, fresh))
    applied = make_event("sales_order.created", case)
    ok(deliver(client, applied))
    # Test setup: age the rows. The app never rewrites received_at (cases/records.py),
    # so the base QuerySet.update is called past the model's guard.
    QuerySet.update(
        InboundEvent.objects.filter(event_id__in=[old["event_id"], applied["event_id"]]),
        received_at=datetime.now(tz=UTC) - timedelta(seconds=3601),
    )
    failed = make_case(state=wf.ORDER_CREATED)
    broken = InboundEvent.objects.create(
        event_id="evt_failed",
        type="sales_order.created",
        case=failed,
        payload={},
        raw_body="{}",
        occurred_at=T0,
        status="failed",
    )

    attention = set(InboundEvent.objects.needing_attention().values_list("event_id", flat=True))
    assert attention == {old["event_id"], broken.event_id}
    assert stored(old).needs_attention and broken.needs_attention
    assert not stored(fresh).needs_attention and not stored(applied).needs_attention


# --- Crashes and unexpected errors ----------------------------------------------------------


class ProcessDied(BaseException):
    """Stands for the process being killed between storing and applying."""


@pytest.mark.django_db(transaction=True)
def test_a_crash_between_storing_and_applying_loses_nothing(client, monkeypatch):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = plan_event(case)
    real_apply = events.apply_event

    def die(*args, **kwargs):
        raise ProcessDied

    monkeypatch.setattr(events, "apply_event", die)
    with pytest.raises(ProcessDied):
        deliver(client, payload)
    event = stored(payload)  # committed before the crash
    assert (event.status, event.attempts) == ("pending", 0)
    assert Case.objects.get(pk=case.pk).state == wf.ASSETS_UPLOADED

    monkeypatch.setattr(events, "apply_event", real_apply)
    body = ok(deliver(client, payload))  # the service redelivers: nobody applied it yet
    assert (body["status"], body["duplicate"]) == ("applied", True)
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    assert stored(payload).attempts == 1


def test_an_unexpected_error_marks_the_event_failed_and_rolls_its_changes_back(client, monkeypatch):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = plan_event(case)
    from align_workflow.workflow import effects

    def broken_record(case, plan):
        TreatmentPlan.objects.create(case=case, plan_id="half-written", version=99)
        raise RuntimeError("disk full")

    monkeypatch.setattr(effects, "record_plan", broken_record)
    body = ok(deliver(client, payload))
    assert body["status"] == "failed"
    assert body["detail"] == "RuntimeError: disk full"
    assert not TreatmentPlan.objects.exists()
    assert Case.objects.get(pk=case.pk).state == wf.ASSETS_UPLOADED
    assert stored(payload).needs_attention

    monkeypatch.undo()
    assert ok(deliver(client, payload))["status"] == "failed"  # a repeat changes nothing
    assert events.apply_event(stored(payload).pk, again=True).status == "applied"  # the admin's re-apply
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED


def test_re_applying_an_applied_event_does_nothing(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = plan_event(case)
    ok(deliver(client, payload))
    before = row_counts()
    event = events.apply_event(stored(payload).pk, again=True)
    assert (event.status, event.attempts) == ("applied", 1)
    assert row_counts() == before


# --- Refusals: 400 / 404 / 422, nothing stored, no patient details in the log --------------


def _plan_for(case):
    return plan_event(case)


REFUSALS = {
    "not json": (lambda p: b"{not json", 400, "body"),
    "json but a list": (lambda p: encode([p]), 400, "body"),
    "NaN": (lambda p: encode(p).replace(b'"version": 1', b'"version": NaN'), 400, "body"),
    "unknown type": (lambda p: encode({**p, "type": "plan.deleted"}), 400, "type"),
    "missing occurred_at": (lambda p: encode({k: v for k, v in p.items() if k != "occurred_at"}), 400, "occurred_at"),
    "naive occurred_at": (lambda p: encode({**p, "occurred_at": "2026-03-01T12:00:00"}), 400, "occurred_at"),
    "missing caseId": (
        lambda p: encode({**p, "data": {k: v for k, v in p["data"].items() if k != "caseId"}}),
        400,
        "data.caseId",
    ),
    "caseId as a string": (
        lambda p: encode({**p, "data": {**p["data"], "caseId": str(p["data"]["caseId"])}}),
        400,
        "data.caseId",
    ),
    "version as a string": (lambda p: encode({**p, "data": {**p["data"], "version": "1"}}), 400, "data.version"),
    "too many stages": (
        lambda p: encode({**p, "data": {**p["data"], "stages": {"upper": 21, "lower": 3}}}),
        400,
        "data.stages.upper",
    ),
    "attachments not a bool": (
        lambda p: encode({**p, "data": {**p["data"], "attachments": "false"}}),
        400,
        "data.attachments",
    ),
    "NUL in notes": (lambda p: encode({**p, "data": {**p["data"], "notes": "a\x00b"}}), 400, "data.notes"),
    "unknown case": (lambda p: encode({**p, "data": {**p["data"], "caseId": 999999}}), 404, None),
    "MRN of another patient": (
        lambda p: encode({**p, "data": {**p["data"], "mrn": "MRN-NOT-THIS-ONE"}}),
        422,
        "data.mrn",
    ),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusals_store_nothing_and_name_the_field(client, caplog, name):
    mutate, status, field = REFUSALS[name]
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = plan_event(case)
    body = mutate(payload)
    before = row_counts()
    with caplog.at_level("WARNING", logger="align_workflow"):
        response = post(client, body, svix_headers(body, payload["event_id"]))
    assert response.status_code == status, response.content
    assert row_counts() == before
    error = response.json()["error"]
    if field:
        assert field in error["details"]["fields"], error
    # The refusal is logged with the event id only: no name, birth date, email, phone, MRN.
    assert payload["event_id"] in caplog.text
    patient = case.patient
    for phi in (
        patient.first_name,
        patient.last_name,
        patient.mrn,
        patient.email,
        patient.phone,
        str(patient.date_of_birth),
    ):
        assert phi not in caplog.text


def test_the_body_event_id_must_equal_the_webhook_id(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = plan_event(case)
    body = encode(payload)
    before = row_counts()
    response = post(client, body, svix_headers(body, "evt_some_other_id"))
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"] == {"event_id": ["must equal the webhook-id header"]}
    assert row_counts() == before


def test_shipped_needs_the_shipment(client):
    case = make_case(state=wf.ACCEPTED)
    response = deliver(client, status_event(case, "SHIPPED"))
    assert response.status_code == 400
    assert "data.shipment" in response.json()["error"]["details"]["fields"]


# --- The sweep command ------------------------------------------------------------------


def test_the_sweep_applies_what_can_apply_and_leaves_the_rest(client):
    from io import StringIO

    from django.core.management import call_command

    case = make_case(state=wf.ASSETS_UPLOADED)
    Case.objects.filter(pk=case.pk).update(
        busy_with="upload_assets", busy_until=datetime.now(tz=UTC) + timedelta(minutes=1)
    )
    waiting_for_call = plan_event(case)
    waiting_for_state = shipped_event(make_case(state=wf.PLAN_RECEIVED))
    for payload in (waiting_for_call, waiting_for_state):
        assert ok(deliver(client, payload))["status"] == "pending"
    # The call failed and released the case without a transition: nothing retried the plan.
    Case.objects.filter(pk=case.pk).update(busy_with="", busy_until=None)

    out = StringIO()
    call_command("apply_pending_events", stdout=out)
    assert out.getvalue().strip() == "Pending events tried: 1 applied, 1 pending. Needing attention now: 0."
    assert stored(waiting_for_call).status == "applied"
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    assert stored(waiting_for_state).status == "pending"


def test_a_plan_before_any_sales_order_has_no_sales_order_number(client):
    case = make_case(state=wf.ASSETS_UPLOADED)
    assert ok(deliver(client, plan_event(case, salesOrderNumber=None, pId=None)))["status"] == "applied"
    assert TreatmentPlan.objects.get(case=case).sales_order_number == ""


# --- A clock in the future ------------------------------------------------------------------


def test_an_event_dated_in_the_future_is_refused_with_a_field_error(client, settings):
    settings.ALIGN_EVENT_FUTURE_SKEW_SECONDS = 300
    case = make_case(state=wf.ACCEPTED)
    future = make_event(
        "case.status_changed", case, occurred_at="2099-01-01T00:00:00Z", status="ON_HOLD", shipment=None, reason="Clock"
    )
    response = deliver(client, future)
    assert response.status_code == 400, response.content
    body = response.json()
    assert "occurred_at" in body["error"]["details"]["fields"], body
    assert "300 seconds" in body["error"]["details"]["fields"]["occurred_at"][0]
    assert not InboundEvent.objects.filter(event_id=future["event_id"]).exists()
    assert not AlignCaseStatus.objects.filter(case=case).exists()


def test_within_the_skew_is_accepted_and_beyond_it_is_not(client, settings):
    from datetime import datetime

    settings.ALIGN_EVENT_FUTURE_SKEW_SECONDS = 120
    case = make_case(state=wf.ACCEPTED)
    now = datetime.now(UTC)
    near = status_event(case, "IN_MANUFACTURING")
    near["occurred_at"] = (now + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    assert ok(deliver(client, near))["status"] == "applied"
    far = status_event(case, "ON_HOLD")
    far["occurred_at"] = (now + timedelta(seconds=600)).isoformat().replace("+00:00", "Z")
    assert deliver(client, far).status_code == 400


def test_a_status_with_a_bad_clock_does_not_block_the_real_ones(client):
    """An ON_HOLD stamped later than the manufacture and shipping that really followed it
    (a clock running ahead, within the skew or from the past) must not make them stale."""
    case = make_case(state=wf.ACCEPTED)
    ok(deliver(client, status_event(case, "APPROVED", minutes=0)))
    ok(deliver(client, status_event(case, "ON_HOLD", minutes=600, reason="Clock ahead")))
    assert ok(deliver(client, status_event(case, "IN_MANUFACTURING", minutes=2)))["status"] == "applied"
    assert ok(deliver(client, shipped_event(case, minutes=3)))["status"] == "applied"
    case.refresh_from_db()
    assert case.state == wf.SHIPPING
    known = AlignCaseStatus.objects.get(case=case)
    assert known.furthest_status == "SHIPPED"
