"""Recording a call to Align: the attempt before it is sent, its outcome after, with a
case note each and, on failure, the planned retry or the case's needs-attention flag.
Status changes go through `lifecycle`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from align_workflow.align.errors import AlignError
from align_workflow.align.vault import VaultError
from align_workflow.cases.models import Case, CaseNote
from states import align_case as wf

from ..engine import TransitionNotAllowed
from ..models import OutboundAttempt
from ..signals import raise_attention_after_commit
from . import lifecycle
from .keys import next_key, persisted_params
from .labels import trigger_label
from .notes import OUTBOUND_ATTENTION_PREFIXES, attention_prefix, is_outbound_attention, outcome_sentence, scrub
from .policy import lease_end, retries_left, retry_delay

logger = logging.getLogger(__name__)

AttemptStatus = OutboundAttempt.Status


class AttemptTaken(Exception):
    """Another process started this attempt first; nothing was sent by this one."""


@dataclass
class Failure:
    """A failed call as recorded: the attempt (as it is now) and the case note written
    for it ("" when another process had taken the attempt over and owns its outcome)."""

    attempt: OutboundAttempt
    note: str = ""


def supersede_planned_retries(case_id):
    # A new attempt replaces whatever retry was planned for this case.
    OutboundAttempt.objects.filter(case_id=case_id, next_retry_at__isnull=False).update(next_retry_at=None)


def _record(case, step, status, params, **fields) -> OutboundAttempt:
    """A new attempt of `step` under its next idempotency key; a planned retry of the
    case that it replaces is superseded."""
    key, number = next_key(case.pk, step, params)
    supersede_planned_retries(case.pk)
    return lifecycle.create(
        status,
        case_id=case.pk,
        step=step,
        idempotency_key=key,
        attempt=number,
        params=persisted_params(step, params),
        **fields,
    )


def enqueue(case, step, *, by=None, by_id=None, params, chain) -> OutboundAttempt:
    """Record a pending attempt (inside the caller's transaction), as `by` (a user) or `by_id`."""
    actor = {"by_id": by_id} if by_id is not None else {"by": by}
    return _record(case, step, AttemptStatus.PENDING, params, chain=chain, claimed_until=lease_end(), **actor)


def begin_attempt(case, step: str, by, params: dict, *, attempt_id: int | None = None) -> OutboundAttempt:
    """Record and commit the attempt about to be sent (called with the case claimed).

    Takes over the pending attempt `attempt_id` when a runner passed one; otherwise (a
    direct `fire`, e.g. a provider's revision request) records a new one.
    """
    now = timezone.now()
    lease = case.busy_until or lease_end()
    if attempt_id:
        # The runner's copy of the pending row, when it has one: the move writes the
        # fields it changes into it, the rest (step, key, chain, actor) never change.
        known = getattr(params, "prepared", {}).get("attempt")
        instance = known if known is not None and known.pk == attempt_id else None
        if not lifecycle.move(attempt_id, "start", instance=instance, started_at=now, claimed_until=lease):
            raise AttemptTaken(f"attempt {attempt_id} was already started")
        return instance if instance is not None else OutboundAttempt.objects.get(pk=attempt_id)
    with transaction.atomic():
        return _record(case, step, AttemptStatus.IN_FLIGHT, params, by=by, started_at=now, claimed_until=lease)


def record_failure(attempt: OutboundAttempt, exc: BaseException, duration_ms: int | None) -> Failure:
    """Commit a failed attempt: its evidence, a case note, and either the planned retry
    or the case's needs-attention flag."""
    now = timezone.now()
    case = Case.objects.select_related("patient").get(pk=attempt.case_id)
    if isinstance(exc, AlignError):
        status, code, message, request_id = exc.status, exc.code or "", exc.message, exc.request_id or ""
        retryable = bool(exc.retryable)
        retry_after = getattr(exc, "retry_after", None)
    elif isinstance(exc, VaultError):  # the approval's screenshot, stored by a worker
        status, code, message, request_id = exc.status, exc.type or "VAULT", exc.message, exc.transaction_id or ""
        retryable, retry_after = bool(exc.retryable), None
    else:
        status, code, message, request_id = None, type(exc).__name__, str(exc), ""
        retryable, retry_after = False, None
    message = scrub(message, case.patient)
    sentence = outcome_sentence(trigger_label(attempt.step), status, code, message)
    next_retry_at, attention = None, None
    if retryable and retries_left(attempt.attempt):
        next_retry_at = now + timedelta(seconds=retry_delay(attempt.attempt, retry_after))
        note = (
            f"{sentence} Attempt {attempt.attempt} of {settings.ALIGN_RETRY_MAX_ATTEMPTS}; "
            f"retrying automatically at {next_retry_at:%Y-%m-%d %H:%M:%S} UTC with the same key."
        )
    elif retryable:
        note = (
            f"{sentence} Attempt {attempt.attempt} of {settings.ALIGN_RETRY_MAX_ATTEMPTS}: "
            "no more automatic retries; the case needs attention."
        )
        attention = f"{attention_prefix(attempt.step)}{sentence} Gave up after {attempt.attempt} attempts."
    else:
        note = f"{sentence} Not retried automatically: a person has to look at it."
        attention = f"{attention_prefix(attempt.step)}{sentence}"
    fields = dict(
        http_status=status,
        error_code=code[:80],
        message=message,
        request_id=request_id[:120],
        duration_ms=duration_ms,
        finished_at=now,
        claimed_until=None,
        next_retry_at=next_retry_at,
    )
    with transaction.atomic():
        if not lifecycle.move(attempt.pk, "fail" if retryable else "give_up", instance=attempt, **fields):
            # The lease ran out and another process took the attempt over; it owns the outcome.
            current = OutboundAttempt.objects.get(pk=attempt.pk)
            logger.warning("attempt %s finished after it was taken over (%s)", attempt.pk, current.status)
            return Failure(current)
        CaseNote.objects.create(case_id=attempt.case_id, text=note)
        if attention:
            Case.objects.filter(pk=attempt.case_id).update(needs_attention=True, attention_reason=attention)
            raise_attention_after_commit(attempt.case_id, attempt.pk)
    logger.warning(
        "case %s: %s attempt %s failed: status=%s code=%s", attempt.case_id, attempt.step, attempt.attempt, status, code
    )
    return Failure(attempt, note)


def record_success(
    case,
    attempt_id: int,
    duration_ms: int | None,
    summary: str,
    extra_notes=(),
    *,
    attempt=None,
    params=None,
    note: str | None = None,
) -> None:
    """Inside the transaction that applies the step: the attempt succeeded, a note says
    so, the needs-attention flag a call to Align raised is cleared, and for "Send to
    Align" the next step is recorded as pending (in the same transaction, so no second
    send can slip in between).

    `attempt` is the attempt as begun (the step's call has it): its step, chain and
    actor do not change, so the row is updated in one statement (which takes its lock)
    instead of being locked, read and written back. Without it, it is read first.

    `params` (the step's EffectParams, inside the engine's commit): the flag is cleared
    by the statement that moves the case (`prepared["clear_attention"]`, tested against
    the row as it is then, not against the caller's copy), and the next step's pending
    attempt is handed back in `prepared["following"]` for the runner. Without it, the
    flag is read and cleared here.
    """
    now = timezone.now()
    if attempt is None:
        attempt = OutboundAttempt.objects.select_for_update().get(pk=attempt_id)
    if not lifecycle.move(
        attempt_id,
        "succeed",
        http_status=200,
        error_code="",
        message=summary,
        duration_ms=duration_ms,
        finished_at=now,
        claimed_until=None,
        next_retry_at=None,
    ):
        logger.warning("attempt %s: Align accepted it, but it was no longer in flight", attempt_id)
    label = trigger_label(attempt.step)
    # `note`: the case note for a step that is not a call to Align (the approval's vault write).
    notes = [note or f"Align accepted {label}." + (f" {summary}" if summary else ""), *extra_notes]
    if len(notes) == 1:
        CaseNote.objects.create(case_id=case.pk, text=notes[0])
    else:
        CaseNote.objects.bulk_create([CaseNote(case_id=case.pk, text=text) for text in notes])
    if params is not None:
        params.prepared["clear_attention"] = OUTBOUND_ATTENTION_PREFIXES
    else:
        # Read the flag from the database: the caller's copy of the case may predate the failure that set it.
        reason = (
            Case.objects.filter(pk=case.pk, needs_attention=True).values_list("attention_reason", flat=True).first()
        )
        if reason is not None and is_outbound_attention(reason):
            Case.objects.filter(pk=case.pk).update(needs_attention=False, attention_reason="")
            case.needs_attention, case.attention_reason = False, ""
    if attempt.chain:
        step_after = following_step(attempt.step)
        if step_after:
            # by_id: the same actor, without loading the user row (run_attempt has it already).
            following = enqueue(case, step_after, by_id=attempt.by_id, params={}, chain=True)
            if params is not None:
                params.prepared["following"] = following


def following_step(step):
    """The step of "Send to Align" after `step`, if any."""
    if step in wf.SEND_TO_ALIGN:
        index = wf.SEND_TO_ALIGN.index(step)
        if index + 1 < len(wf.SEND_TO_ALIGN):
            return wf.SEND_TO_ALIGN[index + 1]
    return None


def record_unsaved_success(attempt_id: int, duration_ms: int | None, exc: BaseException, state_now: str) -> None:
    """Align accepted the step but our transaction applying it failed.

    If the case had meanwhile moved on, the step is moot. Otherwise the attempt is
    re-sent with the same key: the service answers from its memory and the change is
    applied then.
    """
    now = timezone.now()
    attempt = OutboundAttempt.objects.filter(pk=attempt_id, status=AttemptStatus.IN_FLIGHT).first()
    if attempt is None:
        return
    label = trigger_label(attempt.step)
    fields = dict(http_status=200, duration_ms=duration_ms, finished_at=now, claimed_until=None)
    if isinstance(exc, TransitionNotAllowed):
        name = "succeed"
        fields.update(
            error_code="NOT_APPLIED", message=f"Align accepted it, but the case had meanwhile become {state_now}: {exc}"
        )
        note = f"Align accepted {label}, but the case had meanwhile moved on ({state_now}); nothing changed here."
    else:
        name = "fail"
        retry_at = now + timedelta(seconds=retry_delay(1))
        fields.update(
            error_code="NOT_SAVED",
            next_retry_at=retry_at,
            message=f"Align accepted it, but saving the result failed ({type(exc).__name__}).",
        )
        note = (
            f"Align accepted {label}, but saving the result here failed; it will be re-sent with the "
            f"same key at {retry_at:%H:%M:%S} UTC, and Align will answer from its memory."
        )
    with transaction.atomic():
        if lifecycle.move(attempt.pk, name, **fields):
            CaseNote.objects.create(case_id=attempt.case_id, text=note)


def skip(attempt: OutboundAttempt, reason: str) -> None:
    """A pending attempt was refused before anything was sent."""
    with transaction.atomic():
        if lifecycle.move(attempt.pk, "skip", message=reason[:1000], finished_at=timezone.now(), claimed_until=None):
            CaseNote.objects.create(
                case_id=attempt.case_id, text=f"{trigger_label(attempt.step)} was not sent: {reason}"
            )


def expire(attempt: OutboundAttempt) -> bool:
    """An in-flight attempt whose lease ran out: its process stopped before recording
    the answer. Align may or may not have done the work, so it is re-sent with the same
    key (at once: the lease already waited)."""
    now = timezone.now()
    again = retries_left(attempt.attempt)
    with transaction.atomic():
        expired = lifecycle.move(
            attempt.pk,
            "expire",
            where={"claimed_until__lt": now},
            error_code="LEASE_EXPIRED",
            finished_at=now,
            claimed_until=None,
            message="The process sending this stopped before it recorded Align's answer.",
            next_retry_at=now if again else None,
        )
        if not expired:
            return False
        label = trigger_label(attempt.step)
        if again:
            CaseNote.objects.create(
                case_id=attempt.case_id,
                text=(
                    f"No answer recorded for {label}: the process sending it stopped. "
                    "Re-sending with the same key (Align answers from its memory if it already did it)."
                ),
            )
        else:
            reason = f"{attention_prefix(attempt.step)}the process sending it stopped on the last attempt."
            CaseNote.objects.create(
                case_id=attempt.case_id, text=f"No answer recorded for {label}; the case needs attention."
            )
            Case.objects.filter(pk=attempt.case_id).update(needs_attention=True, attention_reason=reason)
            raise_attention_after_commit(attempt.case_id, attempt.pk)
    return True
