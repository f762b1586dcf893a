"""The Align client against fake responses: results, errors, tokens, timeouts, keys."""

import json
import pickle
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from django.core.cache.backends.locmem import LocMemCache

from align_workflow.align.client import (
    Align,
    AlignAuthError,
    AlignError,
    AlignRejected,
    AlignUnavailable,
    AssetUpload,
    CaseView,
    ClinCheckResult,
    CreatedOrder,
    CreatedPatient,
)
from tests.support.threads import together

BASE = "http://align.test"
TOKEN_URL = f"{BASE}/auth/token"


def private_cache():
    return LocMemCache(f"align-test-{uuid.uuid4()}", {})


@pytest.fixture
def cache():
    return private_cache()


@pytest.fixture
def align(cache):
    return Align(BASE, "demo", "demo-secret", connect_timeout=1.5, read_timeout=4, cache=cache)


@pytest.fixture
def fake():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def add_token(fake, token="tok-1", expires_in=3600):
    return fake.post(TOKEN_URL, json={"access_token": token, "token_type": "Bearer", "expires_in": expires_in})


def token_calls(fake):
    return [c for c in fake.calls if c.request.url == TOKEN_URL]


def api_calls(fake):
    return [c for c in fake.calls if c.request.url != TOKEN_URL]


PATIENT = dict(
    case_id=7,
    mrn="MRN000007",
    first_name="Jane",
    last_name="Doe",
    date_of_birth="1990-05-17",
    gender="F",
    email="jane@example.com",
    phone="555-0100",
    address={"line1": "1 Main St", "line2": "", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"},
)

# Every call of the contract: (method name, kwargs, HTTP method, URL, a 200 body, the expected result).
CALLS = [
    (
        "create_patient",
        {**PATIENT, "idempotency_key": "k-patient"},
        "POST",
        f"{BASE}/patients",
        {"pId": "P0000001", "mrn": "MRN000007", "created": True},
        CreatedPatient(p_id="P0000001", mrn="MRN000007", created=True),
    ),
    (
        "create_order",
        dict(
            case_id=7,
            p_id="P0000001",
            mrn="MRN000007",
            treatment_option="BOTH_ARCHES",
            chief_concern="straighten",
            idempotency_key="k-order",
        ),
        "POST",
        f"{BASE}/orders",
        {"caseId": 7, "pId": "P0000001", "orderType": "IAS", "status": "RECEIVED"},
        CreatedOrder(case_id=7, p_id="P0000001", order_type="IAS", status="RECEIVED"),
    ),
    (
        "upload_assets",
        dict(case_id=7, p_id="P0000001", mrn="MRN000007", idempotency_key="k-upload"),
        "POST",
        f"{BASE}/assets/upload",
        {"caseId": 7, "accepted": True, "assetCount": 2},
        AssetUpload(case_id=7, accepted=True, asset_count=2),
    ),
    (
        "accept_clincheck",
        dict(case_id=7, mrn="MRN000007", vault_id="v-1", external_key="e-1", idempotency_key="k-accept"),
        "PUT",
        f"{BASE}/orders/7/accept",
        {"caseId": 7, "status": "APPROVED", "salesOrderNumber": "SO-1"},
        ClinCheckResult(case_id=7, status="APPROVED", sales_order_number="SO-1"),
    ),
    (
        "request_modification",
        dict(case_id=7, mrn="MRN000007", comments="less IPR", idempotency_key="k-modify"),
        "PUT",
        f"{BASE}/orders/7/modify",
        {"caseId": 7, "status": "MODIFICATION_REQUESTED"},
        ClinCheckResult(case_id=7, status="MODIFICATION_REQUESTED", sales_order_number=None),
    ),
    (
        "get_case",
        dict(case_id=7),
        "GET",
        f"{BASE}/orders/7",
        {
            "caseId": 7,
            "pId": "P0000001",
            "status": "RECEIVED",
            "orders": [{"orderType": "IAS"}],
            "salesOrders": [{"salesOrderNumber": "SO-1"}],
            "plans": [],
        },
        CaseView(
            case_id=7,
            p_id="P0000001",
            status="RECEIVED",
            orders=[{"orderType": "IAS"}],
            sales_orders=[{"salesOrderNumber": "SO-1"}],
            plans=[],
        ),
    ),
]
MUTATING = [c for c in CALLS if c[2] != "GET"]
CALL_IDS = [c[0] for c in CALLS]


def invoke(align, name, kwargs):
    return getattr(align, name)(**kwargs)


# --- results, bodies, headers ---------------------------------------------------------


@pytest.mark.parametrize("name, kwargs, method, url, body, expected", CALLS, ids=CALL_IDS)
def test_each_call_returns_its_typed_result(align, fake, name, kwargs, method, url, body, expected):
    add_token(fake)
    fake.add(method, url, json=body)

    assert invoke(align, name, kwargs) == expected

    (call,) = api_calls(fake)
    assert call.request.headers["Authorization"] == "Bearer tok-1"
    if method != "GET":
        assert call.request.headers["Content-Type"] == "application/json"


def test_create_patient_sends_the_contract_fields_as_json(align, fake):
    add_token(fake)
    fake.post(f"{BASE}/patients", json={"pId": "P1", "mrn": "MRN000007", "created": False})

    assert align.create_patient(**PATIENT, idempotency_key="k") == CreatedPatient("P1", "MRN000007", False)

    sent = json.loads(api_calls(fake)[0].request.body)
    assert sent == {
        "caseId": 7,
        "mrn": "MRN000007",
        "firstName": "Jane",
        "lastName": "Doe",
        "dateOfBirth": "1990-05-17",
        "gender": "F",
        "email": "jane@example.com",
        "phone": "555-0100",
        "address": PATIENT["address"],
    }


def test_the_other_calls_send_the_contract_fields(align, fake):
    add_token(fake)
    for _, _kwargs, method, url, body, _ in CALLS[1:]:
        fake.add(method, url, json=body)
    for name, kwargs, *_ in CALLS[1:]:
        invoke(align, name, kwargs)

    sent = [json.loads(c.request.body) if c.request.body else None for c in api_calls(fake)]
    assert sent == [
        {
            "caseId": 7,
            "pId": "P0000001",
            "mrn": "MRN000007",
            "orderType": "IAS",
            "treatmentOption": "BOTH_ARCHES",
            "chiefConcern": "straighten",
        },
        {"pId": "P0000001", "mrn": "MRN000007", "caseId": 7},
        {"caseId": 7, "mrn": "MRN000007", "vault_id": "v-1", "external_key": "e-1"},
        {"caseId": 7, "mrn": "MRN000007", "comments": "less IPR"},
        None,
    ]


def test_token_request_sends_client_credentials(align, fake):
    add_token(fake)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    align.get_case(7)

    (call,) = token_calls(fake)
    assert json.loads(call.request.body) == {
        "client_id": "demo",
        "client_secret": "demo-secret",
        "grant_type": "client_credentials",
    }
    assert "Authorization" not in call.request.headers


@pytest.mark.parametrize("name, kwargs, method, url, body, expected", MUTATING, ids=[c[0] for c in MUTATING])
def test_every_mutating_call_sends_the_callers_idempotency_key(align, fake, name, kwargs, method, url, body, expected):
    add_token(fake)
    fake.add(method, url, json=body)
    invoke(align, name, kwargs)
    assert api_calls(fake)[0].request.headers["Idempotency-Key"] == kwargs["idempotency_key"]


@pytest.mark.parametrize("name, kwargs, method, url, body, expected", MUTATING, ids=[c[0] for c in MUTATING])
def test_no_idempotency_key_means_no_header(align, fake, name, kwargs, method, url, body, expected):
    add_token(fake)
    fake.add(method, url, json=body)
    invoke(align, name, {**kwargs, "idempotency_key": None})
    assert "Idempotency-Key" not in api_calls(fake)[0].request.headers


def test_reading_a_case_sends_no_idempotency_key(align, fake):
    add_token(fake)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    align.get_case(7)
    assert all("Idempotency-Key" not in c.request.headers for c in fake.calls)


def test_every_request_has_the_connect_and_read_timeouts(align, fake):
    add_token(fake)
    for _, _, method, url, body, _ in CALLS:
        fake.add(method, url, json=body)
    for name, kwargs, *_ in CALLS:
        invoke(align, name, kwargs)

    assert len(fake.calls) == len(CALLS) + 1  # and the token request
    assert [c.request.req_kwargs["timeout"] for c in fake.calls] == [(1.5, 4.0)] * len(fake.calls)


def test_timeouts_default_to_the_settings(settings, cache, fake):
    settings.ALIGN_CONNECT_TIMEOUT = 2.5
    settings.ALIGN_READ_TIMEOUT = 9
    settings.ALIGN_SERVICE_URL = BASE
    add_token(fake)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    Align(cache=cache).get_case(7)
    assert {c.request.req_kwargs["timeout"] for c in fake.calls} == {(2.5, 9.0)}


# --- errors -----------------------------------------------------------------------


def envelope(code, message, request_id="req-42"):
    return {"error": {"code": code, "message": message, "details": {}}, "request_id": request_id}


@pytest.mark.parametrize(
    "status, code",
    [
        (400, "VALIDATION.MISSING_FIELD"),
        (404, "PATIENT.NOT_FOUND"),
        (409, "ORDER.ALREADY_EXISTS"),
        (422, "PATIENT.GENDER_INVALID"),
    ],
)
def test_other_4xx_is_rejected_with_the_evidence(align, fake, status, code):
    add_token(fake)
    fake.post(f"{BASE}/orders", status=status, json=envelope(code, "the service says no"))

    with pytest.raises(AlignRejected) as caught:
        invoke(align, *MUTATING[1][:2])

    error = caught.value
    assert (error.status, error.code, error.message, error.request_id) == (
        status,
        code,
        "the service says no",
        "req-42",
    )
    assert error.retryable is False
    assert json.loads(error.body) == envelope(code, "the service says no")
    assert (error.method, error.path) == ("POST", "/orders")
    assert code in str(error) and "req-42" in str(error)
    assert len(api_calls(fake)) == 1  # never retried by the client itself


@pytest.mark.parametrize(
    "status, headers, retry_after",
    [
        (500, {}, None),
        (502, {}, None),
        (503, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "1.5"}, 1.5),
    ],
)
def test_5xx_and_429_are_unavailable_with_retry_after(align, fake, status, headers, retry_after):
    add_token(fake)
    fake.post(f"{BASE}/patients", status=status, headers=headers, json=envelope("ALIGN.UNAVAILABLE", "try later"))

    with pytest.raises(AlignUnavailable) as caught:
        align.create_patient(**PATIENT, idempotency_key="k")

    error = caught.value
    assert (error.status, error.code, error.message, error.request_id) == (
        status,
        "ALIGN.UNAVAILABLE",
        "try later",
        "req-42",
    )
    assert error.retryable is True
    assert error.retry_after == retry_after


