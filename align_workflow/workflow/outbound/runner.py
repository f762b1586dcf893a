"""Running recorded attempts: `run_attempt` sends a pending attempt (and, for "Send to
Align", the steps that follow it); `dispatch` runs it the configured way
(settings.ALIGN_EXECUTION: in this process, or handed to a Celery worker)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction

from align_workflow.cases.models import Case

from ..effects import AlignCallFailed, EffectParams
from ..engine import TransitionNotAllowed, fire_attempt
from ..models import OutboundAttempt
from .labels import trigger_label
from .outcomes import AttemptTaken, skip

logger = logging.getLogger(__name__)

AttemptStatus = OutboundAttempt.Status


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
    # The case as the last step left it (run in this process and every step succeeded):
    # what `finish` copies instead of reading the row again.
    case: Case | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.failed_step is None

    @property
    def message(self) -> str:
        """One sentence for the person who clicked."""
        if self.queued:
            return "Queued: the calls to Align will be sent in the background; the timeline shows their outcome."
        done = ", ".join(trigger_label(s) for s in self.done)
        text = f"Align accepted: {done}." if done else ""
        if self.failed_step:
            text += f" {trigger_label(self.failed_step)} did not go through: {self.error}"
            if self.needs_attention:
                text += " The case needs attention."
        return text.strip()


def run_attempt(
    attempt_id: int, *, attempt: OutboundAttempt | None = None, case: Case | None = None
) -> SendResult | None:
    """Send a pending attempt (and, for "Send to Align", the steps that follow it).

    Safe to call twice or concurrently for one attempt: only the process that moves it
    from pending to in flight sends it. Returns None when there was nothing to run.
    `attempt` and `case`: the rows as the caller just committed them (not read again);
    the engine re-checks a stale case against the database before it refuses anything.
    """
    if attempt is None or attempt.pk != attempt_id:
        attempt = OutboundAttempt.objects.filter(pk=attempt_id).first()
    if attempt is None or attempt.status != AttemptStatus.PENDING:
        return None
    result = SendResult(case_id=attempt.case_id)
    if case is not None and case.pk != attempt.case_id:
        case = None
    by = None
    while attempt is not None:
        if case is None:
            case = Case.objects.get(pk=attempt.case_id)
        if by is not None and attempt.by_id == by.pk:
            attempt.by = by  # the step before was sent as the same user: not loaded again
        by = attempt.by
        params = EffectParams(attempt.params, attempt_id=attempt.pk)
        params.prepared["attempt"] = attempt  # the row as recorded: not read again when it is started
        try:
            fire_attempt(case, attempt.step, by=by, params=params)
        except TransitionNotAllowed as exc:
            if exc.code != "in_progress":  # in progress: whoever holds the case finishes; the sweep catches strays
                skip(attempt, str(exc))
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
        # The next step of "Send to Align", recorded in the transaction that applied this one.
        attempt = params.prepared.get("following") if attempt.chain else None
    if result.ok and not result.queued and case is not None:
        # Every step moved `case` in place (state, flag and reason written by the move).
        result.state, result.needs_attention, result.case = case.state, case.needs_attention, case
        return result
    state, attention = Case.objects.filter(pk=result.case_id).values_list("state", "needs_attention").get()
    result.state, result.needs_attention = state, attention
    return result


def run_logged(attempt_id):
    """run_attempt, for a loop over many: one attempt's unexpected error must not stop the
    others; its evidence is recorded (NOT_SAVED) or its lease will expire and the sweep
    takes it over."""
    try:
        return run_attempt(attempt_id)
    except Exception:
        logger.exception("attempt %s could not be run", attempt_id)
        return None


def dispatch(attempt_id: int, *, attempt=None, case=None) -> SendResult | None:
    """Run a recorded attempt the configured way. Returns its result when it ran here
    (`attempt` and `case`: the rows as committed, handed to run_attempt)."""
    if settings.ALIGN_EXECUTION == "celery":
        # Imported here: the tasks module imports the Celery app and this package.
        from ..tasks import run_attempt_task  # why: tasks imports this package (and Celery only when used)

        try:
            run_attempt_task.delay(attempt_id)
        except Exception:  # the broker is down: the attempt stays pending and the sweep sends it
            logger.exception("could not queue attempt %s; the sweep will pick it up", attempt_id)
        return None
    return run_attempt(attempt_id, attempt=attempt, case=case)


def start_after_commit(attempt, case=None) -> list:
    """After the caller's commit, run the attempt (the row just recorded; `case`, the row
    as the transaction leaves it); the list gets its result if it ran here."""
    ran = []
    transaction.on_commit(lambda: ran.append(dispatch(attempt.pk, attempt=attempt, case=case)))
    return ran


def finish(case, ran) -> SendResult:
    """The result of what ran (or "queued"), with `case` refreshed in place."""
    result = ran[0] if ran and ran[0] is not None else SendResult(case_id=case.pk, queued=True)
    fresh = result.case if result.case is not None else Case.objects.get(pk=case.pk)
    for f in Case._meta.concrete_fields:
        setattr(case, f.attname, getattr(fresh, f.attname))
    result.state, result.needs_attention = case.state, case.needs_attention
    return result
