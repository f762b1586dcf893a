"""Sending cases to Align: recorded attempts, "Send to Align", retries.

    from align_workflow.workflow import send_to_align, retry_case

    result = send_to_align(case, by=request.user)   # create patient -> order -> upload assets
    result = retry_case(case, by=request.user)      # the staff portal's Retry button

Every call to Align is an OutboundAttempt row, committed before the request goes out
(see models.py). The transitions themselves are fired by the engine; this module only
decides *which* step to run, records the attempts and their outcomes (with a case
note each), plans retries and flags cases that need a person.

Execution (settings.ALIGN_EXECUTION): `inline` runs an attempt in this process right
after the transaction that recorded it commits (synchronously when the caller has no
transaction open, as in a web request); `celery` hands it to a worker. Both run
`run_attempt`, the same code. `align_retry_due` (or the Celery sweep) runs the retries
that are due and takes over attempts whose process died (lease expired).
"""

from __future__ import annotations

import itertools
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from align_workflow.cases.models import Case, CaseNote
from states import align_case as wf

from .connections import ThreadConnections
from .models import OutboundAttempt

logger = logging.getLogger(__name__)

AttemptStatus = OutboundAttempt.Status

# The calls whose failure puts a case in "needs attention" with their label as the reason's prefix.
ATTENTION_TRIGGERS = ("create_patient", "create_order", "upload_assets", "request_revision", "accept_clincheck",
                      "approve_plan")
# What each step needs to be sent again, kept on the attempt. Never patient details.
PERSISTED_PARAMS = {
    "request_revision": ("comments", "plan_version", "sent_by"),
    "accept_clincheck": ("screenshot_asset_id",),
}
# "Send to Align": the step to run from each state.
SEND_STEP_FROM = {wf.BY_TRIGGER[step].source[0]: step for step in wf.SEND_TO_ALIGN}
# Codes of 4xx answers that do not mean "refused, nothing done".
_NOT_A_REFUSAL = {"IDEMPOTENCY.MISMATCH"}


class AttemptTaken(Exception):
    """Another process started this attempt first; nothing was sent by this one."""


# --- Idempotency keys --------------------------------------------------------------


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


def _refused_by_align(attempt) -> bool:
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
        OutboundAttempt.objects.filter(case_id=case_id, idempotency_key__startswith=scope + ":")
        .order_by("-id")
        .first()
    )
    if last is None:
        return f"{scope}:1", 1
    if last.status == AttemptStatus.FAILED_PERMANENT and _refused_by_align(last):
        generation = int(last.idempotency_key.rsplit(":", 1)[1]) + 1
        return f"{scope}:{generation}", 1
    return last.idempotency_key, last.attempt + 1


# --- Attempts: begin, succeed, fail --------------------------------------------------


def _lease_end():
    return timezone.now() + timedelta(seconds=settings.ALIGN_CALL_LEASE_SECONDS)


def persisted_params(step: str, params: dict) -> dict:
    return {k: params[k] for k in PERSISTED_PARAMS.get(step, ()) if params.get(k) is not None}


def _supersede_planned_retries(case_id):
    # A new attempt replaces whatever retry was planned for this case.
    OutboundAttempt.objects.filter(case_id=case_id, next_retry_at__isnull=False).update(next_retry_at=None)


def begin_attempt(case, step: str, by, params: dict) -> OutboundAttempt:
    """Record and commit the attempt about to be sent (called with the case claimed).

    Takes over the pending attempt `params["_attempt_id"]` when a runner passed one;
    otherwise (a direct `fire`, e.g. a provider's revision request) records a new one.
    """
    now = timezone.now()
    lease = case.busy_until or _lease_end()
    attempt_id = params.get("_attempt_id")
    if attempt_id:
        taken = OutboundAttempt.objects.filter(pk=attempt_id, status=AttemptStatus.PENDING).update(
            status=AttemptStatus.IN_FLIGHT, started_at=now, claimed_until=lease
        )
        if not taken:
            raise AttemptTaken(f"attempt {attempt_id} was already started")
        return OutboundAttempt.objects.get(pk=attempt_id)
    with transaction.atomic():
        key, number = next_key(case.pk, step, params)
        _supersede_planned_retries(case.pk)
        return OutboundAttempt.objects.create(
            case_id=case.pk, step=step, idempotency_key=key, attempt=number, status=AttemptStatus.IN_FLIGHT,
            by=by, params=persisted_params(step, params), started_at=now, claimed_until=lease,
        )


