"""The staff portal: case list, case page, and every staff action."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_fsm_log.models import StateLog
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Case, CaseNote, PhotoAssessment
from align_workflow.workflow import fire
from states import align_case as wf
from tests.support.factories import PatientFactory, make_case
from tests.support.pages import messages_of

pytestmark = pytest.mark.django_db


def flag(name, on):
    get_waffle_flag_model().objects.update_or_create(name=name, defaults={"everyone": on})


def case_numbers(response):
    return [c.case_number for c in response.context["page"].object_list]


# --- access -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/staff/", "/staff/cases/{pk}/", "/staff/cases/{pk}/status/", "/support/workflow/"])
def test_staff_pages_need_a_login(client, url):
    case = make_case()
    response = client.get(url.format(pk=case.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", ["/staff/", "/staff/cases/{pk}/", "/staff/cases/{pk}/status/", "/support/workflow/"])
def test_staff_pages_refuse_providers(provider_client, provider, url):
    case = make_case(provider=provider)  # even the provider's own case
    assert provider_client.get(url.format(pk=case.pk)).status_code == 403


@pytest.mark.parametrize("action", ["send", "retry", "aligners-purchased", "cancel", "gender"])
def test_actions_refuse_providers(provider_client, provider, action):
    case = make_case(provider=provider)
    assert provider_client.post(f"/staff/cases/{case.pk}/{action}/", {"reason": "x", "gender": "F"}).status_code == 403
    assert Case.objects.get(pk=case.pk).state == wf.ELIGIBLE


@pytest.mark.parametrize("action", ["send", "retry", "aligners-purchased", "cancel", "gender"])
def test_actions_are_post_only(staff_client, action):
    case = make_case()
    assert staff_client.get(f"/staff/cases/{case.pk}/{action}/").status_code == 405


def test_unknown_case_is_404(staff_client):
    assert staff_client.get("/staff/cases/999999/").status_code == 404
    assert staff_client.post("/staff/cases/999999/cancel/", {"reason": "x"}).status_code == 404


# --- case list --------------------------------------------------------------------------


def test_list_shows_cases_and_counts_per_state(staff_client):
    make_case(case_number="A-1")
    make_case(case_number="A-2", state=wf.PLAN_RECEIVED)
    make_case(case_number="A-3", state=wf.PLAN_RECEIVED)
    response = staff_client.get("/staff/")
    assert response.status_code == 200
    assert set(case_numbers(response)) == {"A-1", "A-2", "A-3"}
    counts = {c.state: c.total for c in response.context["counts"]}
    assert counts[wf.PLAN_RECEIVED] == 2 and counts[wf.ELIGIBLE] == 1 and counts[wf.SHIPPING] == 0
    assert list(counts) == list(wf.STATES)
    html = response.content.decode()
    assert re.search(r"plan received <b>2</b>", html)


@pytest.mark.parametrize(
    "query,expected",
    [
        ("FIND-7", {"FIND-7"}),
        ("mrn-findme", {"FIND-8"}),
        ("Zebediah", {"FIND-9"}),
        ("zebediah quill", {"FIND-9"}),
        ("Quill", {"FIND-9"}),
        ("nothing-like-this", set()),
    ],
)
def test_search_by_case_number_mrn_or_name(staff_client, query, expected):
    make_case(case_number="FIND-7")
    make_case(case_number="FIND-8", patient=PatientFactory(mrn="MRN-FINDME"))
    make_case(case_number="FIND-9", patient=PatientFactory(first_name="Zebediah", last_name="Quill"))
    response = staff_client.post("/staff/", {"q": query}, follow=True)  # tests/portals/test_staff_search.py
    assert set(case_numbers(response)) == expected


def test_filter_by_state(staff_client):
    make_case(case_number="S-1")
    make_case(case_number="S-2", state=wf.ACCEPTED)
    assert case_numbers(staff_client.get("/staff/", {"state": wf.ACCEPTED})) == ["S-2"]


def test_filter_needs_attention_and_attention_first(staff_client):
    make_case(case_number="N-1")
    make_case(case_number="N-2", needs_attention=True, attention_reason="Align said 500")
    make_case(case_number="N-3")
    assert case_numbers(staff_client.get("/staff/", {"attention": "on"})) == ["N-2"]
    response = staff_client.get("/staff/")
    assert case_numbers(response)[0] == "N-2"
    assert "1 needs attention" in response.content.decode()


def test_filter_stuck(staff_client, settings):
    settings.ALIGN_STUCK_AFTER_SECONDS = 3600
    old = timezone.now() - timedelta(hours=2)
    make_case(case_number="T-1", state_changed_at=old, state=wf.ASSETS_UPLOADED)
    make_case(case_number="T-2")
    make_case(case_number="T-3", state_changed_at=old, state=wf.SHIPPING)  # terminal: never stuck
    assert case_numbers(staff_client.get("/staff/", {"stuck": "on"})) == ["T-1"]


def test_pagination(staff_client):
    for i in range(30):
        make_case(case_number=f"P-{i:02d}")
    first = staff_client.get("/staff/")
    second = staff_client.get("/staff/", {"page": 2})
    assert len(case_numbers(first)) == 25 and len(case_numbers(second)) == 5
    assert not set(case_numbers(first)) & set(case_numbers(second))
    assert "Page 1 of 2" in first.content.decode()
    assert staff_client.get("/staff/", {"page": "junk"}).status_code == 200
    # the page links keep the filters
    filtered = staff_client.get("/staff/", {"state": wf.ELIGIBLE})
    assert "state=eligible&amp;page=2" in filtered.content.decode()


def _list_queries(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/staff/")
    assert response.status_code == 200
    return len(queries)


def test_case_list_has_no_n_plus_one(staff_client):
    for _ in range(5):
        make_case()
    five = _list_queries(staff_client)
    for _ in range(45):
        make_case()
    fifty = _list_queries(staff_client)  # a full page of 25 plus paging
    assert five == fifty


def test_case_list_page_is_read_from_its_index(require_postgres):
    """The list's order has an index of its own, so a page reads 25 index entries instead
    of sorting every case (bench figure 5). Sorting (in full, or incrementally after
    another index) and scanning the whole table are priced out so that the plan shows
    whether the index can serve the ORDER BY at all, whatever the table's statistics."""
    from align_workflow.portals.selectors import staff_cases

    make_case()
    sql, params = staff_cases()[:25].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_incremental_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "case_staff_list_order" in plan, plan
    assert "Sort" not in plan, plan


