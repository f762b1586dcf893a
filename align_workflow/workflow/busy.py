"""Whether a case is busy: a call to Align for it is in flight or about to be sent.

The one place that decides it, for the engine (the case's claim), the outbound
services and align_batch (the claim, or an open attempt whose lease has not run out).
"""

from __future__ import annotations

from django.db.models import OuterRef
from django.utils import timezone

from states import align_case as wf

from .models import OutboundAttempt


def open_attempt(case_id) -> OutboundAttempt | None:
    """The attempt being sent (or about to be) for this case, if any."""
    return (
        OutboundAttempt.objects.filter(
            case_id=case_id, status__in=OutboundAttempt.OPEN, claimed_until__gt=timezone.now()
        )
        .order_by("-id")
        .first()
    )


def queued_step(case_id) -> str:
    """The step recorded and waiting for a worker (or for the caller's commit) for this
    case, not started yet ("" when none): what the case pages show as queued."""
    return (
        OutboundAttempt.objects.filter(
            case_id=case_id, status=OutboundAttempt.Status.PENDING, claimed_until__gt=timezone.now()
        )
        .order_by("-id")
        .values_list("step", flat=True)
        .first()
        or ""
    )


def claimed_step(case) -> str:
    """The trigger whose call holds the case's claim now ("" when none)."""
    if case.busy_with and case.busy_until and case.busy_until > timezone.now():
        return case.busy_with
    return ""


def busy_step(case, *, attempts=True) -> str:
    """The step being sent for the case ("" when it is free). `attempts`: also an open
    attempt (recorded, not finished, lease running), not only the case's claim."""
    if attempts:
        attempt = open_attempt(case.pk)
        if attempt is not None:
            return attempt.step
    return claimed_step(case)


def busy_message(step) -> str:
    label = wf.trigger_label(step)
    return f"{label} is already being sent to Align for this case; wait for it to finish."


def open_call_query():
    """The open attempts of the case in an outer query (`OuterRef("pk")`), for selections."""
    return OutboundAttempt.objects.filter(
        case=OuterRef("pk"), status__in=OutboundAttempt.OPEN, claimed_until__gt=timezone.now()
    )
