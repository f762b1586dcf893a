"""Events (contract section 5) from the simulator process to a stand-in app.

Signatures are checked with svix's verifier, an implementation independent of the
`standardwebhooks` package the simulator signs with.
"""

import hashlib
import json

import pytest
import requests
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError

from tests.support.simulator_api import STL_ASSETS

SECRET = "whsec_ZGVtby1ldmVudHMtc2VjcmV0LWtleS0zMmJ5dGVzISE="
OTHER_SECRET = "whsec_" + "b3RoZXItc2VjcmV0LWtleS0zMi1ieXRlcy1sb25nIQ=="

DATA_FIELDS = {
    "sales_order.created": {"caseId", "mrn", "pId", "salesOrderNumber", "orderKind", "orderType", "createdAt"},
    "treatment_plan.submitted": {
        "caseId",
        "mrn",
        "pId",
        "salesOrderNumber",
        "treatmentPlanId",
        "version",
        "revisionOf",
        "stages",
        "attachments",
        "ipr",
        "notes",
        "assets",
    },
    "case.status_changed": {"caseId", "mrn", "salesOrderNumber", "status", "previousStatus"},
}


def describe(event):
    data = event["data"]
    detail = data.get("orderKind") or data.get("status") or f"v{data.get('version')}"
    return f"{event['type']}:{detail}"


def check_contract_shape(event):
    assert set(event) == {"type", "event_id", "occurred_at", "data"}
    expected = set(DATA_FIELDS[event["type"]])
    if event["data"].get("status") == "SHIPPED":
        expected.add("shipment")
    assert set(event["data"]) == expected, event


def verified(fake_app, secret=SECRET):
    """Every received event body, each checked against its signature headers."""
    bodies = []
    for raw, headers, _status in fake_app.events:
        SvixWebhook(secret).verify(raw, headers)  # raises when the signature does not match
        body = json.loads(raw)
        assert headers["webhook-id"] == body["event_id"]
        bodies.append(body)
    return bodies


def run_to_plan(simulator, api, fake_app, **config):
    simulator.config(**{"auto_advance": True, "delay_ms": 20, **config})
    case_id, patient = api.new_order()
    fake_app.assets[case_id] = STL_ASSETS
    assert api.upload(case_id, patient).status_code == 200
    return case_id, patient


def wait_for_received(simulator, fake_app, count):
    simulator.wait_for(lambda state: len(fake_app.received()) >= count)
    return fake_app.received()


def test_after_an_upload_align_sends_sales_orders_then_plan_version_1(simulator, api, fake_app):
    case_id, patient = run_to_plan(simulator, api, fake_app)
    wait_for_received(simulator, fake_app, 5)
    events = verified(fake_app)
    assert [describe(e) for e in events] == [
        "sales_order.created:PRIMARY",
        "sales_order.created:SECONDARY",
        "case.status_changed:SETUP_IN_PROGRESS",
        "treatment_plan.submitted:v1",
        "case.status_changed:CLINCHECK_READY",
    ]
    for event in events:
        check_contract_shape(event)
        assert event["data"]["caseId"] == case_id and event["data"]["mrn"] == patient["mrn"]
    primary = events[0]["data"]["salesOrderNumber"]
    plan = events[3]["data"]
    assert plan["salesOrderNumber"] == primary and plan["revisionOf"] is None
    assert 0 < plan["stages"]["upper"] <= 20 and 0 < plan["stages"]["lower"] <= 20
    assert plan["attachments"] is False and plan["ipr"] is False
    assert events[2]["data"]["previousStatus"] == "RECEIVED"

    [preview] = plan["assets"]
    assert preview["kind"] == "PROVPREV"
    image = requests.get(preview["url"], timeout=5)
    assert image.headers["Content-Type"] == "image/png" and image.content.startswith(b"\x89PNG")
    assert len(image.content) == preview["size"]
    assert hashlib.sha256(image.content).hexdigest() == preview["sha256"]
    assert api.get(f"/orders/{case_id}").json()["status"] == "CLINCHECK_READY"


def test_a_revision_brings_the_next_plan_version(simulator, api, fake_app):
    case_id, patient = run_to_plan(simulator, api, fake_app)
    first_plan = wait_for_received(simulator, fake_app, 5)[3]["data"]
    body = {"caseId": case_id, "mrn": patient["mrn"], "comments": "Close the lower gap"}
    assert api.put(f"/orders/{case_id}/modify", body).status_code == 200
    events = wait_for_received(simulator, fake_app, 8)[5:]
    assert [describe(e) for e in events] == [
        "case.status_changed:SETUP_IN_PROGRESS",
        "treatment_plan.submitted:v2",
        "case.status_changed:CLINCHECK_READY",
    ]
    assert events[0]["data"]["previousStatus"] == "MODIFICATION_REQUESTED"
    assert events[1]["data"]["revisionOf"] == first_plan["treatmentPlanId"]
    assert "Close the lower gap" in events[1]["data"]["notes"]


