"""What each align_batch action does for one case: its default selection, and the plan
for a case (what would be sent, as whom, with which note), decided by the engine's own
pre-flight (`engine.preflight`), so that a case the engine would refuse is skipped with
the engine's reason, before anything is sent or written."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from functools import cache

from django.db.models import Exists, OuterRef, QuerySet

from align_workflow.cases.models import Case, CaseAsset, Prescription
from states import align_case as wf

from .. import busy, engine
from ..align_effects import BATCH_SENDER, pending_plan_version
from ..models import OutboundAttempt
from ..outbound import call_to_retry, trigger_label

AttemptStatus = OutboundAttempt.Status

# The old scripts' default when a revision row has no comment; sent as the batch's own request.
DEFAULT_COMMENTS = "Revision Requested."
_FAILED_STATUSES = (AttemptStatus.FAILED_RETRYABLE, AttemptStatus.FAILED_PERMANENT, AttemptStatus.SKIPPED)


class Skip(Exception):
    """This case is not sent; the message says why."""


class Busy(Skip):
    """This case is not sent because another process is sending it right now."""


@dataclass
class Plan:
    """What will be done for one case (shown as is by --dry-run)."""

    description: str  # "accept the ClinCheck as the system (screenshot asset 12)"
    by: object = None  # the acting user (None: the system)
    params: dict = field(default_factory=dict)
    # The engine's pre-flight of the step (EffectParams), sent as checked (fire_checked).
    checked: object = None
    retry: bool = False  # re-send the step's last failed call (retry_here) instead of firing anew
    step: str | None = None  # the step retried
    note: str = ""  # the case note written when it is sent
    remark: str = ""  # told to the user with the outcome


def _words(state):
    return wf.state_label(state)


def _who(by):
    return "the system" if by is None else f"user {by.get_username()}"


def _operator():
    try:
        return getpass.getuser()
    except Exception:  # no user name for this uid (containers)
        return os.environ.get("USER") or f"uid {os.getuid()}"


def _reachable(state, without=None) -> set:
    """The states a case in `state` can still reach (itself included), not using trigger `without`."""
    seen, todo = {state}, [state]
    while todo:
        current = todo.pop()
        for t in wf.TRANSITIONS:
            if t.trigger != without and current in t.source and t.dest not in seen:
                seen.add(t.dest)
                todo.append(t.dest)
    return seen


@cache
def done_states(trigger) -> tuple:
    """The states that mean `trigger` was already done: reachable after it, and not
    reachable from where it is fired without it (computed from states/)."""
    spec = wf.BY_TRIGGER[trigger]
    without = set().union(*(_reachable(source, without=trigger) for source in spec.source))
    return tuple(s for s in wf.STATES if s in _reachable(spec.dest) - without)


def refuse_if_busy(case):
    """Busy (skip, in progress elsewhere) while a call for the case is in flight (busy.py decides).
    A case read with `open_call_step` (the step of its open attempt, annotated) is not asked again."""
    annotated = hasattr(case, "open_call_step")
    step = (case.open_call_step or busy.claimed_step(case)) if annotated else busy.busy_step(case)
    if step:
        raise Busy(
            f"{trigger_label(step)} is being sent to Align for this case right now by another "
            "process (or one that stopped mid-call, until its lease ends); run again later"
        )


def _skip_for(exc, case, action) -> Skip:
    """The Skip (or Busy) for an engine refusal, with a short reason."""
    if exc.code == "in_progress":
        return Busy(str(exc))
    if exc.code == "wrong_state" and action is not None:
        return Skip(action.wrong_state_reason(case))
    return Skip(str(exc))


def _refused(case, action, checks):
    """Run the engine's `checks`; a refusal becomes a Skip (Busy) with a short reason."""
    try:
        return checks()
    except engine.TransitionNotAllowed as exc:
        raise _skip_for(exc, case, action) from None


