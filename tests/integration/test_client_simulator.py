"""The Align client and the HTTP vault against the simulator process: what the contract
promises, seen through typed results and typed errors."""

import io
import itertools
import time
import uuid

import pytest
from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from PIL import Image

from align_workflow.align.client import (
    Align,
    AlignAuthError,
    AlignRejected,
    AlignUnavailable,
    AssetUpload,
    CreatedOrder,
    CreatedPatient,
)
from align_workflow.align.vault import HttpVault, VaultError
from tests.support.simulator_api import STL_ASSETS

CASE_IDS = itertools.count(98_001)


def png_bytes():
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(out, format="PNG")
    return out.getvalue()


def patient_fields(case_id, **changes):
    fields = dict(
        case_id=case_id,
        mrn=f"MRN-{case_id}",
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth="1990-04-01",
        gender="F",
        email="ada@example.org",
        phone="+1 555 0100",
        address={
            "line1": "1 Main St",
            "line2": "",
            "city": "Springfield",
            "state": "IL",
            "zip": "62701",
            "country": "US",
        },
    )
    fields.update(changes)
    return fields


@pytest.fixture
def align(simulator):
    return Align()  # settings.ALIGN_SERVICE_URL points at the simulator


def new_order(align, case_id):
    patient = align.create_patient(**patient_fields(case_id), idempotency_key=f"case-{case_id}-patient")
    align.create_order(
        case_id=case_id,
        p_id=patient.p_id,
        mrn=patient.mrn,
        treatment_option="BOTH_ARCHES",
        chief_concern=settings.ALIGN_CHIEF_CONCERN,
        idempotency_key=f"case-{case_id}-order",
    )
    return patient


def pending_plan_version(case_id):
    def check(state):
        plans = [p for p in state["plans"] if p.get("caseId") == case_id and p.get("status") == "PENDING"]
        return plans and plans[-1].get("version")

    return check


def test_a_case_through_every_call(simulator, fake_app, align):
    case_id = next(CASE_IDS)
    fake_app.assets[case_id] = STL_ASSETS
    simulator.config(auto_advance=True, delay_ms=0)

    patient = align.create_patient(**patient_fields(case_id), idempotency_key=f"case-{case_id}-patient")
    assert patient == CreatedPatient(p_id=patient.p_id, mrn=f"MRN-{case_id}", created=True)

    order = align.create_order(
        case_id=case_id,
        p_id=patient.p_id,
        mrn=patient.mrn,
        treatment_option="UPPER_ONLY",
        chief_concern=settings.ALIGN_CHIEF_CONCERN,
        idempotency_key=f"case-{case_id}-order",
    )
    assert order == CreatedOrder(case_id=case_id, p_id=patient.p_id, order_type="IAS", status="RECEIVED")

    upload = align.upload_assets(
        case_id=case_id, p_id=patient.p_id, mrn=patient.mrn, idempotency_key=f"case-{case_id}-up"
    )
    assert upload == AssetUpload(case_id=case_id, accepted=True, asset_count=2)

    assert simulator.wait_for(pending_plan_version(case_id)) == 1
    revised = align.request_modification(
        case_id=case_id, mrn=patient.mrn, comments="Less IPR please", idempotency_key=f"case-{case_id}-modify-1"
    )
    assert (revised.case_id, revised.status, revised.sales_order_number) == (case_id, "MODIFICATION_REQUESTED", None)

    assert simulator.wait_for(pending_plan_version(case_id)) == 2
    screenshot = HttpVault(simulator.url).put(png_bytes(), filename="acceptance.png", content_type="image/png")
    accepted = align.accept_clincheck(
        case_id=case_id,
        mrn=patient.mrn,
        vault_id=screenshot.vault_id,
        external_key=screenshot.external_key,
        idempotency_key=f"case-{case_id}-accept",
    )
    assert (accepted.case_id, accepted.status) == (case_id, "APPROVED")
    assert accepted.sales_order_number

    view = align.get_case(case_id)
    assert (view.case_id, view.p_id) == (case_id, patient.p_id)
    assert view.status in ("APPROVED", "IN_MANUFACTURING", "SHIPPED")
    assert [o["orderType"] for o in view.orders] == ["IAS"]
    assert accepted.sales_order_number in [so["salesOrderNumber"] for so in view.sales_orders]
    assert len(view.plans) == 2

    effects = simulator.state()["effects"]
    assert {k: effects[k] for k in ("patients", "orders", "uploads", "modifies", "accepts", "tokens")} == {
        "patients": 1,
        "orders": 1,
        "uploads": 1,
        "modifies": 1,
        "accepts": 1,
        "tokens": 1,  # one token for the whole case
    }
    sent = [
        r for r in simulator.requests() if r["route"] and not r["route"].startswith(("GET", "POST /auth", "POST /v1"))
    ]
    assert all(r["idempotency_key"] for r in sent)
    assert all(r["content_type"] == "application/json" for r in sent)


