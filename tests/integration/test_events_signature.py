"""The signature on POST /api/align/events, one test per failure mode.

Every delivery is signed by the svix package (not by our code); each refusal is a 401
that writes nothing anywhere.
"""

import base64
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks.webhooks
from django.test import Client
from svix.webhooks import Webhook as SvixWebhook

from align_workflow.align.signatures import SignatureError, verify_signature
from align_workflow.integration.models import InboundEvent
from states import align_case as wf
from tests.support.deliveries import encode, make_event, post, row_counts, spec_signature, svix_headers
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db

OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else's-secret-32-bytes!!").decode()


@pytest.fixture
def delivery():
    case = make_case(state=wf.ORDER_CREATED)
    payload = make_event("sales_order.created", case)
    return payload, encode(payload)


def assert_refused(client, body, headers):
    before = row_counts()
    response = post(client, body, headers)
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "SIGNATURE.INVALID"
    assert row_counts() == before
    return response


def assert_accepted(client, body, headers):
    response = post(client, body, headers)
    assert response.status_code == 200, response.content
    assert InboundEvent.objects.count() == 1
    return response


def test_a_correctly_signed_delivery_is_accepted(client, delivery):
    payload, body = delivery
    response = assert_accepted(client, body, svix_headers(body, payload["event_id"]))
    assert response.json()["status"] == "applied"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(client, delivery, header):
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    del headers[header]
    response = assert_refused(client, body, headers)
    assert header in response.json()["error"]["message"]


def test_no_headers_at_all(client, delivery):
    assert_refused(client, delivery[1], {})


def test_wrong_version_prefix(client, delivery):
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,", 1)
    assert_refused(client, body, headers)


def test_bad_signature(client, delivery):
    payload, body = delivery
    assert_refused(client, body, svix_headers(body, payload["event_id"], secret=OTHER_SECRET))


def test_stale_timestamp(client, delivery):
    payload, body = delivery
    past = datetime.now(tz=UTC) - timedelta(minutes=5, seconds=10)
    response = assert_refused(client, body, svix_headers(body, payload["event_id"], timestamp=past))
    assert "too old" in response.json()["error"]["message"]


def test_future_timestamp(client, delivery):
    payload, body = delivery
    future = datetime.now(tz=UTC) + timedelta(minutes=5, seconds=10)
    response = assert_refused(client, body, svix_headers(body, payload["event_id"], timestamp=future))
    assert "too new" in response.json()["error"]["message"]


@pytest.mark.parametrize("minutes", [-4, 4])
def test_timestamps_within_five_minutes_either_way_are_accepted(client, delivery, minutes):
    payload, body = delivery
    when = datetime.now(tz=UTC) + timedelta(minutes=minutes)
    assert_accepted(client, body, svix_headers(body, payload["event_id"], timestamp=when))


def test_body_changed_after_signing(client, delivery):
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    tampered = encode({**payload, "data": {**payload["data"], "salesOrderNumber": "SO-EVIL"}})
    assert_refused(client, tampered, headers)


def test_the_signature_covers_the_raw_bytes_not_the_json(client, delivery):
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    same_json_other_bytes = body.replace(b'": ', b'":  ')
    assert same_json_other_bytes != body
    assert_refused(client, same_json_other_bytes, headers)


def test_the_signature_covers_the_event_id(client, delivery):
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    headers["webhook-id"] = "evt_replayed_under_another_id"
    assert_refused(client, body, headers)


def test_one_good_signature_among_bad_ones_is_accepted(client, delivery):
    payload, body = delivery
    good = svix_headers(body, payload["event_id"])
    bad = svix_headers(body, payload["event_id"], secret=OTHER_SECRET)["webhook-signature"]
    good["webhook-signature"] = " ".join(
        [
            bad,
            "v1,not-base64!!",  # malformed: the package alone would crash here
            "v1",  # no comma
            "v2," + good["webhook-signature"][3:],  # a future scheme we do not know
            good["webhook-signature"],
            "v1,AAAA",
        ]
    )
    assert_accepted(client, body, good)


