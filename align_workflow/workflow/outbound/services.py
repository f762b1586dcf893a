"""The services that send cases to Align: "Send to Align" and the retry of a failed call.

result = send_to_align(case, by=request.user)   # create patient -> order -> upload assets
result = retry_case(case, by=request.user)      # the staff portal's Retry button
result = retry_here(case, note=..., step=...)   # align_batch: retried in this process now
result = fire_step(case, "request_revision", by=request.user, comments=text)  # one step, the configured way
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from align_workflow.cases.models import Case, CaseNote, Prescription
from states import align_case as wf

from .. import staged
from ..engine import TransitionNotAllowed, check, fire, is_staff, preflight, refuse_if_busy
from ..models import OutboundAttempt
from .labels import trigger_label
from .outcomes import enqueue, expire
from .policy import lease_end
from .runner import SendResult, finish, run_attempt, start_after_commit

AttemptStatus = OutboundAttempt.Status

# "Send to Align": the step to run from each state.
SEND_STEP_FROM = {wf.BY_TRIGGER[step].source[0]: step for step in wf.SEND_TO_ALIGN}


def refuse_if_not_align(case, trigger):
    """Only a case prescribed to the Align lab is in the Align workflow."""
    lab = Prescription.objects.filter(case_id=case.pk).values_list("lab", flat=True).first()
    if lab != Prescription.Lab.ALIGN:
        where = dict(Prescription.Lab.choices).get(lab, "no lab (no prescription)")
        raise TransitionNotAllowed(
            f"This case is not prescribed to Align (its lab is {where}), so it is outside the Align workflow; "
            "nothing was sent.",
            code="guard",
            trigger=trigger,
            state=case.state,
        )


def send_to_align(case, *, by) -> SendResult:
    """Send the case to Align: create patient -> create order -> upload assets.

    Starts from the case's current state (so calling it again resumes after a failure
    and never creates a second patient or order) and stops at the first failure.
    Raises TransitionNotAllowed, with nothing sent or recorded, when the first step is
    refused (state, actor, flag, guard), when the case has nothing left to send, or
    when a step is already being sent. `case` is refreshed in place.
    """
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        refuse_if_not_align(locked, wf.SEND_TO_ALIGN[0])
        step = SEND_STEP_FROM.get(locked.state)
        if step is None:
            raise TransitionNotAllowed(
                f"Nothing to send: the case is {wf.state_label(locked.state)} ({wf.MEANINGS[locked.state]}).",
                code="wrong_state",
                trigger=wf.SEND_TO_ALIGN[0],
                state=locked.state,
            )
        check(locked, step, by=by)
        refuse_if_busy(locked, step)
        attempt = enqueue(locked, step, by=by, params={}, chain=True)
        ran = start_after_commit(attempt, locked)
    return finish(case, ran)


# Single steps that are calls to Align and that Celery mode runs in the background.
QUEUEABLE_STEPS = ("request_revision", "accept_clincheck", "approve_plan")


def in_background() -> bool:
    """Whether single steps are queued for a worker (ALIGN_EXECUTION=celery)."""
    return settings.ALIGN_EXECUTION == "celery"


def fire_step(case, trigger, *, by, **params) -> SendResult:
    """Fire a single step that calls Align or the vault (a revision request, the
    acceptance, the approval) the configured way.

    Inline (the default): `fire()` in this process; its refusals and failed calls are
    raised as `fire()` raises them. Celery: every check `fire()` makes is made now under
    the case's row lock (state, actor, flag, guard, the input, the pre-flight, no call in
    flight), then the attempt is recorded, with its idempotency key and what a re-send
    needs, and handed to a worker after the commit: the result says `queued`, the case
    moves when the worker's call succeeds. The approval's screenshot is decoded and stored
    in the database (workflow/staged.py) before it is queued; the worker puts it in the
    vault. A refusal raises TransitionNotAllowed with
    nothing recorded. `case` is refreshed in place.
    """
    if trigger not in QUEUEABLE_STEPS or not in_background():
        fire(case, trigger, by=by, **params)
        return SendResult(case_id=case.pk, state=case.state, done=[trigger], needs_attention=case.needs_attention)
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        prepared = preflight(locked, trigger, by=by, **params)
        refuse_if_busy(locked, trigger)
        if trigger == "approve_plan":  # the screenshot is decoded and stored before the approval is queued
            prepared = staged.stage(locked, prepared)
        attempt = enqueue(locked, trigger, by=by, params=prepared, chain=False)
        ran = start_after_commit(attempt, locked)
    return finish(case, ran)


def call_to_retry(case_id, step=None) -> OutboundAttempt | None:
    """The call a retry re-sends: the case's last call (of `step`, when given), with its
    actor loaded. None when there is none; the caller refuses a succeeded one."""
    calls = OutboundAttempt.objects.filter(case_id=case_id)
    if step:
        calls = calls.filter(step=step)
    return calls.select_related("by").order_by("-id").first()


def retry_case(case, *, by) -> SendResult:
    """Retry the case's last failed call to Align now (the staff portal's Retry button).

    Re-sends the same step with the same idempotency key, as the actor who first sent
    it; a step of "Send to Align" continues with the steps after it. Refused
    (TransitionNotAllowed) when `by` is not staff, when nothing failed, or when a call is
    in flight. Runs the configured way (ALIGN_EXECUTION).
    """
    if by is not None and not is_staff(by):
        raise TransitionNotAllowed("Only staff may retry a call to Align.", code="actor", state=case.state)
    who = f" by {by.get_username()}" if by is not None else ""
    with transaction.atomic():
        attempt = _record_retry(case, by, step=None, note=lambda label: f"Retry of {label} requested{who}.")
        ran = start_after_commit(attempt)
    return finish(case, ran)


def retry_here(case, *, note, step=None) -> SendResult:
    """Retry the case's last failed call (or the last call of `step`) as the system, in
    this process now, whatever ALIGN_EXECUTION says, with `note` as the case note
    (align_batch). The caller must not be inside a transaction."""
    with transaction.atomic():
        attempt = _record_retry(case, None, step=step, note=lambda label: note)
    return finish(case, [run_attempt(attempt.pk, attempt=attempt)])


def _record_retry(case, by, *, step, note) -> OutboundAttempt:
    """Inside a transaction: lock the case, choose the call to retry and record the
    attempt that re-sends it (with its case note); refusals as retry_case says."""
    locked = Case.objects.select_for_update().get(pk=case.pk)
    last = call_to_retry(locked.pk, step)
    if last is None or last.status == AttemptStatus.SUCCEEDED:
        none_made = f"no {trigger_label(step)} call" if step else "no call to Align"
        raise TransitionNotAllowed(
            "Nothing to retry: "
            + (
                f"{none_made} has been made for this case."
                if last is None
                else f"{trigger_label(last.step)} succeeded."
            ),
            code="wrong_state",
            state=locked.state,
        )
    refuse_if_busy(locked, last.step)
    if last.status == AttemptStatus.PENDING:
        # Recorded but never started (its process died): start it now.
        OutboundAttempt.objects.filter(pk=last.pk).update(claimed_until=lease_end())
        attempt = last
    else:
        if last.status == AttemptStatus.IN_FLIGHT:
            expire(last)
        OutboundAttempt.objects.filter(pk=last.pk).update(next_retry_at=None)
        attempt = enqueue(locked, last.step, by=last.by, params=last.params, chain=last.chain)
    CaseNote.objects.create(case_id=locked.pk, author=by, text=note(trigger_label(attempt.step)))
    return attempt


def attempts_of(case):
    """The case's calls to Align, newest first (for the staff portal's timeline)."""
    return OutboundAttempt.objects.filter(case_id=case.pk).select_related("by").order_by("-id")
