"""Verifying the Standard Webhooks signature on events from the Align service.

The cryptography (HMAC-SHA256 over "<id>.<timestamp>.<body>", constant-time compare,
5-minute tolerance either way) is the `standardwebhooks` package's. This module only
shields it from input it does not handle (package version 1.1.0):

- a signature entry without exactly one comma, or with invalid base64, makes it raise
  ValueError instead of a verification error, and it stops at that entry, so a good
  signature after a malformed one would never be seen: we pass it only well-formed
  `v1,` entries;
- it reads the timestamp header as a float and signs over its integer part, so
  "1700000000.9" would verify a signature made over "1700000000": we require whole
  seconds, as the specification does;
- it decodes the body as UTF-8 and raises UnicodeDecodeError otherwise.
"""

import base64
import binascii
import re

from django.conf import settings
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_V1_ENTRY = re.compile(r"v1,([A-Za-z0-9+/]+={0,2})")


class SignatureError(Exception):
    """The delivery is not signed by the Align service (or not any more)."""


def _well_formed_v1(entries):
    for entry in entries:
        match = _V1_ENTRY.fullmatch(entry)
        if not match:
            continue
        try:
            base64.b64decode(match.group(1), validate=True)
        except binascii.Error:
            continue
        yield entry


def verify_signature(body: bytes, headers, secret=None) -> str:
    """Raise SignatureError unless `body` carries a valid signature; return the webhook-id."""
    values = {name: (headers.get(name) or "").strip() for name in HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise SignatureError(f"missing header(s): {', '.join(missing)}")
    if not _TIMESTAMP.fullmatch(values["webhook-timestamp"]):
        raise SignatureError("webhook-timestamp is not whole unix seconds")
    signatures = list(_well_formed_v1(values["webhook-signature"].split()))
    if not signatures:
        raise SignatureError("no well-formed v1 signature in webhook-signature")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("the body is not UTF-8, so its signature cannot be checked") from None
    try:
        Webhook(secret or settings.ALIGN_EVENTS_SECRET).verify(
            text, {**values, "webhook-signature": " ".join(signatures)}, json_parse=False
        )
    except WebhookVerificationError as exc:
        raise SignatureError(str(exc)) from None
    except (ValueError, binascii.Error) as exc:  # defensive: the package's unchecked parsing
        raise SignatureError(f"unreadable signature headers ({type(exc).__name__})") from None
    return values["webhook-id"]
