"""The simulator process delivering real events to this app (pytest-django's live server).

First the events alone: Align's side is driven through the simulator's contract routes
(the calls the app makes in production), the app's side fires its own transitions, and
the simulator delivers every event twice and out of order. Then the whole round trip:
the app's calls go out (inline execution), the simulator's events come back, and the
case moves along by itself.
"""

import pytest
from django.conf import settings
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, CaseAsset
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow import fire, send_to_align
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.images import png_url

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_settled(simulator, case, state, timeout=15):
    """Every event the simulator sent for the case was answered 2xx, and the case is in `state`."""

    def settled(sim_state):
        mine = [e for e in sim_state["events"] if e["caseId"] == case.pk]
        if not mine or any(e["state"] != "delivered" for e in mine):
            return False
        if any(len(e["deliveries"]) < e["copies"] for e in mine):
            return False
        return Case.objects.get(pk=case.pk).state == state

    simulator.wait_for(settled, timeout=timeout)
    return Case.objects.get(pk=case.pk)


@pytest.fixture
def app_server(live_server):
    """pytest-django's live server. With in-memory SQLite its request threads share the
    test's connection; a thread still serving the simulator's keep-alive connection when
    the server stops would fail to "close" it (Django closes connections after each
    request, through this hook). Closing an in-memory SQLite connection does nothing."""
    shared = live_server.thread.connections_override.values()
    if shared and all(conn.vendor == "sqlite" and conn.is_in_memory_db() for conn in shared):
        live_server.thread.httpd._close_connections = lambda: None
    return live_server


@pytest.fixture
def align_side(simulator, app_server):
    live_server = app_server
    simulator.config(
        app_url=live_server.url,
        callback_base_url=live_server.url,
        auto_advance=True,
        delay_ms=20,
        duplicates=True,
        shuffle=True,
        shuffle_window_ms=150,
        seed=11,
        callback_secret=settings.ALIGN_EVENTS_SECRET,
        inbound_token=settings.ALIGN_INBOUND_TOKEN,
    )
    return simulator


def test_simulator_events_take_a_case_to_a_plan_a_revised_plan_and_shipping(
    align_side, api, staff, flags_on, local_effects_only
):
    case = make_case(state=wf.ORDER_CREATED)
    mrn = case.patient.mrn
    # Align gets the patient and the order (what create_patient and create_order send).
    _, patient = api.new_patient(case.pk, mrn=mrn)
    order = api.post(
        "/orders",
        {
            "caseId": case.pk,
            "pId": patient["pId"],
            "mrn": mrn,
            "orderType": "IAS",
            "treatmentOption": "BOTH_ARCHES",
            "chiefConcern": "Straighten teeth",
        },
    )
    assert order.status_code == 200, order.text

    # The upload: the simulator reads our asset list, answers, then sends its events;
    # we record the upload while they are already on their way.
    upload = api.upload(case.pk, patient)
    assert upload.status_code == 200, upload.text
    assert upload.json()["assetCount"] == 2
    fire(case, "upload_assets", by=staff)
    case = wait_until_settled(align_side, case, wf.PLAN_RECEIVED)
    plan = case.treatment_plans.get()
    assert (plan.version, plan.preview.kind) == (1, CaseAsset.Kind.PROVPREV)
    assert plan.preview.url.startswith(align_side.url)
    assert case.align_sales_order_number == plan.sales_order_number != ""
    assert case.align_patient_id == patient["pId"]

    # A revision request: Align answers with version 2.
    fire(case, "request_revision", by=case.prescription.provider.user, comments="Less IPR")
    modify = api.put(f"/orders/{case.pk}/modify", {"caseId": case.pk, "mrn": mrn, "comments": "Less IPR"})
    assert modify.status_code == 200, modify.text
    case = wait_until_settled(align_side, case, wf.PLAN_RECEIVED)
    current = case.treatment_plans.first()
    assert (current.version, current.revision_of) == (2, plan.plan_id)

    # Approved and bought on our side; Align ships.
    fire(case, "approve_plan", by=case.prescription.provider.user)
    fire(case, "accept_clincheck", by=staff)
    align_side.emit(case.pk, "case.status_changed", status="SHIPPED")
    case = wait_until_settled(align_side, case, wf.SHIPPING)
    assert case.carrier == "UPS" and case.tracking_number.startswith("1Z")

    sent = {e["event_id"] for e in align_side.events() if e["caseId"] == case.pk}
    stored = InboundEvent.objects.filter(case=case)
    assert set(stored.values_list("event_id", flat=True)) == sent  # each stored once, though sent twice
    assert not stored.filter(status__in=["pending", "failed"]).exists()