def _preflight(case, trigger, by, action, *, own_check=None, **params) -> dict:
    """The engine's pre-flight, writing nothing; Skip with a short reason.

    `own_check(case)`, the action's own condition (a reason to skip, or ""), is told once
    the engine's checks of the state, actor, flag and guard have passed, before a refusal
    of the effect's input: the order in which a person fixes things.
    """
    try:
        prepared = engine.preflight(case, trigger, by=by, **params)
    except engine.TransitionNotAllowed as exc:
        if own_check is not None and exc.code in ("invalid_input", "guard") and own_check(case):
            raise Skip(own_check(case)) from None
        raise _skip_for(exc, case, action) from None
    if own_check is not None and own_check(case):
        raise Skip(own_check(case))
    return prepared


def _not_purchased(case):
    return "" if case.aligners_purchased_at is not None else "no aligner purchase is recorded for this case"


def _no_align_patient(case):
    return "" if case.align_pid else "the case has no Align patient id (pId)"


class Action:
    name = ""
    trigger = ""
    done_word = ""  # "[3/10] C000123 accepted"
    already = ""  # the skip reason when the work is done already
    selection_description = ""
    takes_comments = False
    detail_when_done = False  # say what was done on the case's line

    @property
    def done_states(self) -> tuple:
        return done_states(self.trigger) if self.trigger else ()

    def default_selection(self) -> QuerySet:
        raise NotImplementedError

    def wrong_state_reason(self, case) -> str:
        if case.state in self.done_states:
            now = "" if case.state == wf.BY_TRIGGER[self.trigger].dest else f" (the case is now {_words(case.state)})"
            return self.already + now
        if case.state == wf.CANCELLED:
            return "the case is cancelled"
        sources = " or ".join(_words(s) for s in wf.BY_TRIGGER[self.trigger].source)
        return f"the case is {_words(case.state)}; {self.name} needs {sources}"

    def plan(self, case, row) -> Plan:
        raise NotImplementedError

    def note(self, text):
        return f"align_batch {self.name} (run by {_operator()}): {text}"


class Accept(Action):
    name = "accept"
    trigger = "accept_clincheck"
    done_word = "accepted"
    already = "already accepted"
    selection_description = "provider approved, aligners purchased, acceptance screenshot stored"

    def default_selection(self):
        screenshot = CaseAsset.objects.filter(case=OuterRef("pk"), kind=CaseAsset.Kind.CCACCEPTSCREEN, removed=False)
        return Case.objects.filter(state=wf.PROVIDER_APPROVED, aligners_purchased_at__isnull=False).filter(
            Exists(screenshot)
        )

    def plan(self, case, row):
        prepared = _preflight(case, self.trigger, None, self, own_check=_not_purchased)
        return Plan(
            f"accept the ClinCheck as the system (screenshot asset {prepared['screenshot_asset_id']})",
            by=None,
            checked=prepared,
            note=self.note("sending Accept ClinCheck as the system (aligners purchased)."),
        )


class UploadAssets(Action):
    name = "upload-assets"
    trigger = "upload_assets"
    done_word = "assets uploaded"
    already = "assets already uploaded"
    selection_description = "order created, no call to Align in flight"

    def default_selection(self):
        return Case.objects.filter(state=wf.ORDER_CREATED).exclude(Exists(busy.open_call_query()))

    def plan(self, case, row):
        prepared = _preflight(case, self.trigger, None, self, own_check=_no_align_patient)
        return Plan(
            "upload the assets as the system",
            by=None,
            checked=prepared,
            note=self.note("sending Upload Assets as the system."),
        )


