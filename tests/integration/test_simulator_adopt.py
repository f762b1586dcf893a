"""`POST /_sim/cases/{caseId}/adopt`: a case the app already has, placed in the simulator at
its stage, so that the next real call works; no events, no effects; idempotent; checked."""

import uuid

import pytest
import requests

from align_workflow.align.client import Align
from align_workflow.cases.models import CaseAsset
from align_workflow.workflow import fire
from align_workflow.workflow.effects import EffectFailed
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.simulator_api import CASE_IDS, error_code

NO_EFFECTS = {"patients": 0, "orders": 0, "uploads": 0, "accepts": 0, "modifies": 0, "tokens": 0, "blobs": 0}


def adopt(simulator, case_id, body):
    return requests.post(f"{simulator.url}/_sim/cases/{case_id}/adopt", json=body, timeout=10)


def description(case_id, stage="plan_submitted", **changes):
    body = {
        "stage": stage,
        "mrn": f"MRN-{case_id}",
        "pId": f"PX{case_id}",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "dateOfBirth": "1990-04-01",
        "gender": "F",
        "email": "ada@example.org",
        "phone": "+1 555 0100",
        "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"},
    }
    if stage != "patient_created":
        body["treatmentOption"] = "BOTH_ARCHES"
    if stage not in ("patient_created", "order_created"):
        body["salesOrders"] = [
            {"salesOrderNumber": f"SOX{case_id}1", "orderKind": "PRIMARY"},
            {"salesOrderNumber": f"SOX{case_id}2", "orderKind": "SECONDARY"},
        ]
    if stage not in ("patient_created", "order_created", "assets_uploaded"):
        body["plans"] = [{"treatmentPlanId": f"TPX{case_id}-1", "version": 1, "stages": {"upper": 14, "lower": 12}}]
    body.update(changes)
    return body


def remote(simulator, case_id):
    return next(c for c in simulator.state()["orders"] if c["caseId"] == case_id)


def case_with_screenshot(state):
    case = make_case(state=state)
    CaseAsset.objects.create(
        case=case,
        kind=CaseAsset.Kind.CCACCEPTSCREEN,
        filename="acceptance.jpg",
        vault_id=str(uuid.uuid4()),
        external_key=str(uuid.uuid4()),
    )
    return case


# --- the next real call works ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_adopted_provider_approved_case_is_accepted_through_the_engine(simulator, staff, flags_on):
    case = case_with_screenshot(wf.PROVIDER_APPROVED)
    answer = adopt(simulator, case.pk, description(case.pk, mrn=case.patient.mrn))
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] is True

    fire(case, "accept_clincheck", by=staff)

    assert case.state == wf.ACCEPTED and not case.needs_attention
    view = Align().get_case(case.pk)
    assert view.status == "APPROVED" and view.p_id == f"PX{case.pk}"
    assert view.plans[-1]["status"] == "APPROVED" and view.plans[-1]["treatmentPlanId"] == f"TPX{case.pk}-1"
    assert simulator.state()["effects"]["accepts"] == 1


@pytest.mark.django_db(transaction=True)
def test_without_adopt_the_same_accept_is_refused_by_align(simulator, staff, flags_on):
    """The negative control: the simulator has never heard of the case."""
    case = case_with_screenshot(wf.PROVIDER_APPROVED)
    with pytest.raises(EffectFailed, match="404"):
        fire(case, "accept_clincheck", by=staff)
    case.refresh_from_db()
    assert case.state == wf.PROVIDER_APPROVED and case.needs_attention
    assert simulator.state()["effects"]["accepts"] == 0


@pytest.mark.django_db(transaction=True)
def test_an_adopted_patient_gets_its_order_and_the_order_its_upload(simulator, fake_app, api):
    case_id = next(CASE_IDS)
    body = description(case_id, stage="patient_created")
    assert adopt(simulator, case_id, body).status_code == 200
    order = api.post(
        "/orders",
        {
            "caseId": case_id,
            "pId": body["pId"],
            "mrn": body["mrn"],
            "orderType": "IAS",
            "treatmentOption": "UPPER_ONLY",
            "chiefConcern": "Crowding",
        },
    )
    assert order.status_code == 200, order.text

    other = next(CASE_IDS)
    assert adopt(simulator, other, description(other, stage="order_created")).status_code == 200
    fake_app.assets[other] = [
        {"kind": "STL_UPPER", "vault_id": "v", "external_key": "u"},
        {"kind": "STL_LOWER", "vault_id": "v", "external_key": "l"},
    ]
    upload = api.post("/assets/upload", {"caseId": other, "pId": f"PX{other}", "mrn": f"MRN-{other}"})
    assert upload.status_code == 200, upload.text
    assert simulator.state()["effects"]["uploads"] == 1


