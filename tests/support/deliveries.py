"""Building, signing and delivering events the way the Align service does.

Deliveries are signed with the `svix` package's signer, and the signature scheme itself
is pinned by `spec_signature`, written from the Standard Webhooks specification with
the standard library only and checked against the specification's published example.
"""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.apps import apps
from django.conf import settings
from svix.webhooks import Webhook as SvixWebhook

FIXTURES = Path(__file__).resolve().parents[1] / "integration" / "fixtures" / "events"
EVENTS_URL = "/api/align/events"


def fixture(event_type) -> dict:
    return json.loads((FIXTURES / f"{event_type}.json").read_text())


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_event(event_type, case, *, event_id=None, occurred_at=None, **data) -> dict:
    """The fixture for `event_type`, addressed to `case`, with `data` overrides."""
    payload = fixture(event_type)
    payload["event_id"] = event_id or f"evt_{uuid.uuid4().hex}"
    if occurred_at is not None:
        payload["occurred_at"] = iso(occurred_at) if isinstance(occurred_at, datetime) else occurred_at
    payload["data"].update(caseId=case.pk, mrn=case.patient.mrn)
    payload["data"].update(data)
    return payload


def encode(payload) -> bytes:
    return json.dumps(payload).encode()


def svix_headers(body: bytes, msg_id: str, *, timestamp: datetime | None = None, secret=None) -> dict:
    timestamp = timestamp or datetime.now(tz=UTC)
    signature = SvixWebhook(secret or settings.ALIGN_EVENTS_SECRET).sign(msg_id, timestamp, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp.timestamp())), "webhook-signature": signature}


def spec_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"> with the key base64-decoded from whsec_..."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def post(client, body: bytes, headers: dict):
    return client.post(EVENTS_URL, data=body, content_type="application/json", headers=headers)


def deliver(client, payload: dict):
    """POST one event signed like the service signs it."""
    body = encode(payload)
    return post(client, body, svix_headers(body, payload["event_id"]))


def row_counts() -> dict:
    """Rows in every table the project has (to prove that nothing was written)."""
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}
