"""Aligner purchases: always recorded; the acceptance follows when every rule allows it,
exactly once. The shop reports them with POST /api/cases/<id>/aligners-purchased."""

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Case, CaseAsset, CaseNote
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.threads import race

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "shop-test-token"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def shop_token(settings):
    settings.SHOP_API_TOKEN = TOKEN


def set_flag(name, on):
    get_waffle_flag_model().objects.update_or_create(name=name, defaults={"everyone": on})


@pytest.fixture
def order_status_off(flags_on):
    set_flag(wf.FLAG_SET_ORDER_STATUS, False)


def approved_case(**fields):
    case = make_case(state=wf.PROVIDER_APPROVED, **fields)
    CaseAsset.objects.create(
        case=case,
        kind=CaseAsset.Kind.CCACCEPTSCREEN,
        filename="shot.jpg",
        vault_id=str(uuid.uuid4()),
        external_key=str(uuid.uuid4()),
    )
    return case


def report(case_id, body=None, client=None, **headers):
    body = body if body is not None else {"purchased_at": "2026-03-04T10:15:00+01:00", "order_reference": "SHOP-1"}
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return (client or Client()).post(
        f"/api/cases/{case_id}/aligners-purchased", raw, content_type="application/json", **(AUTH | headers)
    )


# --- Flag off: recorded, waiting; the sweep sends it once ------------------------------------------


def test_flag_off_the_purchase_is_recorded_and_the_sweep_sends_one_acceptance_once_the_flag_is_on(
    fake_align, order_status_off
):
    case = approved_case()

    response = report(case.pk)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["recorded"] is True and body["acceptance"] == "waiting"
    case.refresh_from_db()
    assert case.state == wf.PROVIDER_APPROVED
    assert case.aligners_purchased_at.isoformat() == "2026-03-04T09:15:00+00:00"
    assert (case.aligners_purchase_source, case.aligners_order_reference) == ("shop", "SHOP-1")
    assert fake_align.sent("accept_clincheck") == [] and not OutboundAttempt.objects.exists()

    call_command("align_retry_due", "--all")  # flag still off: nothing
    assert fake_align.sent("accept_clincheck") == []

    set_flag(wf.FLAG_SET_ORDER_STATUS, True)
    call_command("align_retry_due", "--all")
    assert len(fake_align.sent("accept_clincheck")) == 1
    assert Case.objects.get(pk=case.pk).state == wf.ACCEPTED

    call_command("align_retry_due", "--all")
    assert len(fake_align.sent("accept_clincheck")) == 1
    assert OutboundAttempt.objects.filter(case=case, step="accept_clincheck").count() == 1


def test_the_case_page_shows_the_acceptance_waiting(fake_align, order_status_off, staff):
    case = approved_case()
    report(case.pk)
    client = Client()
    client.force_login(staff)
    html = client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'id="acceptance-waiting"' in html and "Sending plan acceptances to Align is switched off" in html
    assert "reported by the shop (API), order SHOP-1" in html


def test_a_failed_acceptance_is_left_to_the_retries_not_sent_again_by_the_sweep(fake_align, flags_on):
    from tests.support.fakes import rejected

    case = approved_case()
    fake_align.fail("accept_clincheck", rejected(409, "PLAN.NOT_PENDING"))
    assert report(case.pk).json()["acceptance"] == "failed"
    call_command("align_retry_due", "--all")
    assert len(fake_align.sent("accept_clincheck")) == 1
    assert Case.objects.get(pk=case.pk).needs_attention


# --- The API's answers ------------------------------------------------------------------------------


def test_flag_on_the_report_records_and_accepts_at_once(fake_align, flags_on):
    case = approved_case()
    body = report(case.pk).json()
    assert (body["recorded"], body["acceptance"]) == (True, "sent")
    assert Case.objects.get(pk=case.pk).state == wf.ACCEPTED
    assert len(fake_align.sent("accept_clincheck")) == 1