def test_negative_control_the_bare_package_crashes_on_a_malformed_entry_before_the_good_one(delivery):
    from django.conf import settings

    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    headers["webhook-signature"] = "v1 " + headers["webhook-signature"]
    # Not a WebhookVerificationError: an unpacking crash (a 500 without the wrapper).
    with pytest.raises(ValueError, match="not enough values to unpack"):
        standardwebhooks.webhooks.Webhook(settings.ALIGN_EVENTS_SECRET).verify(body, headers, json_parse=False)
    assert verify_signature(body, headers) == payload["event_id"]


def test_only_bad_signatures_among_several(client, delivery):
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    bad = svix_headers(body, payload["event_id"], secret=OTHER_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"{bad} v1,AAAA v1,,, v1"
    assert_refused(client, body, headers)


@pytest.mark.parametrize("timestamp", ["1700000000.9", "now", "", "-1", "1e9", "１７００"])
def test_timestamp_must_be_whole_seconds(client, delivery, timestamp):
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    headers["webhook-timestamp"] = timestamp
    assert_refused(client, body, headers)


def test_fractional_timestamp_is_refused_even_when_the_package_would_accept_it(delivery):
    # standardwebhooks 1.1.0 signs over the integer part of a float timestamp, so a
    # signature over "<t>" verifies under the header "<t>.9" in the bare package.
    payload, body = delivery
    headers = svix_headers(body, payload["event_id"])
    headers["webhook-timestamp"] += ".9"
    from django.conf import settings

    standardwebhooks.webhooks.Webhook(settings.ALIGN_EVENTS_SECRET).verify(body, headers, json_parse=False)
    with pytest.raises(SignatureError, match="whole unix seconds"):
        verify_signature(body, headers)


def test_a_body_that_is_not_utf8_is_refused(client, delivery):
    payload, _ = delivery
    body = b'{"type": "\xff\xfe"}'
    timestamp = int(datetime.now(tz=UTC).timestamp())
    from django.conf import settings

    headers = {
        "webhook-id": payload["event_id"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": spec_signature(settings.ALIGN_EVENTS_SECRET, payload["event_id"], timestamp, body),
    }
    assert_refused(client, body, headers)


def test_csrf_does_not_apply(delivery):
    payload, body = delivery
    strict = Client(enforce_csrf_checks=True)
    assert_accepted(strict, body, svix_headers(body, payload["event_id"]))


def test_only_post_is_allowed(client):
    assert client.get("/api/align/events").status_code == 405
    assert client.put("/api/align/events", data=b"{}").status_code == 405


# --- The signers themselves --------------------------------------------------------

# The worked example published with the Standard Webhooks / Svix documentation.
PUBLISHED = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def test_the_spec_signer_reproduces_the_published_example():
    p = PUBLISHED
    assert spec_signature(p["secret"], p["msg_id"], p["timestamp"], p["body"]) == p["signature"]


def test_svix_signs_exactly_as_the_specification_says(delivery):
    from django.conf import settings

    payload, body = delivery
    when = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    svix_sig = SvixWebhook(settings.ALIGN_EVENTS_SECRET).sign(payload["event_id"], when, body.decode())
    assert svix_sig == spec_signature(settings.ALIGN_EVENTS_SECRET, payload["event_id"], int(when.timestamp()), body)


def test_our_verifier_accepts_the_published_example_at_its_time(monkeypatch):
    p = PUBLISHED

    class Then(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(p["timestamp"] + 30, tz=tz)

    headers = {"webhook-id": p["msg_id"], "webhook-timestamp": str(p["timestamp"]), "webhook-signature": p["signature"]}
    with pytest.raises(SignatureError, match="too old"):
        verify_signature(p["body"], headers, secret=p["secret"])
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", Then)
    assert verify_signature(p["body"], headers, secret=p["secret"]) == p["msg_id"]
    with pytest.raises(SignatureError, match="No matching signature"):
        verify_signature(p["body"] + b" ", headers, secret=p["secret"])