def test_retry_after_as_an_http_date(align, fake):
    add_token(fake)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    fake.get(f"{BASE}/orders/7", status=503, headers={"Retry-After": when}, json=envelope("X", "y"))
    with pytest.raises(AlignUnavailable) as caught:
        align.get_case(7)
    assert 100 < caught.value.retry_after <= 120


@pytest.mark.parametrize(
    "status, kind",
    [(502, AlignUnavailable), (404, AlignRejected)],
)
def test_a_body_that_is_not_json_is_still_a_typed_error(align, fake, status, kind):
    add_token(fake)
    fake.get(f"{BASE}/orders/7", status=status, body="<html>Bad Gateway</html>", content_type="text/html")
    with pytest.raises(kind) as caught:
        align.get_case(7)
    error = caught.value
    assert (error.status, error.code, error.request_id) == (status, f"HTTP_{status}", None)
    assert "not JSON" in error.message
    assert error.body == "<html>Bad Gateway</html>"


def test_request_id_from_the_header_when_the_body_has_none(align, fake):
    add_token(fake)
    fake.get(f"{BASE}/orders/7", status=500, body="oops", headers={"X-Request-Id": "hdr-1"})
    with pytest.raises(AlignUnavailable) as caught:
        align.get_case(7)
    assert caught.value.request_id == "hdr-1"