class Revise(Action):
    name = "revise"
    trigger = "request_revision"
    done_word = "revision requested"
    already = "revision already requested"
    selection_description = "plan received, the provider's revision request failed to reach Align"
    takes_comments = True

    def default_selection(self):
        last = OutboundAttempt.objects.filter(case=OuterRef("pk")).order_by("-id")
        return (
            Case.objects.filter(state=wf.PLAN_RECEIVED)
            .annotate(last_step=last.values("step")[:1], last_status=last.values("status")[:1])
            .filter(last_step="request_revision", last_status__in=_FAILED_STATUSES)
        )

    def plan(self, case, row):
        prescription = Prescription.objects.filter(case_id=case.pk).select_related("provider__user").first()
        if prescription is None:
            raise Skip("the case has no prescription, so no provider to act for")
        provider = prescription.provider.user
        _refused(case, self, lambda: engine.check(case, self.trigger, by=provider))
        version = pending_plan_version(case.pk) or 0
        failed = call_to_retry(case.pk, self.trigger)
        if failed is not None and failed.status == AttemptStatus.SUCCEEDED:
            failed = None
        if failed is not None and int((failed.params or {}).get("plan_version") or 0) == version:
            if failed.by_id != provider.pk:
                raise Skip("the failed revision request was made by someone who is not the case's provider now")
            _preflight(case, self.trigger, provider, self, **failed.params)
            remark = ""
            if row.comments and row.comments.strip() != failed.params.get("comments"):
                remark = "the file's comments were not used: the provider's own were re-sent"
            return Plan(
                f"re-send the failed revision request for plan version {version} on behalf of provider "
                f"{provider.get_username()} (the provider's comments, the same key)"
                + (f"; {remark.replace('were', 'are')}" if remark else ""),
                by=provider,
                retry=True,
                step=self.trigger,
                remark=remark,
                note=self.note(
                    f"re-sending the failed Request Revision for plan version {version} on behalf of "
                    f"the case's provider ({provider.get_username()}), with the provider's comments "
                    "and the same idempotency key."
                ),
            )
        if failed is not None:
            raise Skip(
                f"its failed revision request was about plan version "
                f"{failed.params.get('plan_version') or '?'}, but version {version} is waiting now, "
                "for the provider to review"
            )
        if not row.explicit:
            raise Skip("no failed revision request to re-send")
        if not row.comments:
            # The old scripts' default: the batch's words, not the provider's. Only the provider
            # may request a revision, so it is still sent on the provider's behalf, but recorded
            # (history, attempt, plan page) as align_batch's default comment.
            params = {"comments": DEFAULT_COMMENTS, "sent_by": BATCH_SENDER}
            _preflight(case, self.trigger, provider, self, **params)
            return Plan(
                f"request a revision of plan version {version} with align_batch's default comment "
                f"{DEFAULT_COMMENTS!r} (the file gave none), on behalf of provider {provider.get_username()}",
                by=provider,
                params=params,
                note=self.note(
                    f"sending Request Revision for plan version {version} with the old scripts' default "
                    f"comment {DEFAULT_COMMENTS!r} (the file gave none; not the provider's words), on "
                    f"behalf of the case's provider ({provider.get_username()})."
                ),
            )
        params = {"comments": row.comments}
        _preflight(case, self.trigger, provider, self, **params)
        return Plan(
            f"request a revision of plan version {version} on behalf of provider {provider.get_username()}",
            by=provider,
            params=params,
            note=self.note(
                f"sending Request Revision for plan version {version} on behalf of the case's "
                f"provider ({provider.get_username()})."
            ),
        )


class RetryFailed(Action):
    name = "retry-failed"
    trigger = ""
    done_word = "retried"
    detail_when_done = True
    selection_description = "every case that needs attention"

    def default_selection(self):
        return Case.objects.filter(needs_attention=True)

    def plan(self, case, row):
        last = call_to_retry(case.pk)
        if last is None:
            raise Skip("no call to Align has been made for this case, so there is nothing to retry")
        if last.status == AttemptStatus.SUCCEEDED:
            raise Skip(f"nothing to retry: its last call ({trigger_label(last.step)}) succeeded")
        label = trigger_label(last.step)
        if case.state not in wf.BY_TRIGGER[last.step].source:
            raise Skip(f"its last failed call ({label}) no longer applies: the case is {_words(case.state)}")
        _preflight(case, last.step, last.by, None, **(last.params or {}))
        return Plan(
            f"retry {label} (attempt {last.attempt}, {last.get_status_display().lower()}) as "
            f"{_who(last.by)}, with the same key",
            by=last.by,
            retry=True,
            step=None,
            note=self.note(f"retrying {label} as {_who(last.by)}."),
        )


ACTIONS = {a.name: a for a in (Accept(), Revise(), UploadAssets(), RetryFailed())}