def test_a_replayed_key_answers_the_same_without_doing_the_work_again(simulator, align):
    case_id = next(CASE_IDS)
    first = align.create_patient(**patient_fields(case_id), idempotency_key="same-key")
    again = align.create_patient(**patient_fields(case_id), idempotency_key="same-key")
    assert again == first and first.created is True
    assert simulator.state()["effects"]["patients"] == 1


def test_a_second_patient_request_for_the_same_mrn_is_not_a_new_patient(simulator, align):
    case_id = next(CASE_IDS)
    first = align.create_patient(**patient_fields(case_id), idempotency_key="first")
    again = align.create_patient(**patient_fields(case_id), idempotency_key="second")
    assert again == CreatedPatient(p_id=first.p_id, mrn=first.mrn, created=False)


def test_a_key_reused_with_other_parameters_is_rejected(simulator, align):
    case_id = next(CASE_IDS)
    align.create_patient(**patient_fields(case_id), idempotency_key="reused")
    with pytest.raises(AlignRejected) as caught:
        align.create_patient(**patient_fields(case_id, phone="+1 555 0199"), idempotency_key="reused")
    assert (caught.value.status, caught.value.code) == (422, "IDEMPOTENCY.MISMATCH")


@pytest.mark.parametrize(
    "call, status, code",
    [
        (
            lambda a, c: a.create_patient(**patient_fields(c, gender="X"), idempotency_key=f"g-{c}"),
            422,
            "PATIENT.INVALID_GENDER",
        ),
        (lambda a, c: a.get_case(c), 404, "ORDER.NOT_FOUND"),
        (
            lambda a, c: a.create_order(
                case_id=c,
                p_id="P-UNKNOWN",
                mrn="MRN-x",
                treatment_option="BOTH_ARCHES",
                chief_concern="x",
                idempotency_key=f"o-{c}",
            ),
            404,
            "PATIENT.NOT_FOUND",
        ),
        (
            lambda a, c: a.request_modification(
                case_id=c, mrn=new_order(a, c).mrn, comments=" ", idempotency_key=f"m-{c}"
            ),
            400,
            "REQUEST.MISSING_FIELD",
        ),
        (
            lambda a, c: a.accept_clincheck(
                case_id=c,
                mrn=new_order(a, c).mrn,
                vault_id="00000000-0000-4000-8000-00000000a119",
                external_key="00000000-0000-4000-8000-000000000001",
                idempotency_key=f"a-{c}",
            ),
            409,
            "PLAN.NOT_PENDING",
        ),
    ],
    ids=["422-gender", "404-case", "404-patient", "400-blank-comments", "409-no-plan"],
)
def test_documented_errors_are_rejections_with_the_evidence(simulator, align, call, status, code):
    with pytest.raises(AlignRejected) as caught:
        call(align, next(CASE_IDS))
    error = caught.value
    assert error.status == status
    assert error.code == code
    assert error.message and error.request_id and error.body
    assert error.request_id in [r["request_id"] for r in simulator.requests()]


def test_a_second_ias_order_is_a_conflict(simulator, align):
    case_id = next(CASE_IDS)
    patient = new_order(align, case_id)
    with pytest.raises(AlignRejected) as caught:
        align.create_order(
            case_id=case_id,
            p_id=patient.p_id,
            mrn=patient.mrn,
            treatment_option="BOTH_ARCHES",
            chief_concern="x",
            idempotency_key=f"case-{case_id}-order-again",
        )
    assert caught.value.status == 409


