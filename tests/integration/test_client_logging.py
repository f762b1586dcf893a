"""The client's logs say what happened (method, path, status, latency, request id, case id)
and never who the patient is, on success and on every kind of failure."""

import json
import logging
import uuid

import pytest
import requests
import responses
from django.core.cache.backends.locmem import LocMemCache

from align_workflow.align.client import Align, AlignError

BASE = "http://align.test"
LOGGER = "align_workflow.align.client"
ACCESS_TOKEN = "at-7f3c9e1d5b"

PATIENT = dict(
    case_id=4321,
    mrn="MRN-LOG-1",
    first_name="Zebulon",
    last_name="Quackenbush",
    date_of_birth="1961-02-29",
    gender="M",
    email="zebulon.q@example.org",
    phone="+1-555-867-5309",
    address={
        "line1": "742 Evergreen Terrace",
        "line2": "Apt 9B",
        "city": "Shelbyville",
        "state": "KY",
        "zip": "40065",
        "country": "US",
    },
)
PHI = [
    PATIENT["first_name"],
    PATIENT["last_name"],
    PATIENT["date_of_birth"],
    PATIENT["email"],
    PATIENT["phone"],
    *(v for v in PATIENT["address"].values() if len(v) > 2),
]


def echoing_envelope(request):
    """A service error whose message repeats what it was sent, as real services do."""
    return {
        "error": {
            "code": "PATIENT.INVALID",
            "message": f"could not register {request.body.decode()}",
            "details": json.loads(request.body),
        },
        "request_id": "req-echo",
    }


def answer_success(request):
    return 200, {"X-Request-Id": "req-ok"}, json.dumps({"pId": "P9", "mrn": "MRN-LOG-1", "created": True})


def answer_422_echo(request):
    return 422, {}, json.dumps(echoing_envelope(request))


def answer_503_echo(request):
    return 503, {"Retry-After": "3"}, json.dumps(echoing_envelope(request))


def answer_400_text_echo(request):
    return 400, {"Content-Type": "text/plain"}, f"bad request: {request.body.decode()}"


def answer_timeout(request):
    raise requests.ReadTimeout(f"timed out sending {request.body.decode()}")


def answer_connection_error(request):
    raise requests.ConnectionError(f"reset while sending {request.body.decode()}")


@pytest.fixture
def fake():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/auth/token", json={"access_token": ACCESS_TOKEN, "expires_in": 3600})
        yield rsps


@pytest.fixture
def align():
    return Align(BASE, "demo", "demo-secret", cache=LocMemCache(f"log-{uuid.uuid4()}", {}))


def everything_logged(caplog):
    """The formatted lines plus every argument and extra attribute of every record."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.extend(repr(a) for a in (record.args or ()))
        parts.extend(repr(v) for k, v in vars(record).items() if k.startswith("align_"))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@pytest.mark.parametrize(
    "answer, outcome",
    [
        (answer_success, "200"),
        (answer_422_echo, "422"),
        (answer_503_echo, "503"),
        (answer_400_text_echo, "400"),
        (answer_timeout, "TIMEOUT"),
        (answer_connection_error, "CONNECTION"),
    ],
    ids=["success", "422-echo", "503-echo", "400-text-echo", "timeout", "connection"],
)
def test_logs_carry_no_patient_details(align, fake, caplog, answer, outcome):
    fake.add_callback("POST", f"{BASE}/patients", callback=answer)
    caplog.set_level(logging.DEBUG, logger="align_workflow")

    failure = None
    try:
        align.create_patient(**PATIENT, idempotency_key="case-4321-create_patient")
    except AlignError as error:
        failure = error
    if failure is not None:
        # The seeded values really did reach the error (the evidence is kept for people),
        # so their absence from the logs below means something.
        assert any(value in f"{failure} {failure.body} {failure.__cause__}" for value in PHI)

    logged = everything_logged(caplog)
    assert [value for value in PHI if value in logged] == []

    (line,) = [r for r in caplog.records if r.name == LOGGER and getattr(r, "align_path", None) == "/patients"]
    assert line.align_method == "POST"
    assert line.align_case_id == 4321
    assert isinstance(line.align_latency_ms, int)
    message = line.getMessage()
    assert "POST /patients" in message and "case_id=4321" in message and "latency_ms=" in message
    assert outcome in message
    if outcome == "200":
        assert line.levelno == logging.INFO and "request_id=req-ok" in message
    else:
        assert line.levelno == logging.WARNING
    if outcome in ("422", "503"):
        assert "request_id=req-echo" in message


def test_a_token_fetch_logs_neither_the_secret_nor_the_token(align, fake, caplog):
    fake.get(f"{BASE}/orders/4321", json={"caseId": 4321})
    caplog.set_level(logging.DEBUG, logger="align_workflow")
    align.get_case(4321)

    logged = everything_logged(caplog)
    assert "demo-secret" not in logged
    assert "Bearer" not in logged and ACCESS_TOKEN not in logged
    assert "POST /auth/token status=200" in logged
    assert "GET /orders/4321 status=200" in logged