@pytest.mark.parametrize(
    "exc, code",
    [
        (requests.ReadTimeout("read timed out"), "TIMEOUT"),
        (requests.ConnectTimeout("connect timed out"), "TIMEOUT"),
        (requests.ConnectionError("connection refused"), "CONNECTION"),
    ],
)
def test_timeouts_and_connection_errors_are_unavailable(align, fake, exc, code):
    add_token(fake)
    fake.post(f"{BASE}/assets/upload", body=exc)
    with pytest.raises(AlignUnavailable) as caught:
        invoke(align, *MUTATING[2][:2])
    error = caught.value
    assert (error.status, error.code, error.request_id, error.retry_after) == (None, code, None, None)
    assert error.retryable is True


def test_a_200_that_is_not_json_is_unavailable(align, fake):
    add_token(fake)
    fake.get(f"{BASE}/orders/7", body="<html>maintenance</html>")
    with pytest.raises(AlignUnavailable) as caught:
        align.get_case(7)
    assert (caught.value.status, caught.value.code) == (200, "INVALID_RESPONSE")


def test_a_200_missing_a_field_is_unavailable(align, fake):
    add_token(fake)
    fake.post(f"{BASE}/patients", json={"mrn": "MRN000007"})
    with pytest.raises(AlignUnavailable) as caught:
        align.create_patient(**PATIENT, idempotency_key="k")
    assert caught.value.code == "INVALID_RESPONSE"
    assert "pId" in caught.value.message