def scrub(text: str, patient) -> str:
    """Remove the patient's details from a message the service sent back (it may echo them)."""
    text = str(text or "")
    if patient is None:
        return text
    values = [patient.first_name, patient.last_name, patient.full_name, patient.email, patient.phone,
              patient.address_line1, patient.address_line2, patient.city, patient.zip_code,
              patient.date_of_birth.isoformat() if patient.date_of_birth else ""]
    for value in sorted({v.strip() for v in values if v and len(v.strip()) >= 3}, key=len, reverse=True):
        lowered = text.lower()
        start = lowered.find(value.lower())
        while start != -1:
            text = text[:start] + "[redacted]" + text[start + len(value):]
            lowered = text.lower()
            start = lowered.find(value.lower(), start + len("[redacted]"))
    return text[:1000]


def retry_delay(attempt_number: int, retry_after: float | None = None) -> float:
    """Seconds until the next automatic attempt: exponential backoff with jitter.

    The ceiling doubles with every attempt (base, 2*base, 4*base, ...); the delay is
    drawn from its upper half, so that cases that failed together do not all come back
    at the same moment, and never sooner than the service's Retry-After.
    """
    ceiling = min(settings.ALIGN_RETRY_BASE_SECONDS * 2 ** (attempt_number - 1), settings.ALIGN_RETRY_MAX_DELAY_SECONDS)
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after:
        delay = max(delay, float(retry_after))
    return delay


def _outcome_sentence(label, status, code, message):
    if status is not None:
        text = f"Bad Align response during {label}. Status code: {status}"
    elif code in ("TIMEOUT", "CONNECTION", "REQUEST_FAILED"):
        text = f"No answer from Align during {label}"
    else:
        text = f"{label} failed before Align answered"
    detail = ": ".join(p for p in (code, message) if p)
    return f"{text} ({detail})." if detail else f"{text}."


def _attention_prefix(step):
    return f"{wf.trigger_label(step)}: "


def _is_outbound_attention(reason: str) -> bool:
    return any(reason.startswith(_attention_prefix(step)) for step in ATTENTION_TRIGGERS)


def record_failure(attempt: OutboundAttempt, exc: BaseException, duration_ms: int | None) -> OutboundAttempt:
    """Commit a failed attempt: its evidence, a case note, and either the planned retry
    or the case's needs-attention flag. Returns the updated attempt."""
    from align_workflow.integration.client import AlignError

    now = timezone.now()
    case = Case.objects.select_related("patient").get(pk=attempt.case_id)
    if isinstance(exc, AlignError):
        status, code, message, request_id = exc.status, exc.code or "", exc.message, exc.request_id or ""
        retryable = bool(exc.retryable)
        retry_after = getattr(exc, "retry_after", None)
    else:
        status, code, message, request_id = None, type(exc).__name__, str(exc), ""
        retryable, retry_after = False, None
    message = scrub(message, case.patient)
    label = wf.trigger_label(attempt.step)
    with transaction.atomic():
        current = OutboundAttempt.objects.select_for_update().get(pk=attempt.pk)
        if current.status != AttemptStatus.IN_FLIGHT:
            # The lease ran out and another process took the attempt over; it owns the outcome.
            logger.warning("attempt %s finished after it was taken over (%s)", attempt.pk, current.status)
            return current
        current.status = AttemptStatus.FAILED_RETRYABLE if retryable else AttemptStatus.FAILED_PERMANENT
        current.http_status, current.error_code, current.message = status, code[:80], message
        current.request_id, current.duration_ms = request_id[:120], duration_ms
        current.finished_at, current.claimed_until = now, None
        sentence = _outcome_sentence(label, status, code, message)
        if retryable and current.attempt < settings.ALIGN_RETRY_MAX_ATTEMPTS:
            current.next_retry_at = now + timedelta(seconds=retry_delay(current.attempt, retry_after))
            note = (f"{sentence} Attempt {current.attempt} of {settings.ALIGN_RETRY_MAX_ATTEMPTS}; "
                    f"retrying automatically at {current.next_retry_at:%Y-%m-%d %H:%M:%S} UTC with the same key.")
            attention = None
        elif retryable:
            current.next_retry_at = None
            note = (f"{sentence} Attempt {current.attempt} of {settings.ALIGN_RETRY_MAX_ATTEMPTS}: "
                    "no more automatic retries; the case needs attention.")
            attention = f"{_attention_prefix(attempt.step)}{sentence} Gave up after {current.attempt} attempts."
        else:
            current.next_retry_at = None
            note = f"{sentence} Not retried automatically: a person has to look at it."
            attention = f"{_attention_prefix(attempt.step)}{sentence}"
        current.save()
        current.note_text = note
        CaseNote.objects.create(case_id=attempt.case_id, text=note)
        if attention:
            Case.objects.filter(pk=attempt.case_id).update(needs_attention=True, attention_reason=attention)
    logger.warning("case %s: %s attempt %s failed: status=%s code=%s", attempt.case_id, attempt.step,
                   attempt.attempt, status, code)
    return current


