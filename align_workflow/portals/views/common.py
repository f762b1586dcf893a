"""What every portal action does with a refusal or a failed call: a message, never a 500."""

import re

from django.contrib import messages

from align_workflow.align.errors import AlignError
from align_workflow.workflow.effects import EffectFailed
from align_workflow.workflow.engine import TransitionNotAllowed
from states import align_case as wf

from .. import wording


def _call_failures():
    """Exceptions that mean "the call to Align failed; the case stayed where it was"."""
    return (EffectFailed, AlignError)


def perform(request, action, *, success, case=None, portal="staff"):
    """Run `action()`; report success, a refusal or a failed call as a message.

    `success` is a message, or a callable taking the action's result and returning a
    message or a (level, message) pair. A refusal or a failed call is said in plain words
    with its next step (wording.py; `case` and `portal` give its links). Returns True when
    the action went through.
    """
    try:
        result = action()
    except TransitionNotAllowed as refused:
        wording.say(request, wording.refusal(refused, case=case, portal=portal))
        return False
    except _call_failures() as failed:
        if case is not None:
            case.refresh_from_db(fields=["state", "needs_attention"])
        wording.say(request, wording.failure(failed, case=case, portal=portal))
        return False
    outcome = success(result) if callable(success) else success
    level, text = outcome if isinstance(outcome, tuple) else (messages.SUCCESS, outcome)
    messages.add_message(request, level, text)
    return level == messages.SUCCESS


def send_outcome(case, portal="staff"):
    """The `success` of perform for send_to_align / retry_case / fire_step (a SendResult):
    a call that stopped is worded like any failed call (wording.send_failure)."""

    def outcome(result):
        if result.queued:
            return messages.INFO, result.message
        if result.ok:
            return messages.SUCCESS, f"{result.message} The case is now {wf.state_label(result.state)}.".strip()
        failed = wording.send_failure(result, case=case, portal=portal)
        return failed.level, failed.html()

    return outcome


def form_errors(request, form):
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, error)


_SVG_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_SVG_SIZE = re.compile(r'<svg width="([0-9.]+pt)" height="[^"]*"')


def inline_svg(svg: str) -> str:
    """A graphviz SVG ready to sit inside HTML: no XML prolog, as wide as its container but
    never wider than drawn (so its labels keep their size)."""
    svg = _SVG_PROLOG.sub("", svg, count=1)
    return _SVG_SIZE.sub(
        r'<svg class="diagram" style="max-width: \1" preserveAspectRatio="xMidYMin meet"', svg, count=1
    )
