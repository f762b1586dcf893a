"""Idempotency-Key against the simulator process: replay, mismatch, and concurrent repeats."""

import threading

from tests.support.simulator_api import CASE_IDS, error_code, patient_body
from tests.support.threads import race

THREADS = 20


def test_a_replay_answers_the_same_without_doing_the_work(simulator, api):
    body = patient_body(next(CASE_IDS))
    first = api.post("/patients", body, key="create-patient-1")
    replay = api.post("/patients", body, key="create-patient-1")
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json() and first.json()["created"] is True
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert simulator.state()["effects"]["patients"] == 1
    log = [entry for entry in simulator.requests() if entry["route"] == "POST /patients"]
    assert [entry["replayed"] for entry in log] == [False, True]
    assert log[0]["body"]["firstName"] == "[redacted]" and log[0]["body"]["mrn"] == body["mrn"]


def test_without_a_key_the_work_is_done_again(simulator, api):
    body = patient_body(next(CASE_IDS))
    first = api.post("/patients", body)
    second = api.post("/patients", body)
    assert (first.json()["created"], second.json()["created"]) == (True, False)
    assert simulator.state()["effects"]["patients"] == 2


def test_the_same_key_with_other_parameters_is_422_mismatch(simulator, api):
    case_id = next(CASE_IDS)
    assert api.post("/patients", patient_body(case_id), key="k-mismatch").status_code == 200
    response = api.post("/patients", patient_body(case_id, gender="M"), key="k-mismatch")
    assert response.status_code == 422 and error_code(response) == "IDEMPOTENCY.MISMATCH"
    assert simulator.state()["effects"]["patients"] == 1


def test_form_and_json_with_the_same_values_are_the_same_parameters(simulator, api):
    case_id, patient = api.new_patient()
    json_body = {
        "caseId": case_id,
        "pId": patient["pId"],
        "mrn": patient["mrn"],
        "orderType": "IAS",
        "treatmentOption": "UPPER_ONLY",
        "chiefConcern": "Crowding",
    }
    first = api.post("/orders", json_body, key="order-k")
    replay = api.post("/orders", data={k: str(v) for k, v in json_body.items()}, key="order-k")
    assert replay.json() == first.json()
    assert simulator.state()["effects"]["orders"] == 1


def test_a_refusal_is_replayed_too(simulator, api):
    body = patient_body(next(CASE_IDS), gender="X")
    first = api.post("/patients", body, key="refused")
    replay = api.post("/patients", body, key="refused")
    assert first.status_code == replay.status_code == 422
    assert replay.json() == first.json()  # the same body, request_id included


def test_twenty_concurrent_requests_with_one_key_do_the_work_once(simulator, api):
    simulator.config(work_ms=100)
    body = patient_body(next(CASE_IDS))
    api.get_token()
    responses = race(lambda: api.fresh().post("/patients", body, key="racing-key"), THREADS)
    assert [r.status_code for r in responses] == [200] * THREADS
    assert len({r.text for r in responses}) == 1
    assert simulator.state()["effects"]["patients"] == 1


def test_negative_control_without_the_per_key_lock_the_work_is_doubled(simulator, api):
    simulator.config(work_ms=100, idempotency_lock=False)
    body = patient_body(next(CASE_IDS))
    api.get_token()
    race(lambda: api.fresh().post("/patients", body, key="racing-key"), THREADS)
    assert simulator.state()["effects"]["patients"] > 1


def test_concurrent_distinct_patients_are_neither_lost_nor_doubled(simulator, api):
    api.get_token()
    case_ids = [next(CASE_IDS) for _ in range(THREADS)]
    pending = list(case_ids)
    lock = threading.Lock()

    def create():
        with lock:
            case_id = pending.pop()
        return api.fresh().post("/patients", patient_body(case_id), key=f"distinct-{case_id}").json()["pId"]

    p_ids = race(create, THREADS)
    state = simulator.state()
    assert len(set(p_ids)) == THREADS
    assert state["effects"]["patients"] == THREADS and len(state["patients"]) == THREADS