def record_success(case, attempt_id: int, duration_ms: int | None, summary: str, extra_notes=(), *,
                   attempt=None) -> None:
    """Inside the transaction that applies the step: the attempt succeeded, a note says
    so, the needs-attention flag this step raised is cleared, and for "Send to Align"
    the next step is recorded as pending (in the same transaction, so no second send
    can slip in between).

    `attempt` is the attempt as begun (the step's call has it): its step, chain and
    actor do not change, so the row is updated in one statement (which takes its lock)
    instead of being locked, read and written back. Without it, it is read first.
    """
    now = timezone.now()
    if attempt is None:
        attempt = OutboundAttempt.objects.select_for_update().get(pk=attempt_id)
    OutboundAttempt.objects.filter(pk=attempt_id).update(
        status=AttemptStatus.SUCCEEDED, http_status=200, error_code="", message=summary,
        duration_ms=duration_ms, finished_at=now, claimed_until=None, next_retry_at=None,
    )
    label = wf.trigger_label(attempt.step)
    CaseNote.objects.create(case_id=case.pk, text=f"Align accepted {label}." + (f" {summary}" if summary else ""))
    for text in extra_notes:
        CaseNote.objects.create(case_id=case.pk, text=text)
    # Read the flag from the database: the caller's copy of the case may predate the failure that set it.
    reason = Case.objects.filter(pk=case.pk, needs_attention=True).values_list("attention_reason", flat=True).first()
    if reason is not None and _is_outbound_attention(reason):
        Case.objects.filter(pk=case.pk).update(needs_attention=False, attention_reason="")
        case.needs_attention, case.attention_reason = False, ""
    if attempt.chain:
        following = _following_step(attempt.step)
        if following:
            # by_id: the same actor, without loading the user row (run_attempt has it already).
            _enqueue(case, following, by_id=attempt.by_id, params={}, chain=True)


def record_unsaved_success(attempt_id: int, duration_ms: int | None, exc: BaseException, state_now: str) -> None:
    """Align accepted the step but our transaction applying it failed.

    If the case had meanwhile moved on, the step is moot. Otherwise the attempt is
    re-sent with the same key: the service answers from its memory and the change is
    applied then.
    """
    from .engine import TransitionNotAllowed

    now = timezone.now()
    attempt = OutboundAttempt.objects.filter(pk=attempt_id, status=AttemptStatus.IN_FLIGHT).first()
    if attempt is None:
        return
    label = wf.trigger_label(attempt.step)
    with transaction.atomic():
        attempt.http_status, attempt.duration_ms, attempt.finished_at = 200, duration_ms, now
        attempt.claimed_until = None
        if isinstance(exc, TransitionNotAllowed):
            attempt.status = AttemptStatus.SUCCEEDED
            attempt.error_code = "NOT_APPLIED"
            attempt.message = f"Align accepted it, but the case had meanwhile become {state_now}: {exc}"
            note = f"Align accepted {label}, but the case had meanwhile moved on ({state_now}); nothing changed here."
        else:
            attempt.status = AttemptStatus.FAILED_RETRYABLE
            attempt.error_code = "NOT_SAVED"
            attempt.message = f"Align accepted it, but saving the result failed ({type(exc).__name__})."
            attempt.next_retry_at = now + timedelta(seconds=retry_delay(1))
            note = (f"Align accepted {label}, but saving the result here failed; it will be re-sent with the "
                    f"same key at {attempt.next_retry_at:%H:%M:%S} UTC, and Align will answer from its memory.")
        attempt.save()
        CaseNote.objects.create(case_id=attempt.case_id, text=note)


