"""Injected faults against the simulator process: each mode does what it is configured to do."""

import time

import pytest
import requests

from tests.support.simulator_api import CASE_IDS, error_code, patient_body


def test_a_status_fault_answers_count_times_then_stops(simulator, api):
    case_id, patient = api.new_patient()
    simulator.fault(route="POST /orders", status=503, count=2)
    body = {
        "caseId": case_id,
        "pId": patient["pId"],
        "mrn": patient["mrn"],
        "orderType": "IAS",
        "treatmentOption": "BOTH_ARCHES",
        "chiefConcern": "Crowding",
    }
    answers = [api.post("/orders", body, key="order-after-503") for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert error_code(answers[0]) == "SERVICE.UNAVAILABLE"
    assert simulator.state()["effects"]["orders"] == 1  # faults did no work and were not kept for the key
    assert simulator.faults()[0]["remaining"] == 0 and simulator.faults()[0]["fired"] == 2
    logged = [(entry["status"], bool(entry["fault"])) for entry in simulator.requests() if entry["path"] == "/orders"]
    assert logged == [(503, True), (503, True), (200, False)]


def test_a_fault_only_hits_its_route(simulator, api):
    simulator.fault(route="GET /orders/{caseId}", status=500)
    simulator.fault(route="GET /orders/7", status=429, retry_after=9)
    assert api.get("/orders/5").status_code == 500
    assert api.post("/patients", patient_body(next(CASE_IDS))).status_code == 200
    simulator.clear_faults()
    assert simulator.faults() == []
    simulator.fault(route="GET /orders/7", status=429, retry_after=9)
    limited = api.get("/orders/7")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "9"
    assert api.get("/orders/8").status_code == 404


def statuses_with_rate(simulator, api, seed):
    simulator.clear_faults()
    simulator.fault(route="*", rate=0.3, status=503, seed=seed)
    return [api.get("/orders/1").status_code for _ in range(30)]


def test_a_rate_fault_is_repeatable_with_a_seed(simulator, api):
    api.get_token()
    first = statuses_with_rate(simulator, api, seed=11)
    again = statuses_with_rate(simulator, api, seed=11)
    other = statuses_with_rate(simulator, api, seed=12)
    assert first == again
    assert first != other
    assert 3 <= first.count(503) <= 18 and set(first) == {404, 503}


def test_timeout_after_commit_does_the_work_and_answers_too_late(simulator, api):
    simulator.fault(route="POST /patients", mode="timeout_after_commit", count=1, seconds=1.5)
    body = patient_body(next(CASE_IDS))
    with pytest.raises(requests.ReadTimeout):
        api.post("/patients", body, key="slow-key", timeout=0.5)
    assert simulator.state()["effects"]["patients"] == 1  # committed before the client gave up
    retry = api.post("/patients", body, key="slow-key")
    assert retry.status_code == 200 and retry.json()["created"] is True
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert simulator.state()["effects"]["patients"] == 1
    assert simulator.requests()[-2]["delivery"] == "late"


def test_reset_drops_the_connection_without_doing_the_work(simulator, api):
    api.get_token()
    simulator.fault(mode="reset", count=1)
    with pytest.raises(requests.ConnectionError):
        api.post("/patients", patient_body(next(CASE_IDS)))
    assert simulator.state()["effects"]["patients"] == 0
    assert simulator.requests()[-1]["delivery"] == "dropped"
    assert api.post("/patients", patient_body(next(CASE_IDS))).status_code == 200


def test_reset_after_commit_does_the_work_then_drops_the_connection(simulator, api):
    api.get_token()
    simulator.fault(route="POST /patients", mode="reset_after_commit", count=1)
    body = patient_body(next(CASE_IDS))
    with pytest.raises(requests.ConnectionError):
        api.post("/patients", body, key="dropped-key")
    assert simulator.state()["effects"]["patients"] == 1
    assert api.post("/patients", body, key="dropped-key").headers["Idempotent-Replayed"] == "true"


def elapsed(call):
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_latency_from_a_fault_and_from_the_config(simulator, api):
    api.get_token()
    simulator.fault(route="GET /orders/{caseId}", latency_ms=300, count=1)
    assert elapsed(lambda: api.get("/orders/1")) >= 0.3
    assert [(f["fired"], f["remaining"]) for f in simulator.faults()] == [(1, 0)]  # count=1: used up
    simulator.config(latency_ms=200)
    assert elapsed(lambda: api.get("/orders/1")) >= 0.2


def test_a_bad_fault_spec_is_refused(simulator):
    response = requests.post(f"{simulator.url}/_sim/faults", json={"mode": "explode"}, timeout=5)
    assert response.status_code == 400
    response = requests.post(f"{simulator.url}/_sim/faults", json={"status": 503, "colour": "red"}, timeout=5)
    assert response.status_code == 400
    assert simulator.faults() == []
