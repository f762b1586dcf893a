"""Sending cases to the real Align simulator (a separate process), which reads each
case's STL list back from this app (a live server) as the real service would."""

import io

import pytest
from django.core.management import call_command
from PIL import Image

from align_workflow.cases.models import Case, CaseAsset, CaseNote
from align_workflow.workflow import fire, retry_case, send_to_align
from align_workflow.workflow.history import path_taken
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.images import data_url, jpeg_with_exif

pytestmark = pytest.mark.django_db(transaction=True)

S = OutboundAttempt.Status
SEND_PATH = [
    (wf.ELIGIBLE, wf.PATIENT_CREATED),
    (wf.PATIENT_CREATED, wf.ORDER_CREATED),
    (wf.ORDER_CREATED, wf.ASSETS_UPLOADED),
]


@pytest.fixture
def align(simulator, app_for_align):
    """The simulator, reading asset lists from this app; no events unless a test asks."""
    simulator.config(app_url=app_for_align.url)
    return simulator


def effects(sim):
    return {
        k: v for k, v in sim.state()["effects"].items() if k in ("patients", "orders", "uploads", "accepts", "modifies")
    }


def notes(case):
    return list(CaseNote.objects.filter(case=case).order_by("id").values_list("text", flat=True))


def sim_case(sim, case):
    return next(c for c in sim.state()["orders"] if c["caseId"] == case.pk)


def keys_sent(sim, method, path):
    return [r.get("idempotency_key") for r in sim.requests() if r["method"] == method and r["path"] == path]


def to_plan_received(sim, case, staff):
    """Send the case, then Align submits plan version 1 (and the app receives it)."""
    send_to_align(case, by=staff)
    assert case.state == wf.ASSETS_UPLOADED
    sim.emit(case.pk, "treatment_plan.submitted")
    plan = sim_case(sim, case)["plans"][-1]
    fire(case, "receive_plan", by=None, plan={"plan_id": plan["treatmentPlanId"], "version": plan["version"]})
    assert case.state == wf.PLAN_RECEIVED
    return plan


def test_one_send_takes_an_eligible_case_to_assets_uploaded(align, staff, flags_on):
    case = make_case(patient__gender="U")
    result = send_to_align(case, by=staff)

    assert result.ok and result.done == list(wf.SEND_TO_ALIGN), result
    assert case.state == wf.ASSETS_UPLOADED and path_taken(case) == SEND_PATH
    assert effects(align) == {"patients": 1, "orders": 1, "uploads": 1, "accepts": 0, "modifies": 0}
    remote = sim_case(align, case)
    assert remote["pId"] == case.align_pid
    assert remote["orders"][0]["orderType"] == "IAS" and remote["orders"][0]["treatmentOption"] == "BOTH_ARCHES"
    assert align.state()["patients"][0]["gender"] == "M"
    assert [a.status for a in OutboundAttempt.objects.filter(case=case)] == [S.SUCCEEDED] * 3
    assert any("sent to Align as M" in n for n in notes(case))


def test_a_503_on_orders_leaves_the_case_in_patient_created_and_the_retry_finishes_it(align, staff, flags_on):
    align.fault(route="POST /orders", status=503, count=1)
    case = make_case()
    result = send_to_align(case, by=staff)
    assert result.failed_step == "create_order" and case.state == wf.PATIENT_CREATED
    assert any(n.startswith("Bad Align response during Create Order. Status code: 503") for n in notes(case))

    call_command("align_retry_due", "--all")
    case.refresh_from_db()
    assert case.state == wf.ASSETS_UPLOADED and path_taken(case) == SEND_PATH
    assert effects(align)["patients"] == 1 and effects(align)["orders"] == 1
    order_keys = keys_sent(align, "POST", "/orders")
    assert len(order_keys) == 2 and order_keys[0] == order_keys[1]


def test_an_answer_lost_after_align_did_the_work_is_recovered_with_the_same_key(align, staff, flags_on, settings):
    """timeout_after_commit: Align creates the patient, the client gives up waiting; as
    after a crash between Align's answer and our commit, nothing is recorded as done."""
    settings.ALIGN_READ_TIMEOUT = 0.5
    align.fault(route="POST /patients", mode="timeout_after_commit", count=1, seconds=3)
    case = make_case()
    result = send_to_align(case, by=staff)
    assert result.failed_step == "create_patient" and case.state == wf.ELIGIBLE
    assert effects(align)["patients"] == 1  # the work was done

    call_command("align_retry_due", "--all")
    case.refresh_from_db()
    assert case.state == wf.ASSETS_UPLOADED
    assert effects(align) == {"patients": 1, "orders": 1, "uploads": 1, "accepts": 0, "modifies": 0}
    patient_keys = keys_sent(align, "POST", "/patients")
    assert len(patient_keys) == 2 and patient_keys[0] == patient_keys[1]


def test_a_refusal_needs_a_person_and_a_retry_after_the_fix_goes_through(align, staff, flags_on):
    align.fault(route="POST /orders", status=422, count=1, code="ORDER.INVALID_TREATMENT_OPTION")
    case = make_case()
    send_to_align(case, by=staff)
    case.refresh_from_db()
    assert case.state == wf.PATIENT_CREATED and case.needs_attention
    assert "Status code: 422 (ORDER.INVALID_TREATMENT_OPTION" in case.attention_reason
    call_command("align_retry_due", "--all")
    assert Case.objects.get(pk=case.pk).state == wf.PATIENT_CREATED  # not retried automatically

    result = retry_case(case, by=staff)
    assert result.ok and case.state == wf.ASSETS_UPLOADED and not case.needs_attention
    assert effects(align)["orders"] == 1


def test_request_revision_sends_the_comments(align, staff, flags_on):
    case = make_case()
    plan = to_plan_received(align, case, staff)
    fire(case, "request_revision", by=case.prescription.provider.user, comments="Please reduce IPR on 32-42.")
    assert case.state == wf.REVISION_REQUESTED
    remote_plan = next(p for p in sim_case(align, case)["plans"] if p["treatmentPlanId"] == plan["treatmentPlanId"])
    assert remote_plan["status"] == "MODIFICATION_REQUESTED"
    assert remote_plan["comments"] == "Please reduce IPR on 32-42."
    assert effects(align)["modifies"] == 1


def test_approve_then_accept_sends_the_stored_screenshot_which_align_can_read(align, staff, flags_on, settings):
    settings.ALIGN_VAULT_URL = align.url
    case = make_case()
    to_plan_received(align, case, staff)
    fire(
        case,
        "approve_plan",
        by=case.prescription.provider.user,
        acceptance_screenshot=data_url(jpeg_with_exif(), "image/jpeg"),
    )
    assert case.state == wf.PROVIDER_APPROVED
    asset = CaseAsset.objects.get(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN)

    from align_workflow.align.vault import get_vault

    stored = Image.open(io.BytesIO(get_vault().get(asset.vault_id, asset.external_key)))
    assert stored.format == "JPEG" and not stored.getexif()

    fire(case, "accept_clincheck", by=staff)
    assert case.state == wf.ACCEPTED
    screenshot = sim_case(align, case)["plans"][-1]["screenshot"]
    assert screenshot == {"vault_id": asset.vault_id, "external_key": asset.external_key, "checked": True}
    assert effects(align)["accepts"] == 1