def _skip(attempt: OutboundAttempt, reason: str) -> None:
    """A pending attempt was refused before anything was sent."""
    with transaction.atomic():
        skipped = OutboundAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.PENDING).update(
            status=AttemptStatus.SKIPPED, message=reason[:1000], finished_at=timezone.now(), claimed_until=None
        )
        if skipped:
            CaseNote.objects.create(case_id=attempt.case_id, text=f"{wf.trigger_label(attempt.step)} was not sent: {reason}")


def _expire(attempt: OutboundAttempt) -> bool:
    """An in-flight attempt whose lease ran out: its process stopped before recording
    the answer. Align may or may not have done the work, so it is re-sent with the same
    key (at once: the lease already waited)."""
    now = timezone.now()
    with transaction.atomic():
        expired = OutboundAttempt.objects.filter(
            pk=attempt.pk, status=AttemptStatus.IN_FLIGHT, claimed_until__lt=now
        ).update(
            status=AttemptStatus.FAILED_RETRYABLE, error_code="LEASE_EXPIRED", finished_at=now, claimed_until=None,
            message="The process sending this stopped before it recorded Align's answer.",
            next_retry_at=now if attempt.attempt < settings.ALIGN_RETRY_MAX_ATTEMPTS else None,
        )
        if not expired:
            return False
        label = wf.trigger_label(attempt.step)
        if attempt.attempt < settings.ALIGN_RETRY_MAX_ATTEMPTS:
            CaseNote.objects.create(case_id=attempt.case_id, text=(
                f"No answer recorded for {label}: the process sending it stopped. "
                "Re-sending with the same key (Align answers from its memory if it already did it)."))
        else:
            reason = f"{_attention_prefix(attempt.step)}the process sending it stopped on the last attempt."
            CaseNote.objects.create(case_id=attempt.case_id, text=f"No answer recorded for {label}; the case "
                                    "needs attention.")
            Case.objects.filter(pk=attempt.case_id).update(needs_attention=True, attention_reason=reason)
    return True


# --- Queueing and running attempts ---------------------------------------------------


def _following_step(step):
    if step in wf.SEND_TO_ALIGN:
        index = wf.SEND_TO_ALIGN.index(step)
        if index + 1 < len(wf.SEND_TO_ALIGN):
            return wf.SEND_TO_ALIGN[index + 1]
    return None


def _enqueue(case, step, *, by=None, by_id=None, params, chain) -> OutboundAttempt:
    """Record a pending attempt (inside the caller's transaction), as `by` (a user) or `by_id`."""
    key, number = next_key(case.pk, step, params)
    _supersede_planned_retries(case.pk)
    actor = {"by_id": by_id} if by_id is not None else {"by": by}
    return OutboundAttempt.objects.create(
        case_id=case.pk, step=step, idempotency_key=key, attempt=number, status=AttemptStatus.PENDING, chain=chain,
        params=persisted_params(step, params), claimed_until=_lease_end(), **actor,
    )


def open_attempt(case_id) -> OutboundAttempt | None:
    """The attempt being sent (or about to be) for this case, if any."""
    return (
        OutboundAttempt.objects.filter(case_id=case_id, status__in=OutboundAttempt.OPEN,
                                       claimed_until__gt=timezone.now())
        .order_by("-id")
        .first()
    )