def test_an_adopted_plan_can_be_revised_and_the_next_plan_follows_it(simulator, api):
    case_id = next(CASE_IDS)
    assert adopt(simulator, case_id, description(case_id)).status_code == 200
    modify = api.put(f"/orders/{case_id}/modify", {"caseId": case_id, "mrn": f"MRN-{case_id}", "comments": "Less IPR."})
    assert modify.status_code == 200, modify.text
    event = simulator.emit(case_id, "treatment_plan.submitted")["body"]["data"]
    assert (event["version"], event["revisionOf"]) == (2, f"TPX{case_id}-1")
    assert (event["mrn"], event["pId"], event["salesOrderNumber"]) == (
        f"MRN-{case_id}",
        f"PX{case_id}",
        f"SOX{case_id}1",
    )


def test_an_adopted_accepted_case_moves_on_to_shipping_by_events(simulator):
    case_id = next(CASE_IDS)
    assert simulator.adopt(case_id, **description(case_id, stage="accepted"))["changed"] is True
    assert simulator.emit(case_id, "case.status_changed")["body"]["data"]["status"] == "IN_MANUFACTURING"
    shipped = simulator.emit(case_id, "case.status_changed")["body"]["data"]
    assert shipped["status"] == "SHIPPED" and shipped["shipment"]["alignerCount"] == 14


# --- what the store holds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "status", "plan_status"),
    [
        ("order_created", "RECEIVED", None),
        ("assets_uploaded", "SETUP_IN_PROGRESS", None),
        ("plan_submitted", "CLINCHECK_READY", "PENDING"),
        ("modification_requested", "MODIFICATION_REQUESTED", "MODIFICATION_REQUESTED"),
        ("accepted", "APPROVED", "APPROVED"),
        ("shipped", "SHIPPED", "APPROVED"),
    ],
)
def test_each_stage_leaves_aligns_status_and_plan_as_the_calls_would(simulator, stage, status, plan_status):
    case_id = next(CASE_IDS)
    answer = adopt(simulator, case_id, description(case_id, stage=stage))
    assert answer.status_code == 200, answer.text
    case = remote(simulator, case_id)
    assert case["status"] == status and case["statusHistory"][0]["status"] == "RECEIVED"
    assert case["pId"] == f"PX{case_id}" and case["orders"][0]["treatmentOption"] == "BOTH_ARCHES"
    assert [p["status"] for p in case["plans"]][-1:] == ([plan_status] if plan_status else [])
    state = simulator.state()
    assert state["patients"][0]["caseIds"] == [case_id]
    assert state["effects"] == NO_EFFECTS and state["events"] == [] and state["adopted"] == [case_id]


def test_a_cancelled_case_and_earlier_plans(simulator):
    case_id = next(CASE_IDS)
    plans = [{"treatmentPlanId": "TPA", "version": 1}, {"treatmentPlanId": "TPB", "version": 2}]
    assert adopt(simulator, case_id, description(case_id, plans=plans, cancelled=True)).status_code == 200
    case = remote(simulator, case_id)
    assert case["status"] == "CANCELLED"
    assert [(p["treatmentPlanId"], p["status"], p["revisionOf"]) for p in case["plans"]] == [
        ("TPA", "MODIFICATION_REQUESTED", None),
        ("TPB", "PENDING", "TPA"),
    ]


def test_adopting_twice_changes_nothing(simulator):
    case_id = next(CASE_IDS)
    body = description(case_id)
    assert adopt(simulator, case_id, body).json()["changed"] is True
    before = simulator.state()
    again = adopt(simulator, case_id, body)
    assert again.status_code == 200 and again.json()["changed"] is False
    assert simulator.state() == before
    assert len(before["patients"]) == 1 and len(before["orders"]) == 1 and before["effects"] == NO_EFFECTS

    moved_on = adopt(simulator, case_id, description(case_id, stage="accepted"))
    assert moved_on.json()["changed"] is True
    assert remote(simulator, case_id)["status"] == "APPROVED" and len(simulator.state()["orders"]) == 1