def test_an_accept_brings_manufacturing_then_shipping(simulator, api, fake_app):
    case_id, patient = run_to_plan(simulator, api, fake_app)
    plan = wait_for_received(simulator, fake_app, 5)[3]["data"]
    body = {
        "caseId": case_id,
        "mrn": patient["mrn"],
        "vault_id": "8a1c3a57-9f4f-4d5e-9a57-1f0c2b3d4e5f",
        "external_key": "0b7e6f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
    }
    assert api.put(f"/orders/{case_id}/accept", body).status_code == 200
    events = wait_for_received(simulator, fake_app, 7)[5:]
    assert [describe(e) for e in events] == ["case.status_changed:IN_MANUFACTURING", "case.status_changed:SHIPPED"]
    for event in events:
        check_contract_shape(event)
    assert events[0]["data"]["previousStatus"] == "APPROVED"
    shipment = events[1]["data"]["shipment"]
    assert set(shipment) == {"carrier", "trackingNumber", "shippedAt", "alignerCount"}
    assert shipment["alignerCount"] == max(plan["stages"].values())


def test_without_auto_advance_nothing_is_sent(simulator, api, fake_app):
    case_id, patient = api.new_order()
    fake_app.assets[case_id] = STL_ASSETS
    assert api.upload(case_id, patient).status_code == 200
    simulator.emit(case_id, "case.status_changed", status="ON_HOLD")  # a marker, sent after anything else
    simulator.wait_for(lambda state: fake_app.received())
    assert [describe(e) for e in fake_app.received()] == ["case.status_changed:ON_HOLD"]
    assert fake_app.received()[0]["data"]["reason"]


def test_emit_sends_one_event_now_with_overrides(simulator, api, fake_app):
    case_id, patient = api.new_order()
    result = simulator.emit(
        case_id,
        "case.status_changed",
        status="SHIPPED",
        shipment={
            "carrier": "FedEx",
            "trackingNumber": "7777",
            "shippedAt": "2024-05-01T10:00:00Z",
            "alignerCount": 14,
        },
    )
    assert result["body"]["data"]["previousStatus"] == "RECEIVED"
    [event] = simulator.wait_for(lambda state: fake_app.received())
    assert event["event_id"] == result["event_id"]
    assert event["data"]["shipment"]["carrier"] == "FedEx"
    assert api.get(f"/orders/{case_id}").json()["status"] == "SHIPPED"
    unknown_type = requests.post(f"{simulator.url}/_sim/cases/{case_id}/emit", json={"type": "nope"}, timeout=5)
    assert unknown_type.status_code == 400


def test_a_non_2xx_answer_is_retried_with_the_same_event(simulator, api, fake_app):
    fake_app.event_statuses = [500, 503]
    case_id, _ = api.new_order()
    simulator.emit(case_id, "sales_order.created")
    simulator.wait_for(lambda state: state["events"][0]["state"] == "delivered")
    attempts = [(json.loads(raw)["event_id"], status) for raw, _, status in fake_app.events]
    assert [status for _, status in attempts] == [500, 503, 200]
    assert len({event_id for event_id, _ in attempts}) == 1
    [record] = simulator.events()
    assert record["state"] == "delivered" and record["attempts"] == 3
    verified(fake_app)


def test_a_network_error_is_retried(simulator, api, fake_app):
    simulator.config(callback_base_url="http://127.0.0.1:9", retry_base_ms=200)  # nothing listens there
    case_id, _ = api.new_order()
    simulator.emit(case_id, "sales_order.created")
    simulator.wait_for(lambda state: state["events"][0]["attempts"] >= 1)
    simulator.config(callback_base_url=fake_app.url)
    simulator.wait_for(lambda state: state["events"][0]["state"] == "delivered")
    record = simulator.events()[0]
    assert record["deliveries"][0]["error"] == "ConnectionError"
    assert record["deliveries"][-1]["status"] == 200


def test_retries_are_bounded(simulator, api, fake_app):
    fake_app.event_statuses = [500] * 10
    simulator.config(retry_max_attempts=3, retry_base_ms=20)
    case_id, _ = api.new_order()
    simulator.emit(case_id, "sales_order.created")
    simulator.wait_for(lambda state: state["events"][0]["state"] == "failed")
    assert len(fake_app.events) == 3


def test_duplicates_are_delivered_when_configured(simulator, api, fake_app):
    run_to_plan(simulator, api, fake_app, duplicates=True)
    events = wait_for_received(simulator, fake_app, 10)
    ids = [e["event_id"] for e in events]
    assert len(ids) == 10 and len(set(ids)) == 5
    verified(fake_app)