def _refuse_if_busy(case, trigger):
    from .engine import TransitionNotAllowed

    busy = open_attempt(case.pk)
    step = busy.step if busy else (case.busy_with if case.busy_until and case.busy_until > timezone.now() else "")
    if step:
        raise TransitionNotAllowed(
            f"{wf.trigger_label(step)} is already being sent to Align for this case; wait for it to finish.",
            code="in_progress", trigger=trigger, state=case.state,
        )


def _refuse_if_not_align(case, trigger):
    """Only a case prescribed to the Align lab is in the Align workflow."""
    from align_workflow.cases.models import Prescription

    from .engine import TransitionNotAllowed

    lab = Prescription.objects.filter(case_id=case.pk).values_list("lab", flat=True).first()
    if lab != Prescription.Lab.ALIGN:
        where = dict(Prescription.Lab.choices).get(lab, "no lab (no prescription)")
        raise TransitionNotAllowed(
            f"This case is not prescribed to Align (its lab is {where}), so it is outside the Align workflow; "
            "nothing was sent.", code="guard", trigger=trigger, state=case.state,
        )


@dataclass
class SendResult:
    """What a send_to_align / retry_case call did.

    `done`: steps Align accepted during this call, in order. `failed_step` / `error`:
    where and why it stopped (the text of the case note); `retry_at` when an automatic
    retry is planned. `queued`: the work was handed to a Celery worker, or deferred until
    the caller's transaction commits, so nothing has been sent yet; look at the case's
    attempts later.
    """

    case_id: int
    state: str = ""
    done: list[str] = field(default_factory=list)
    failed_step: str | None = None
    error: str = ""
    attempt_id: int | None = None
    retry_at: datetime | None = None
    needs_attention: bool = False
    queued: bool = False

    @property
    def ok(self) -> bool:
        return self.failed_step is None

    @property
    def message(self) -> str:
        """One sentence for the person who clicked."""
        if self.queued:
            return "Queued: the calls to Align will be sent in the background; the timeline shows their outcome."
        done = ", ".join(wf.trigger_label(s) for s in self.done)
        text = f"Align accepted: {done}." if done else ""
        if self.failed_step:
            text += f" {wf.trigger_label(self.failed_step)} did not go through: {self.error}"
            if self.needs_attention:
                text += " The case needs attention."
        return text.strip()


def run_attempt(attempt_id: int) -> SendResult | None:
    """Send a pending attempt (and, for "Send to Align", the steps that follow it).

    Safe to call twice or concurrently for one attempt: only the process that moves it
    from pending to in flight sends it. Returns None when there was nothing to run.
    """
    from .align_effects import AlignCallFailed
    from .engine import TransitionNotAllowed, fire

    attempt = OutboundAttempt.objects.filter(pk=attempt_id).first()
    if attempt is None or attempt.status != AttemptStatus.PENDING:
        return None
    result = SendResult(case_id=attempt.case_id)
    by = None
    while attempt is not None:
        case = Case.objects.get(pk=attempt.case_id)
        if by is not None and attempt.by_id == by.pk:
            attempt.by = by  # the step before was sent as the same user: not loaded again
        by = attempt.by
        try:
            fire(case, attempt.step, by=by, _attempt_id=attempt.pk, **attempt.params)
        except TransitionNotAllowed as exc:
            if exc.code != "in_progress":  # in progress: whoever holds the case finishes; the sweep catches strays
                _skip(attempt, str(exc))
            result.failed_step, result.error = attempt.step, str(exc)
            break
        except AttemptTaken:
            result.queued = True  # another process is sending it
            break
        except AlignCallFailed as exc:
            failed = exc.attempt
            result.failed_step, result.error, result.attempt_id = attempt.step, str(exc), failed.pk
            result.retry_at = failed.next_retry_at
            break
        result.done.append(attempt.step)
        following = _following_step(attempt.step)
        if following and attempt.chain:
            attempt = (
                OutboundAttempt.objects.filter(case_id=case.pk, step=following, status=AttemptStatus.PENDING, chain=True)
                .order_by("-id")
                .first()
            )
        else:
            attempt = None
    state, attention = Case.objects.filter(pk=result.case_id).values_list("state", "needs_attention").get()
    result.state, result.needs_attention = state, attention
    return result