def test_ids_adopted_from_outside_are_not_handed_out_again(simulator, api):
    _, first = api.new_patient()
    ahead = int(first["pId"][1:]) + 3  # ids keep counting across resets: stay near the counter
    case_id = next(CASE_IDS)
    body = description(case_id, stage="patient_created", pId=f"P{ahead:07d}")
    assert adopt(simulator, case_id, body).status_code == 200
    _, patient = api.new_patient()
    assert int(patient["pId"][1:]) == ahead + 1


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"stage": "somewhere"}, "REQUEST.INVALID_FIELD", "stage"),
        ({"stage": "cancelled"}, "REQUEST.INVALID_FIELD", "stage"),
        ({"pId": ""}, "REQUEST.MISSING_FIELD", ["pId"]),
        ({"mrn": None}, "REQUEST.MISSING_FIELD", ["mrn"]),
        ({"treatmentOption": ""}, "REQUEST.MISSING_FIELD", ["treatmentOption"]),
        ({"treatmentOption": "ALL"}, "REQUEST.INVALID_FIELD", "treatmentOption"),
        ({"plans": []}, "REQUEST.MISSING_FIELD", ["plans"]),
        ({"plans": [{"version": 1}]}, "REQUEST.MISSING_FIELD", ["plans[0].treatmentPlanId"]),
        (
            {"plans": [{"treatmentPlanId": "A", "version": 2}, {"treatmentPlanId": "B", "version": 1}]},
            "REQUEST.INVALID_FIELD",
            "plans[1].version",
        ),
        ({"plans": [{"treatmentPlanId": "A", "version": "1"}]}, "REQUEST.INVALID_FIELD", "plans[0].version"),
        ({"plans": "TP1"}, "REQUEST.INVALID_FIELD", "plans"),
        (
            {"salesOrders": [{"salesOrderNumber": "SO1", "orderKind": "THIRD"}]},
            "REQUEST.INVALID_FIELD",
            "salesOrders[0].orderKind",
        ),
        ({"gender": "U"}, "REQUEST.INVALID_FIELD", "gender"),
        ({"dateOfBirth": "01/02/1990"}, "REQUEST.INVALID_FIELD", "dateOfBirth"),
        ({"screenshot": {"vault_id": "v", "external_key": "k"}}, "REQUEST.INVALID_FIELD", "screenshot"),
        ({"cancelled": "yes"}, "REQUEST.INVALID_FIELD", "cancelled"),
    ],
)
def test_bad_descriptions_are_400_naming_the_field(simulator, changes, code, field):
    case_id = next(CASE_IDS)
    answer = adopt(simulator, case_id, description(case_id, **changes))
    assert answer.status_code == 400, answer.text
    assert error_code(answer) == code
    details = answer.json()["error"]["details"]
    assert (details.get("fields") if isinstance(field, list) else details.get("field")) == field
    assert simulator.state()["orders"] == [] and simulator.state()["patients"] == []


def test_a_body_that_is_not_an_object_or_a_bad_case_id_is_400(simulator):
    not_object = requests.post(
        f"{simulator.url}/_sim/cases/5/adopt", data="[1]", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert not_object.status_code == 400 and error_code(not_object) == "REQUEST.MALFORMED"
    bad_id = adopt(simulator, "0", description(1))
    assert bad_id.status_code == 400 and bad_id.json()["error"]["details"] == {"field": "caseId"}


def test_a_pid_or_sales_order_of_someone_else_is_a_conflict(simulator, api):
    _, patient = api.new_patient()
    case_id = next(CASE_IDS)
    taken = adopt(simulator, case_id, description(case_id, pId=patient["pId"]))
    assert taken.status_code == 409 and error_code(taken) == "SIM.ADOPT_CONFLICT"
    assert taken.json()["error"]["details"] == {"field": "pId"}

    assert adopt(simulator, case_id, description(case_id)).status_code == 200
    other = next(CASE_IDS)
    same_so = adopt(
        simulator,
        other,
        description(other, salesOrders=[{"salesOrderNumber": f"SOX{case_id}1", "orderKind": "PRIMARY"}]),
    )
    assert same_so.status_code == 409 and same_so.json()["error"]["details"] == {"field": "salesOrders"}