def test_a_503_fault_is_unavailable_with_retry_after(simulator, align):
    simulator.fault(route="POST /patients", status=503, count=1, retry_after=4)
    case_id = next(CASE_IDS)
    with pytest.raises(AlignUnavailable) as caught:
        align.create_patient(**patient_fields(case_id), idempotency_key=f"case-{case_id}")
    assert (caught.value.status, caught.value.retry_after, caught.value.code) == (503, 4.0, "SERVICE.UNAVAILABLE")
    # The same call with the same key then goes through, once.
    align.create_patient(**patient_fields(case_id), idempotency_key=f"case-{case_id}")
    assert simulator.state()["effects"]["patients"] == 1


def test_a_dropped_connection_is_unavailable(simulator, align):
    simulator.fault(route="POST /orders", mode="reset", count=1)
    with pytest.raises(AlignUnavailable) as caught:
        align.create_order(
            case_id=next(CASE_IDS),
            p_id="P",
            mrn="M",
            treatment_option="BOTH_ARCHES",
            chief_concern="x",
            idempotency_key="k",
        )
    assert (caught.value.status, caught.value.code) == (None, "CONNECTION")


def test_an_answer_too_late_is_a_timeout_and_the_retry_is_a_replay(simulator):
    align = Align(read_timeout=0.5)
    case_id = next(CASE_IDS)
    simulator.fault(route="POST /patients", mode="timeout_after_commit", count=1, seconds=1.5)
    with pytest.raises(AlignUnavailable) as caught:
        align.create_patient(**patient_fields(case_id), idempotency_key=f"case-{case_id}")
    assert (caught.value.status, caught.value.code) == (None, "TIMEOUT")

    retried = align.create_patient(**patient_fields(case_id), idempotency_key=f"case-{case_id}")
    assert retried.created is True  # the first answer, replayed
    assert simulator.state()["effects"]["patients"] == 1


def test_a_revoked_token_is_replaced_once_without_the_caller_noticing(simulator, align):
    with pytest.raises(AlignRejected):
        align.get_case(1)
    simulator.revoke_tokens()
    with pytest.raises(AlignRejected) as caught:
        align.get_case(1)
    assert caught.value.code == "ORDER.NOT_FOUND"  # past auth with the new token
    assert simulator.state()["effects"]["tokens"] == 2
    statuses = [r["status"] for r in simulator.requests() if r["route"] == "GET /orders/{caseId}"]
    assert statuses == [404, 401, 404]


def test_the_token_is_cached_for_the_services_ttl_minus_a_minute(simulator, monkeypatch):
    align = Align(cache=LocMemCache(f"ttl-{uuid.uuid4()}", {}))
    simulator.config(token_ttl=120)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    with pytest.raises(AlignRejected):
        align.get_case(1)
    monkeypatch.setattr(time, "time", lambda: now + 59)
    assert align.cache.get(align.token_cache_key)
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert align.cache.get(align.token_cache_key) is None


def test_refused_credentials_are_an_auth_error(simulator):
    with pytest.raises(AlignAuthError) as caught:
        Align(client_secret="wrong").get_case(1)
    assert (caught.value.status, caught.value.code) == (401, "AUTH.INVALID_CLIENT")


def test_the_http_vault_round_trip_and_its_errors(simulator):
    vault = HttpVault(simulator.url)
    data = png_bytes()
    blob = vault.put(data, filename="acceptance.png", content_type="image/png")
    assert blob.vault_id == settings.ALIGN_VAULT_ID
    assert vault.get(blob.vault_id, blob.external_key) == data

    with pytest.raises(VaultError) as missing:
        vault.get(blob.vault_id, "00000000-0000-4000-8000-000000000042")
    assert missing.value.status == 404 and missing.value.type and missing.value.transaction_id

    with pytest.raises(VaultError) as refused:
        HttpVault(simulator.url, api_key="wrong").get(blob.vault_id, blob.external_key)
    assert refused.value.status == 401