def dispatch(attempt_id: int) -> SendResult | None:
    """Run a recorded attempt the configured way. Returns its result when it ran here."""
    if settings.ALIGN_EXECUTION == "celery":
        from .tasks import run_attempt_task

        try:
            run_attempt_task.delay(attempt_id)
        except Exception:  # the broker is down: the attempt stays pending and the sweep sends it
            logger.exception("could not queue attempt %s; the sweep will pick it up", attempt_id)
        return None
    return run_attempt(attempt_id)


def _start(attempt_id) -> list:
    """After the caller's commit, run the attempt; the list gets its result if it ran here."""
    ran = []
    transaction.on_commit(lambda: ran.append(dispatch(attempt_id)))
    return ran


def _finish(case, ran) -> SendResult:
    result = ran[0] if ran and ran[0] is not None else SendResult(case_id=case.pk, queued=True)
    fresh = Case.objects.get(pk=case.pk)
    for f in Case._meta.concrete_fields:
        setattr(case, f.attname, getattr(fresh, f.attname))
    result.state, result.needs_attention = case.state, case.needs_attention
    return result


def send_to_align(case, *, by) -> SendResult:
    """Send the case to Align: create patient -> create order -> upload assets.

    Starts from the case's current state (so calling it again resumes after a failure
    and never creates a second patient or order) and stops at the first failure.
    Raises TransitionNotAllowed, with nothing sent or recorded, when the first step is
    refused (state, actor, flag, guard), when the case has nothing left to send, or
    when a step is already being sent. `case` is refreshed in place.
    """
    from .engine import TransitionNotAllowed, check

    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        _refuse_if_not_align(locked, wf.SEND_TO_ALIGN[0])
        step = SEND_STEP_FROM.get(locked.state)
        if step is None:
            raise TransitionNotAllowed(
                f"Nothing to send: the case is {wf.state_label(locked.state)} ({wf.MEANINGS[locked.state]}).",
                code="wrong_state", trigger=wf.SEND_TO_ALIGN[0], state=locked.state,
            )
        check(locked, step, by=by)
        _refuse_if_busy(locked, step)
        attempt = _enqueue(locked, step, by=by, params={}, chain=True)
        ran = _start(attempt.pk)
    return _finish(case, ran)


def retry_case(case, *, by, step=None, here=False, note=None) -> SendResult:
    """Retry the case's last failed call to Align now (the staff portal's Retry button).

    Re-sends the same step with the same idempotency key, as the actor who first sent
    it; a step of "Send to Align" continues with the steps after it. Refused
    (TransitionNotAllowed) when `by` is not staff, when nothing failed, or when a call is
    in flight.

    For batch jobs (align_batch): `step` retries the last call of that step rather than
    the case's last call; `here` sends it in this process now, whatever ALIGN_EXECUTION
    says (the caller must not be inside a transaction); `note` replaces the case note's
    text.
    """
    from .engine import TransitionNotAllowed, is_staff

    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if by is not None and not is_staff(by):
            raise TransitionNotAllowed("Only staff may retry a call to Align.", code="actor", state=locked.state)
        calls = OutboundAttempt.objects.filter(case_id=locked.pk)
        if step:
            calls = calls.filter(step=step)
        last = calls.order_by("-id").first()
        if last is None or last.status == AttemptStatus.SUCCEEDED:
            none_made = f"no {wf.trigger_label(step)} call" if step else "no call to Align"
            raise TransitionNotAllowed(
                "Nothing to retry: " + (f"{none_made} has been made for this case." if last is None
                                        else f"{wf.trigger_label(last.step)} succeeded."),
                code="wrong_state", state=locked.state,
            )
        _refuse_if_busy(locked, last.step)
        if last.status == AttemptStatus.PENDING:
            # Recorded but never started (its process died): start it now.
            OutboundAttempt.objects.filter(pk=last.pk).update(claimed_until=_lease_end())
            attempt = last
        else:
            if last.status == AttemptStatus.IN_FLIGHT:
                _expire(last)
            OutboundAttempt.objects.filter(pk=last.pk).update(next_retry_at=None)
            attempt = _enqueue(locked, last.step, by=last.by, params=last.params, chain=last.chain)
        who = f" by {by.get_username()}" if by is not None else ""
        CaseNote.objects.create(case_id=locked.pk, author=by,
                                text=note or f"Retry of {wf.trigger_label(attempt.step)} requested{who}.")
        ran = [] if here else _start(attempt.pk)
    if here:
        ran.append(run_attempt(attempt.pk))
    return _finish(case, ran)