def test_shuffle_delivers_out_of_order_when_configured(simulator, api, fake_app):
    run_to_plan(simulator, api, fake_app, delay_ms=0, shuffle=True, shuffle_window_ms=400, seed=3)
    events = wait_for_received(simulator, fake_app, 5)
    sent_order = [e["event_id"] for e in simulator.events()]
    received_order = [e["event_id"] for e in events]
    assert sorted(received_order) == sorted(sent_order)
    assert received_order != sent_order


def test_negative_control_without_shuffle_the_order_is_kept(simulator, api, fake_app):
    run_to_plan(simulator, api, fake_app, delay_ms=0)
    events = wait_for_received(simulator, fake_app, 5)
    assert [e["event_id"] for e in events] == [e["event_id"] for e in simulator.events()]


def test_several_secrets_each_sign(simulator, api, fake_app):
    simulator.config(callback_secret=[OTHER_SECRET, SECRET])
    case_id, _ = api.new_order()
    simulator.emit(case_id, "sales_order.created")
    simulator.wait_for(lambda state: fake_app.received())
    verified(fake_app, SECRET)
    verified(fake_app, OTHER_SECRET)
    raw, headers, _ = fake_app.events[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    with pytest.raises(WebhookVerificationError):
        SvixWebhook(SECRET).verify(raw.replace(b"sales_order", b"sales_0rder"), headers)


def emit_for_new_cases(simulator, api, count):
    case_ids = [api.new_order()[0] for _ in range(count)]
    for case_id in case_ids:
        simulator.emit(case_id, "sales_order.created")
    return case_ids


def test_several_events_are_delivered_at_once(simulator, api, fake_app):
    fake_app.event_delay_s = 0.4
    simulator.config(delivery_concurrency=4)
    case_ids = emit_for_new_cases(simulator, api, 4)
    events = wait_for_received(simulator, fake_app, 4)
    assert fake_app.most_in_flight == 4
    assert simulator.state()["delivery"]["most_in_flight"] == 4
    assert sorted(e["data"]["caseId"] for e in events) == sorted(case_ids)
    assert len(verified(fake_app)) == 4


def test_the_default_is_several_in_flight(simulator, api, fake_app):
    assert requests.get(f"{simulator.url}/_sim/config", timeout=5).json()["delivery_concurrency"] == 4
    fake_app.event_delay_s = 0.3
    emit_for_new_cases(simulator, api, 6)
    wait_for_received(simulator, fake_app, 6)
    assert fake_app.most_in_flight == 4


def test_negative_control_with_a_concurrency_of_one_events_go_one_at_a_time(simulator, api, fake_app):
    fake_app.event_delay_s = 0.1
    simulator.config(delivery_concurrency=1)
    emit_for_new_cases(simulator, api, 4)
    wait_for_received(simulator, fake_app, 4)
    assert fake_app.most_in_flight == 1


def test_one_cases_events_stay_in_order_while_other_cases_go_concurrently(simulator, api, fake_app):
    fake_app.event_delay_s = 0.1
    simulator.config(delivery_concurrency=4)
    case_id, _ = api.new_order()
    sent = [simulator.emit(case_id, "case.status_changed", status=s)["event_id"] for s in ("ON_HOLD", "RECEIVED")]
    other_cases = emit_for_new_cases(simulator, api, 2)
    sent.append(simulator.emit(case_id, "sales_order.created")["event_id"])
    events = wait_for_received(simulator, fake_app, 5)
    assert [e["event_id"] for e in events if e["data"]["caseId"] == case_id] == sent
    assert {e["data"]["caseId"] for e in events} == {case_id, *other_cases}
    assert fake_app.most_in_flight >= 2
    verified(fake_app)


def test_concurrent_deliveries_are_retried_until_each_event_is_accepted_once(simulator, api, fake_app):
    fake_app.event_statuses = [500, 503, 500, 502]  # the first four attempts fail, whichever events they are
    fake_app.event_delay_s = 0.05
    simulator.config(delivery_concurrency=4, retry_base_ms=20)
    case_ids = emit_for_new_cases(simulator, api, 4)
    simulator.wait_for(lambda state: all(e["state"] == "delivered" for e in state["events"]) and state["events"])
    accepted = [e["event_id"] for e in fake_app.received()]
    assert len(accepted) == 4 and len(set(accepted)) == 4
    assert sorted(e["data"]["caseId"] for e in fake_app.received()) == sorted(case_ids)
    assert sum(record["attempts"] for record in simulator.events()) == 8
    assert len(fake_app.received(accepted_only=False)) == 8
    verified(fake_app)


@pytest.mark.parametrize("value", [0, 65, "4", 2.5, True, None])
def test_a_bad_delivery_concurrency_is_refused(simulator, value):
    answer = requests.post(f"{simulator.url}/_sim/config", json={"delivery_concurrency": value}, timeout=5)
    assert answer.status_code == 400
    assert "delivery_concurrency" in answer.json()["error"]["message"]
    assert requests.get(f"{simulator.url}/_sim/config", timeout=5).json()["delivery_concurrency"] == 4