def test_errors_survive_pickling_with_their_evidence():
    error = AlignUnavailable("busy", status=503, code="ALIGN.UNAVAILABLE", request_id="r", body="{}", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is AlignUnavailable
    assert (copy.status, copy.code, copy.message, copy.request_id, copy.body, copy.retry_after) == (
        503,
        "ALIGN.UNAVAILABLE",
        "busy",
        "r",
        "{}",
        3.0,
    )
    rejected = pickle.loads(pickle.dumps(AlignRejected("no", status=409, code="C")))
    assert isinstance(rejected, AlignError) and rejected.code == "C"


# --- the token --------------------------------------------------------------------


def test_the_token_is_cached_and_reused(cache, fake):
    add_token(fake)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    first = Align(BASE, "demo", "demo-secret", cache=cache)
    first.get_case(7)
    first.get_case(7)
    # A second client (another process, in production) finds it in the shared cache.
    Align(BASE, "demo", "demo-secret", cache=cache).get_case(7)

    assert len(token_calls(fake)) == 1
    assert {c.request.headers["Authorization"] for c in api_calls(fake)} == {"Bearer tok-1"}


def test_a_different_service_or_client_id_has_its_own_token(cache, fake):
    add_token(fake)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    Align(BASE, "demo", "demo-secret", cache=cache).get_case(7)
    Align(BASE, "other", "other-secret", cache=cache).get_case(7)
    assert len(token_calls(fake)) == 2


def test_the_token_is_cached_for_expires_in_minus_60_seconds(align, cache, fake, monkeypatch):
    add_token(fake, "tok-1", expires_in=3600)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    align.get_case(7)

    monkeypatch.setattr(time, "time", lambda: now + 3539)
    assert cache.get(align.token_cache_key) == "tok-1"
    align.get_case(7)
    assert len(token_calls(fake)) == 1

    monkeypatch.setattr(time, "time", lambda: now + 3541)
    assert cache.get(align.token_cache_key) is None
    align.get_case(7)
    assert len(token_calls(fake)) == 2


def test_a_token_shorter_lived_than_the_margin_is_used_but_not_cached(align, cache, fake):
    add_token(fake, "short", expires_in=30)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    align.get_case(7)
    assert api_calls(fake)[0].request.headers["Authorization"] == "Bearer short"
    assert cache.get(align.token_cache_key) is None


def test_a_401_fetches_a_new_token_once_and_resends(align, cache, fake):
    fake.post(TOKEN_URL, json={"access_token": "tok-1", "expires_in": 3600})
    fake.post(TOKEN_URL, json={"access_token": "tok-2", "expires_in": 3600})
    fake.post(f"{BASE}/orders", status=401, json=envelope("AUTH.TOKEN_EXPIRED", "expired"))
    fake.post(f"{BASE}/orders", json=MUTATING[1][4])

    assert invoke(align, *MUTATING[1][:2]) == MUTATING[1][5]

    sent = api_calls(fake)
    assert [c.request.headers["Authorization"] for c in sent] == ["Bearer tok-1", "Bearer tok-2"]
    assert [c.request.headers["Idempotency-Key"] for c in sent] == ["k-order", "k-order"]
    assert len(token_calls(fake)) == 2
    assert cache.get(align.token_cache_key) == "tok-2"


def test_a_second_401_is_an_auth_error(align, fake):
    fake.post(TOKEN_URL, json={"access_token": "tok-1", "expires_in": 3600})
    fake.post(TOKEN_URL, json={"access_token": "tok-2", "expires_in": 3600})
    fake.get(f"{BASE}/orders/7", status=401, json=envelope("AUTH.TOKEN_INVALID", "unknown token", "req-9"))

    with pytest.raises(AlignAuthError) as caught:
        align.get_case(7)

    assert (caught.value.status, caught.value.code, caught.value.request_id) == (401, "AUTH.TOKEN_INVALID", "req-9")
    assert caught.value.retryable is False
    assert len(api_calls(fake)) == 2  # one resend, not more
    assert len(token_calls(fake)) == 2


def test_refused_credentials_are_an_auth_error(align, fake):
    fake.post(TOKEN_URL, status=401, json=envelope("AUTH.INVALID_CLIENT", "bad credentials"))
    with pytest.raises(AlignAuthError) as caught:
        align.get_case(7)
    assert caught.value.code == "AUTH.INVALID_CLIENT"
    assert api_calls(fake) == []


def test_an_unavailable_token_endpoint_is_unavailable(align, fake):
    fake.post(TOKEN_URL, status=503, headers={"Retry-After": "5"}, json=envelope("ALIGN.UNAVAILABLE", "down"))
    with pytest.raises(AlignUnavailable) as caught:
        align.get_case(7)
    assert caught.value.retry_after == 5.0


def test_a_token_already_replaced_by_someone_else_is_not_dropped(align, cache, fake):
    """Compare-and-delete: the 401 was for the old token; the cache already has a newer one."""
    cache.set(align.token_cache_key, "old", 600)

    def answer(request):
        if request.headers["Authorization"] == "Bearer old":
            cache.set(align.token_cache_key, "newer-from-another-process", 600)
            return 401, {}, json.dumps(envelope("AUTH.TOKEN_EXPIRED", "expired"))
        return 200, {}, json.dumps({"caseId": 7})

    fake.add_callback("GET", f"{BASE}/orders/7", callback=answer)
    add_token(fake, "should-not-be-fetched")

    align.get_case(7)

    assert token_calls(fake) == []
    assert [c.request.headers["Authorization"] for c in api_calls(fake)] == [
        "Bearer old",
        "Bearer newer-from-another-process",
    ]
    assert cache.get(align.token_cache_key) == "newer-from-another-process"


def _slow_token_endpoint(fake, delay=0.2):
    issued = []
    guard = threading.Lock()

    def answer(request):
        time.sleep(delay)
        with guard:
            issued.append(1)
            n = len(issued)
        return 200, {}, json.dumps({"access_token": f"tok-{n}", "expires_in": 3600})

    fake.add_callback("POST", TOKEN_URL, callback=answer)
    return issued


def test_threads_starting_together_make_one_token_request(cache, fake):
    issued = _slow_token_endpoint(fake)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    align = Align(BASE, "demo", "demo-secret", cache=cache)
    together(lambda: align.get_case(7))
    assert len(issued) == 1


def test_without_the_lock_threads_starting_together_make_several_token_requests(cache, fake):
    class UnlockedAlign(Align):
        share_token_lock = False

    issued = _slow_token_endpoint(fake)
    fake.get(f"{BASE}/orders/7", json={"caseId": 7})
    align = UnlockedAlign(BASE, "demo", "demo-secret", cache=cache)
    together(lambda: align.get_case(7))
    assert len(issued) > 1