# --- Due retries and expired leases (align_retry_due, the Celery sweep) -------------


@dataclass
class DueRun:
    expired: int = 0      # in-flight attempts whose process had stopped
    restarted: int = 0    # pending attempts nobody had started
    retried: int = 0      # failed attempts whose retry was due
    results: list = field(default_factory=list)
    acceptances: list = field(default_factory=list)  # (case id, outcome, detail): purchases' waiting acceptances

    @property
    def started(self):
        return self.restarted + self.retried


def collect_due(*, everything=False) -> tuple[DueRun, list[int]]:
    """Claim the work that is due and record one pending attempt for each retry.

    `everything`: every planned retry now, whatever its time.
    """
    now = timezone.now()
    run = DueRun()
    for attempt in OutboundAttempt.objects.filter(status=AttemptStatus.IN_FLIGHT, claimed_until__lt=now):
        run.expired += _expire(attempt)

    to_run = []
    for attempt in OutboundAttempt.objects.filter(status=AttemptStatus.PENDING, claimed_until__lt=now):
        if OutboundAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.PENDING, claimed_until__lt=now).update(
            claimed_until=_lease_end()
        ):
            run.restarted += 1
            to_run.append(attempt.pk)

    due = OutboundAttempt.objects.filter(status=AttemptStatus.FAILED_RETRYABLE, next_retry_at__isnull=False)
    if not everything:
        due = due.filter(next_retry_at__lte=timezone.now())
    for failed_id, case_id in due.order_by("next_retry_at").values_list("pk", "case_id"):
        with transaction.atomic():
            locked = Case.objects.select_for_update().get(pk=case_id)
            failed = OutboundAttempt.objects.select_for_update().get(pk=failed_id)
            if failed.next_retry_at is None or failed.status != AttemptStatus.FAILED_RETRYABLE or open_attempt(case_id):
                continue
            failed.next_retry_at = None
            failed.save(update_fields=["next_retry_at"])
            attempt = _enqueue(locked, failed.step, by=failed.by, params=failed.params, chain=failed.chain)
        run.retried += 1
        to_run.append(attempt.pk)
    return run, to_run


def _run_logged(attempt_id):
    # One attempt's unexpected error must not stop the others; its evidence is recorded
    # (NOT_SAVED) or its lease will expire and the sweep takes it over.
    try:
        return run_attempt(attempt_id)
    except Exception:
        logger.exception("attempt %s could not be run", attempt_id)
        return None


def _run_in_thread(attempt_id, held):
    try:
        return _run_logged(attempt_id)
    finally:
        held.keep()  # the thread's connection serves its next attempt (closed by run_due at the end)


def run_due(*, everything=False, workers=1) -> DueRun:
    """Run, in this process, every retry that is due (and take over stale attempts)."""
    run, to_run = collect_due(everything=everything)
    if workers > 1 and len(to_run) > 1:
        held = ThreadConnections()
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="align-retry") as pool:
                run.results = [r for r in pool.map(_run_in_thread, to_run, itertools.repeat(held))
                               if r is not None]
        finally:
            held.close_all()
    else:
        run.results = [r for r in map(_run_logged, to_run) if r is not None]
    from . import purchases

    # Bought cases whose acceptance waited for the flag: sent now if the flag is on.
    run.acceptances = purchases.send_waiting()
    return run


def attempts_of(case):
    """The case's calls to Align, newest first (for the staff portal's timeline)."""
    return OutboundAttempt.objects.filter(case_id=case.pk).select_related("by").order_by("-id")