# --- case page --------------------------------------------------------------------------


def test_case_page_shows_checklist_and_send_button(staff_client, flags_on):
    case = make_case()
    response = staff_client.get(f"/staff/cases/{case.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    criteria = response.context["criteria"]
    assert all(c.ok for c in criteria) and len(criteria) == 11  # the clinic's criteria and Align's fields
    assert 'id="send-button"' in html and "Send to Align" in html
    assert html.index('id="align-panel"') < html.index('id="rx-title"')  # the Align panel above the prescription
    assert case.meaning in html
    assert "<svg" in html and "<?xml" not in html


# A case prescribed to another lab has no checklist at all: it is outside the Align
# workflow (tests/portals/test_align_lab_only.py).
@pytest.mark.parametrize(
    "fail,reason",
    [
        ({"photos": PhotoAssessment.Status.PENDING}, "photo assessment is pending, not approved"),
        ({"stl_files": 1}, "1 STL file (at least 2 needed)"),
    ],
)
def test_failed_criterion_hides_send_and_says_which(staff_client, flags_on, fail, reason):
    case = make_case(**fail)
    response = staff_client.get(f"/staff/cases/{case.pk}/")
    html = response.content.decode()
    assert 'id="send-button"' not in html
    failed = [c for c in response.context["criteria"] if not c.ok]
    assert len(failed) == 1 and failed[0].reason == reason
    assert re.search(rf'<li class="fail" data-criterion="{failed[0].name}">', html)
    assert reason in html
    assert "until every item above is ticked" in html


def test_flag_off_hides_send_and_says_so(staff_client):
    flag(wf.FLAG_INITIATE_ORDER, False)
    case = make_case()
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'id="send-button"' not in html
    assert "initiate-align-order" in html


def test_unknown_gender_is_flagged_before_sending(staff_client, flags_on):
    case = make_case(patient=PatientFactory(gender="U"))
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'class="warn" data-criterion="gender_known"' in html
    assert "sent as M" in html
    assert 'id="send-button"' in html  # a warning, not a refusal


def test_timeline_shows_state_changes_and_notes(staff_client, staff, local_effects_only, flags_on):
    case = make_case(state=wf.ACCEPTED)
    fire(case, "ship", by=None, carrier="UPS", tracking_number="1ZTRACK")
    CaseNote.objects.create(case=case, text="Called Align about the order", author=staff)
    response = staff_client.get(f"/staff/cases/{case.pk}/")
    html = response.content.decode()
    kinds = [e.kind for e in response.context["timeline"]]
    assert kinds == ["note", "state"]  # newest first
    assert "Align shipped the aligners" in html and "The case is now shipping." in html
    assert "accepted → shipping" not in html
    assert "Called Align about the order" in html
    assert ">1ZTRACK</a></dd>" in html.split('id="tracking-number"', 1)[1]


def test_retry_shown_only_when_needs_attention(staff_client, flags_on):
    calm = make_case(state=wf.PATIENT_CREATED)
    stuck = make_case(state=wf.PATIENT_CREATED, needs_attention=True, attention_reason="create order: HTTP 503")
    assert 'id="retry-button"' not in staff_client.get(f"/staff/cases/{calm.pk}/").content.decode()
    html = staff_client.get(f"/staff/cases/{stuck.pk}/").content.decode()
    assert 'id="retry-button"' in html and "create order: HTTP 503" in html
    assert 'id="send-button"' not in html  # one way forward: Retry


def test_buttons_follow_the_state(staff_client, flags_on):
    approved = make_case(state=wf.PROVIDER_APPROVED)
    shipped = make_case(state=wf.SHIPPING)
    html = staff_client.get(f"/staff/cases/{approved.pk}/").content.decode()
    assert 'id="purchased-button"' in html and 'id="cancel-button"' in html and 'id="send-button"' not in html
    html = staff_client.get(f"/staff/cases/{shipped.pk}/").content.decode()
    assert 'id="purchased-button"' not in html and 'id="cancel-button"' not in html
    assert "data-status-url" not in html  # a finished case is not polled


def test_status_endpoint_changes_when_the_case_moves(staff_client, local_effects_only):
    case = make_case(state=wf.ACCEPTED)
    before = staff_client.get(f"/staff/cases/{case.pk}/status/").json()
    assert before["state"] == wf.ACCEPTED
    fire(case, "ship", by=None, carrier="UPS", tracking_number="1Z")
    after = staff_client.get(f"/staff/cases/{case.pk}/status/").json()
    assert after["state"] == wf.SHIPPING and after["stamp"] != before["stamp"]


# --- actions ----------------------------------------------------------------------------


def test_cancel_with_a_reason(staff_client, staff):
    case = make_case(state=wf.ORDER_CREATED)
    response = staff_client.post(
        f"/staff/cases/{case.pk}/cancel/", {"reason": "Patient moved abroad", "confirm": "1"}, follow=True
    )
    case.refresh_from_db()
    assert case.state == wf.CANCELLED and case.cancel_reason == "Patient moved abroad"
    log = StateLog.objects.for_(case).get()
    assert log.by == staff and log.transition == "cancel"
    assert (
        "The case was cancelled. Align was not told: cancel it with Align as well if it has the case."
        in messages_of(response)
    )


def test_cancel_without_a_reason_is_refused_with_a_message(staff_client):
    case = make_case()
    response = staff_client.post(f"/staff/cases/{case.pk}/cancel/", {"reason": "   "}, follow=True)
    assert response.status_code == 200
    assert "A reason is required to cancel a case." in messages_of(response)
    assert Case.objects.get(pk=case.pk).state == wf.ELIGIBLE


def test_cancel_a_finished_case_is_refused_with_the_engines_reason(staff_client):
    case = make_case(state=wf.SHIPPING)
    response = staff_client.post(f"/staff/cases/{case.pk}/cancel/", {"reason": "too late", "confirm": "1"}, follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("The case is shipping, so nothing more can be done with it here.")
    assert Case.objects.get(pk=case.pk).state == wf.SHIPPING
    assert not StateLog.objects.for_(case).exists()


def test_set_gender(staff_client, staff):
    case = make_case(patient=PatientFactory(gender="U"))
    response = staff_client.post(f"/staff/cases/{case.pk}/gender/", {"gender": "F"}, follow=True)
    case.patient.refresh_from_db()
    assert case.patient.gender == "F"
    assert "Patient gender set to Female." in messages_of(response)
    note = CaseNote.objects.get(case=case)
    assert note.text == "Patient gender changed from Unknown to Female." and note.author == staff
    assert case.patient.first_name not in note.text  # no names in notes


def test_set_gender_rejects_nonsense(staff_client):
    case = make_case()
    response = staff_client.post(f"/staff/cases/{case.pk}/gender/", {"gender": "X"}, follow=True)
    assert response.status_code == 200
    assert any("not one of the available choices" in m for m in messages_of(response))
    assert not CaseNote.objects.filter(case=case).exists()


def test_aligners_purchased_records_the_purchase_and_accepts(staff_client, staff, flags_on, local_effects_only):
    case = make_case(state=wf.PROVIDER_APPROVED)
    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"}, follow=True)
    case.refresh_from_db()
    assert case.state == wf.ACCEPTED
    assert case.aligners_purchased_at is not None
    assert StateLog.objects.for_(case).get().transition == "accept_clincheck"
    assert any("The case is now accepted." in m for m in messages_of(response))


def test_aligners_purchased_refused_in_the_wrong_state_writes_nothing(staff_client, flags_on, local_effects_only):
    case = make_case(state=wf.PLAN_RECEIVED)
    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"}, follow=True)
    case.refresh_from_db()
    assert case.state == wf.PLAN_RECEIVED and case.aligners_purchased_at is None
    assert any("This cannot be done now: the case is plan received." in m for m in messages_of(response))


def test_aligners_purchased_with_the_flag_off_records_the_purchase_and_the_acceptance_waits(
    staff_client, local_effects_only
):
    flag(wf.FLAG_SET_ORDER_STATUS, False)
    case = make_case(state=wf.PROVIDER_APPROVED)
    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"}, follow=True)
    case.refresh_from_db()
    assert case.state == wf.PROVIDER_APPROVED and case.aligners_purchased_at is not None
    assert case.aligners_purchase_source == "staff"
    assert any("is not sent to Align yet" in m and "switched off" in m for m in messages_of(response))
    assert 'id="acceptance-waiting"' in response.content.decode()


def test_timeline_shows_events_from_align_and_failed_ones_stand_out(staff_client):
    from align_workflow.integration.models import InboundEvent

    case = make_case(state=wf.ASSETS_UPLOADED)
    for n, status in enumerate(["applied", "failed"]):
        InboundEvent.objects.create(
            event_id=f"evt-{n}",
            type="treatment_plan.submitted",
            case=case,
            summary=f"plan TP-1 v{n + 1}",
            payload={},
            raw_body="{}",
            occurred_at=timezone.now(),
            status=status,
            status_detail="the plan has no stages" if status == "failed" else "",
        )
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert "Align: Treatment plan submitted" in html
    assert 'class="tl-event tl-failed"' in html and "plan TP-1 v2 — the plan has no stages" in html


def test_the_case_page_names_the_call_in_progress_by_its_label(staff_client):
    case = make_case(state=wf.PATIENT_CREATED)
    Case.objects.filter(pk=case.pk).update(busy_with="create_order", busy_until=timezone.now() + timedelta(minutes=1))
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert "Sending <b>Create Order</b> to Align" in html
