"""The shop's API: `POST /api/cases/<id>/aligners-purchased` reports that the aligners of
a case were bought. It records the purchase and sends the ClinCheck acceptance when the
rules allow (workflow/purchases.py, the same service as the staff button).

    Authorization: Bearer <SHOP_API_TOKEN>
    {"purchased_at": "2026-05-04T10:15:00+02:00", "order_reference": "SHOP-10234"}

Answers are JSON. 200 with the recorded purchase (a repeat for the same case answers 200
again, with `"recorded": false` and the first report's time); 400 with field errors for
a bad body; 401 without the right token; 404 for an unknown case; 405 for another method;
409 for a case that cannot have been bought yet; 413 for a body over 10 KB; 503 when no
token is configured (then nothing is accepted).
"""

import hmac
import json
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from align_workflow.align.payloads import DateTime, Obj, PayloadError, Str, _unstorable

from . import purchases

MAX_BODY_BYTES = 10 * 1024
# A shop's clock may be a little ahead of ours; a purchase further in the future is a mistake.
CLOCK_SKEW = timedelta(minutes=5)

BODY = Obj(
    {
        "purchased_at": DateTime(),
        "order_reference": Str(max_length=100),
    }
)


def _error(status, code, message, details=None, headers=None):
    response = JsonResponse({"error": {"code": code, "message": message, "details": details or {}}}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _token_ok(request, expected):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def parse_body(raw: bytes) -> dict:
    """The body's fields, checked; PayloadError with every problem by field otherwise."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise PayloadError({"body": ["is not valid JSON"]}) from None
    if not isinstance(payload, dict):
        raise PayloadError({"body": ["must be a JSON object"]})
    bad = _unstorable(payload)
    if bad is not None:
        raise PayloadError({bad: ["contains a character or number that cannot be stored"]})
    errors = {}
    data = BODY.clean(payload, "", errors)
    if not errors:
        if data["purchased_at"] > timezone.now() + CLOCK_SKEW:
            errors["purchased_at"] = ["must not be in the future"]
        reference = data["order_reference"]
        if any(not ch.isprintable() for ch in reference):
            errors["order_reference"] = ["must be printable text (no control characters)"]
    if errors:
        raise PayloadError(errors)
    data["order_reference"] = data["order_reference"].strip()
    return data


@csrf_exempt  # authenticated by the bearer token instead
@transaction.non_atomic_requests  # the purchase commits on its own before the acceptance is sent
def aligners_purchased(request, case_id):
    if request.method != "POST":
        return _error(405, "METHOD_NOT_ALLOWED", "Use POST.", headers={"Allow": "POST"})
    expected = settings.SHOP_API_TOKEN or ""
    if not expected:
        return _error(
            503, "NOT_CONFIGURED", "The shop API is not configured (SHOP_API_TOKEN is unset); nothing was recorded."
        )
    if not _token_ok(request, expected):
        return _error(
            401,
            "AUTH.TOKEN_INVALID",
            "A valid bearer token is required.",
            headers={"WWW-Authenticate": 'Bearer realm="shop"'},
        )
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        return _error(413, "REQUEST.TOO_LARGE", f"The body must be at most {MAX_BODY_BYTES} bytes.")
    try:
        data = parse_body(request.body)
    except PayloadError as bad:
        return _error(400, "REQUEST.INVALID", "The body is not a valid purchase report.", {"fields": bad.errors})
    if case_id > 2**31 - 1:
        return _error(404, "CASE.NOT_FOUND", f"No case {case_id}.")
    try:
        outcome = purchases.report_purchase(
            case_id, source="shop", purchased_at=data["purchased_at"], order_reference=data["order_reference"]
        )
    except purchases.PurchaseRefused as refused:
        if refused.code == "not_found":
            return _error(404, "CASE.NOT_FOUND", f"No case {case_id}.")
        return _error(409, "CASE.NOT_PURCHASABLE", str(refused))
    return JsonResponse(
        {
            "case_id": outcome.case_id,
            "purchased_at": outcome.purchased_at.isoformat(),
            "recorded": outcome.recorded,
            "acceptance": outcome.acceptance or "not_needed",
            "detail": outcome.detail,
        }
    )