def test_a_repeated_report_is_answered_the_same_and_records_nothing_new(fake_align, flags_on):
    case = approved_case()
    first = report(case.pk).json()
    again = report(case.pk, {"purchased_at": "2026-03-05T10:00:00Z", "order_reference": "SHOP-2"})
    assert again.status_code == 200
    assert again.json()["recorded"] is False and again.json()["purchased_at"] == first["purchased_at"]
    case.refresh_from_db()
    assert case.aligners_order_reference == "SHOP-1"
    assert CaseNote.objects.filter(case=case, text__startswith="Aligner purchase recorded").count() == 1
    assert len(fake_align.sent("accept_clincheck")) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": ""},
        {"HTTP_AUTHORIZATION": "Bearer wrong-token"},
        {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
        {"HTTP_AUTHORIZATION": "Bearer "},
    ],
)
def test_without_the_right_token_401(fake_align, flags_on, headers):
    case = approved_case()
    response = report(case.pk, **headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH.TOKEN_INVALID"
    assert Case.objects.get(pk=case.pk).aligners_purchased_at is None


def test_an_unknown_case_404(flags_on):
    for case_id in (987654, 2**40):
        response = report(case_id)
        assert response.status_code == 404 and response.json()["error"]["code"] == "CASE.NOT_FOUND"


@pytest.mark.parametrize(
    "state", [wf.ELIGIBLE, wf.ASSETS_UPLOADED, wf.PLAN_RECEIVED, wf.REVISION_REQUESTED, wf.CANCELLED]
)
def test_a_case_that_cannot_have_been_bought_yet_409(fake_align, flags_on, state):
    case = make_case(state=state)
    response = report(case.pk)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CASE.NOT_PURCHASABLE"
    assert Case.objects.get(pk=case.pk).aligners_purchased_at is None


@pytest.mark.parametrize(
    "body,field",
    [
        ("not json", "body"),
        ("[1, 2]", "body"),
        ({}, "purchased_at"),
        ({"purchased_at": "2026-03-04T10:15:00Z"}, "order_reference"),
        ({"purchased_at": "yesterday", "order_reference": "A"}, "purchased_at"),
        ({"purchased_at": "2026-03-04T10:15:00", "order_reference": "A"}, "purchased_at"),  # no time zone
        ({"purchased_at": 1700000000, "order_reference": "A"}, "purchased_at"),
        ({"purchased_at": "2026-03-04T10:15:00Z", "order_reference": "  "}, "order_reference"),
        ({"purchased_at": "2026-03-04T10:15:00Z", "order_reference": "x" * 101}, "order_reference"),
        ({"purchased_at": "2026-03-04T10:15:00Z", "order_reference": "A\u0000B"}, "order_reference"),
        ({"purchased_at": "2026-03-04T10:15:00Z", "order_reference": "A\nB"}, "order_reference"),
    ],
)
def test_a_bad_body_400_with_field_errors(fake_align, flags_on, body, field):
    case = approved_case()
    response = report(case.pk, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "REQUEST.INVALID" and field in error["details"]["fields"]
    assert Case.objects.get(pk=case.pk).aligners_purchased_at is None


def test_a_purchase_in_the_future_400(fake_align, flags_on):
    case = approved_case()
    later = (timezone.now() + timedelta(days=2)).isoformat()
    response = report(case.pk, {"purchased_at": later, "order_reference": "A"})
    assert response.status_code == 400 and "purchased_at" in response.json()["error"]["details"]["fields"]


def test_other_methods_405_and_an_oversized_body_413(fake_align, flags_on):
    case = approved_case()
    response = Client().get(f"/api/cases/{case.pk}/aligners-purchased", **AUTH)
    assert response.status_code == 405 and response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    big = json.dumps({"purchased_at": "2026-03-04T10:15:00Z", "order_reference": "A", "pad": "x" * 20000})
    response = report(case.pk, big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "REQUEST.TOO_LARGE"


def test_without_a_configured_token_every_report_is_refused(fake_align, flags_on, settings):
    settings.SHOP_API_TOKEN = ""
    case = approved_case()
    response = report(case.pk, HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 503 and response.json()["error"]["code"] == "NOT_CONFIGURED"
    assert Case.objects.get(pk=case.pk).aligners_purchased_at is None


@pytest.mark.parametrize("debug,expected", [("1", "demo-shop-token"), ("0", "")])
def test_the_demo_token_is_the_default_only_with_debug_on(debug, expected):
    env = {k: v for k, v in os.environ.items() if k != "SHOP_API_TOKEN"} | {
        "DJANGO_DEBUG": debug,
        "DJANGO_SETTINGS_MODULE": "align_workflow.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(repr(settings.SHOP_API_TOKEN))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == repr(expected)


# --- Twenty identical reports at once ------------------------------------------------------------


def test_twenty_concurrent_identical_reports_make_one_purchase_and_one_acceptance(
    require_postgres, fake_align, flags_on
):
    case = approved_case()
    outcomes = race(lambda: report(case.pk), 20)

    statuses = [getattr(o, "status_code", o) for o in outcomes]
    assert statuses == [200] * 20, statuses
    bodies = [o.json() for o in outcomes]
    assert sum(b["recorded"] for b in bodies) == 1
    assert len({b["purchased_at"] for b in bodies}) == 1
    assert len(fake_align.sent("accept_clincheck")) == 1
    assert OutboundAttempt.objects.filter(case=case, step="accept_clincheck").count() == 1
    assert Case.objects.get(pk=case.pk).state == wf.ACCEPTED
    assert CaseNote.objects.filter(case=case, text__startswith="Aligner purchase recorded").count() == 1