# --- The round trip: the app's own calls, the simulator's events ---------------------


@pytest.fixture
def align(simulator, app_server, settings):
    settings.ALIGN_EXECUTION = "inline"
    settings.ALIGN_VAULT_URL = simulator.url  # the acceptance screenshot goes to the simulator's vault
    simulator.config(
        app_url=app_server.url,
        callback_base_url=app_server.url,
        auto_advance=True,
        delay_ms=10,
        callback_secret=settings.ALIGN_EVENTS_SECRET,
        inbound_token=settings.ALIGN_INBOUND_TOKEN,
    )
    return simulator


def sent_to_align(align, staff):
    case = make_case()
    send_to_align(case, by=staff)
    return wait_until_settled(align, case, wf.PLAN_RECEIVED)


def transitions(case):
    return list(StateLog.objects.for_(case).order_by("id").values_list("transition", flat=True))


def test_after_send_to_align_the_case_reaches_plan_received_by_itself(align, staff, flags_on):
    case = sent_to_align(align, staff)
    assert transitions(case) == ["create_patient", "create_order", "upload_assets", "receive_plan"]
    at_align = align.state()
    plan = case.treatment_plans.get()
    assert plan.version == 1 and plan.preview.kind == CaseAsset.Kind.PROVPREV
    assert case.align_orders.count() == 2
    assert case.align_patient_id == case.align_pid != ""
    assert case.align_sales_order_number == plan.sales_order_number != ""
    assert at_align["effects"]["uploads"] == 1
    assert not InboundEvent.objects.filter(case=case, status__in=["pending", "failed"]).exists()


def test_after_a_revision_request_version_2_brings_the_case_back(align, staff, flags_on):
    case = sent_to_align(align, staff)
    first = case.treatment_plans.get()
    fire(case, "request_revision", by=case.prescription.provider.user, comments="Please keep the IPR minimal.")
    assert case.state == wf.REVISION_REQUESTED
    case = wait_until_settled(align, case, wf.PLAN_RECEIVED)
    current = case.treatment_plans.first()
    assert (current.version, current.revision_of) == (2, first.plan_id)
    assert transitions(case)[-2:] == ["request_revision", "receive_plan"]


def test_after_accept_clincheck_the_case_reaches_shipping_with_the_tracking_number(align, staff, flags_on):
    case = sent_to_align(align, staff)
    fire(case, "approve_plan", by=case.prescription.provider.user, acceptance_screenshot=png_url())
    fire(case, "accept_clincheck", by=staff)
    assert case.state == wf.ACCEPTED
    case = wait_until_settled(align, case, wf.SHIPPING)
    shipped = [
        e["body"]["data"]
        for e in align.events()
        if e["caseId"] == case.pk and e["body"]["data"].get("status") == "SHIPPED"
    ]
    assert len(shipped) == 1
    assert (case.carrier, case.tracking_number) == (
        shipped[0]["shipment"]["carrier"],
        shipped[0]["shipment"]["trackingNumber"],
    )
    assert case.tracking_number.startswith("1Z") and case.shipped_at is not None
    assert transitions(case)[-3:] == ["approve_plan", "accept_clincheck", "ship"]
