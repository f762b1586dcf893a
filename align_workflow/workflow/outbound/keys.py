"""Idempotency keys: one per case, step and what the step acts on, reused by every retry.

align-workflow:case-<id>:<step>[:plan-v<version> | :screenshot-<asset id>]:<generation>
"""

from __future__ import annotations

from ..models import OutboundAttempt

AttemptStatus = OutboundAttempt.Status

# What each step needs to be sent again, kept on the attempt. Never patient details.
PERSISTED_PARAMS = {
    "request_revision": ("comments", "plan_version", "sent_by"),
    "accept_clincheck": ("screenshot_asset_id",),
    "approve_plan": ("staged_screenshot_id",),  # the picture itself is in StagedScreenshot
}
# Codes of 4xx answers that do not mean "refused, nothing done".
_NOT_A_REFUSAL = {"IDEMPOTENCY.MISMATCH"}


def persisted_params(step: str, params: dict) -> dict:
    return {k: params[k] for k in PERSISTED_PARAMS.get(step, ()) if params.get(k) is not None}


def key_scope(case_id: int, step: str, params: dict) -> str:
    """What one idempotency key covers: the case, the step, and what the step acts on.

    A revision request is about one plan version, an acceptance about one stored
    screenshot: a later plan's revision is new work and must not be answered with the
    first one's stored response.
    """
    scope = f"align-workflow:case-{case_id}:{step}"
    if step == "request_revision":
        scope += f":plan-v{params.get('plan_version') or 0}"
    elif step == "accept_clincheck":
        scope += f":screenshot-{params.get('screenshot_asset_id') or 0}"
    return scope


def refused_by_align(attempt) -> bool:
    """Align refused the request (4xx) and, by the contract, did nothing."""
    return (
        attempt.http_status is not None
        and 400 <= attempt.http_status < 500
        and attempt.http_status not in (401, 429)
        and attempt.error_code not in _NOT_A_REFUSAL
    )


def next_key(case_id: int, step: str, params: dict) -> tuple[str, int]:
    """The idempotency key and attempt number for the next request of `step`.

    Retries reuse the key of the step's last attempt. The one exception is a step Align
    refused (4xx): the service keeps the first answer per key, so re-sending the same
    key after a person fixed the cause would only replay the refusal; the refused
    request did nothing, so a fresh key (generation + 1) cannot duplicate anything.
    """
    scope = key_scope(case_id, step, params)
    last = (
        OutboundAttempt.objects.filter(case_id=case_id, idempotency_key__startswith=scope + ":").order_by("-id").first()
    )
    if last is None:
        return f"{scope}:1", 1
    if last.status == AttemptStatus.FAILED_PERMANENT and refused_by_align(last):
        generation = int(last.idempotency_key.rsplit(":", 1)[1]) + 1
        return f"{scope}:{generation}", 1
    return last.idempotency_key, last.attempt + 1
