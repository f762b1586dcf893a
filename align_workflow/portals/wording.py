"""What a person reads when an action did not go through: one plain sentence, the next
step (with a link where the page has one), and the technical code in small print.

    say(request, refusal(refused, case=case, portal="staff"))
    say(request, failure(failed, case=case, portal="staff"))
    say(request, send_failure(result, case=case))

A refusal (TransitionNotAllowed, by its `code`), a failed call to Align (EffectFailed,
AlignError, or a SendResult that stopped) becomes a `Wording`. What the person wanted
and already happened ("nothing to do: already done") is information, not an error.
No trigger, state or flag name reaches the sentence: those go into `code` and `detail`
(small print and its tooltip, for support).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib import messages
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.html import format_html

from align_workflow.align.errors import AlignAuthError, AlignError
from align_workflow.workflow import preflight
from align_workflow.workflow.effects import AlignCallFailed
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf

# The switches (waffle flags) in words: what is switched off when one is off.
FLAG_WORDS = {
    wf.FLAG_INITIATE_ORDER: "Sending new cases to Align",
    wf.FLAG_SET_ORDER_STATUS: "Sending revision requests and plan acceptances to Align",
}
# The order a case normally goes through: a state later than a step's result means that
# step has already been done (a revision request sits outside it: it may come back).
_MAIN_PATH = tuple(s for s in wf.STATES if s not in (wf.REVISION_REQUESTED, wf.CANCELLED))
# Checklist criteria (preflight.REQUIRED / guards) and where a person fixes each.
CONTACT_CRITERIA = ("patient_email", "patient_phone", "patient_address")
PATIENT_CRITERIA = ("patient_mrn", "patient_name", "patient_date_of_birth")
PRESCRIPTION_CRITERIA = ("lab_is_align", "photos_approved", "treatment_option", "two_stl_files")
# Align's error codes for a request missing a field or carrying an invalid one.
FIELD_ERRORS = ("REQUEST.MISSING_FIELD", "REQUEST.INVALID_FIELD")


@dataclass(frozen=True)
class Wording:
    text: str  # the plain sentence
    next_step: str = ""  # what to do now
    link: str = ""  # where the next step is done ("" when there is nowhere to go)
    code: str = ""  # the technical code, for support (small print)
    detail: str = ""  # the technical text, for support (its tooltip)
    level: int = messages.ERROR

    def html(self):
        parts = [format_html('<span class="msg-text">{}</span>', self.text)]
        if self.next_step and self.link:
            parts.append(format_html('<a class="msg-next" href="{}">{}</a>', self.link, self.next_step))
        elif self.next_step:
            parts.append(format_html('<span class="msg-next">{}</span>', self.next_step))
        if self.code:
            parts.append(format_html('<small class="techcode" title="{}">{}</small>', self.detail, self.code))
        return format_html(" ".join(["{}"] * len(parts)), *parts)


def say(request, wording: Wording):
    messages.add_message(request, wording.level, wording.html())


def case_link(case, portal, anchor="", query=""):
    if case is None:
        return ""
    url = reverse(f"portals:{portal}_case", args=[case.pk])
    return url + (f"?{query}" if query else "") + (f"#{anchor}" if anchor else "")


def _done(trigger, state):
    """Whether what `trigger` does has already happened to a case in `state`."""
    spec = wf.BY_TRIGGER.get(trigger)
    if spec is None:
        return False
    if state == spec.dest:
        return True
    return spec.dest in _MAIN_PATH and state in _MAIN_PATH and _MAIN_PATH.index(state) > _MAIN_PATH.index(spec.dest)


def _wrong_state(refused, case, portal):
    # The caller's copy of the case holds what the database holds after a refusal.
    state, trigger = (case.state if case is not None else refused.state) or "", refused.trigger
    back = case_link(case, portal)
    if trigger is None:  # a Retry with nothing failed
        made = case is None or OutboundAttempt.objects.filter(case_id=case.pk).exists()
        return Wording(
            "Nothing to retry: "
            + ("the last call to Align went through." if made else "no call to Align was made for this case yet."),
            "Nothing to do.",
            level=messages.INFO,
        )
    if _done(trigger, state):
        return Wording(
            f"Nothing to do: this was already done. The case is {wf.state_label(state)}.",
            "See the case as it is now.",
            back,
            level=messages.INFO,
        )
    if state in wf.TERMINAL:
        return Wording(
            f"The case is {wf.state_label(state)}, so nothing more can be done with it here.",
            "Open the case to see what happened.",
            back,
        )
    return Wording(
        f"This cannot be done now: the case is {wf.state_label(state)}. {wf.MEANINGS.get(state, '')}".strip(),
        "Reload the case to see what can be done now.",
        back,
    )


def _guard(refused, case, portal):
    failed = [c for c in refused.criteria if not c.ok]
    if not failed:  # the case is not prescribed to Align
        return Wording(
            "This case is not prescribed to Align, so nothing is sent to Align for it.",
            "Open the prescription",
            case_link(case, portal, "prescription") if portal == "staff" else "",
        )
    return _fix([c.name for c in failed], "; ".join(f"{c.label}: {c.reason}" for c in failed), case, portal)


def _fix(names, what, case, portal):
    """The sentence and next step for failed checklist criteria `names`."""
    text = f"Nothing was sent to Align: {what}."
    if portal != "staff":
        return Wording(text, "The clinic has to correct this first; contact the clinic.")
    if any(n in CONTACT_CRITERIA for n in names):
        return Wording(
            text, "Edit the patient's contact details", case_link(case, portal, "contact-form", "fix=contact")
        )
    if any(n in PRESCRIPTION_CRITERIA for n in names):
        return Wording(text, "Open the prescription", case_link(case, portal, "prescription"))
    if "patient_gender" in names:
        return Wording(text, "Set the patient's gender", case_link(case, portal, "gender-form"))
    if any(n in PATIENT_CRITERIA for n in names):
        return Wording(text, "Correct the patient's record (in the admin)", reverse("admin:cases_patient_changelist"))
    if "acceptance_screenshot" in names:
        return Wording(text, "Ask the provider to approve the plan again.")
    if "align_patient_id" in names:
        return Wording(text, "Send the case to Align again", case_link(case, portal, "align-panel"))
    return Wording(text, "Ask an administrator to check the Align settings.")


# Names of the engine that must not reach a sentence (raw state and trigger names, flags).
ENGINE_WORDS = tuple(n for n in (*wf.STATES, *wf.TRIGGERS) if "_" in n) + tuple(FLAG_WORDS)


def _plain(text):
    """The effects' own input checks speak plainly (workflow/effects.py); should one name
    the engine's parts, the person reads a general sentence (the text stays in the tooltip)."""
    if any(word in text for word in ENGINE_WORDS):
        return "What was entered cannot be used, so nothing was done."
    return text


def _flag_off(refused, case, portal):
    spec = wf.BY_TRIGGER.get(refused.trigger)
    flag = spec.flag if spec else ""
    what = FLAG_WORDS.get(flag, "This part of the Align connection")
    return Wording(
        f"{what} is switched off at the moment, so nothing was sent.",
        "Ask an administrator to switch it on, then try again.",
        level=messages.WARNING,
    )


REFUSALS = {
    "unknown_trigger": lambda r, case, portal: Wording(
        "That action does not exist.", "Back to the case", case_link(case, portal)
    ),
    "wrong_state": _wrong_state,
    "actor": lambda r, case, portal: Wording(
        "Only clinic staff can do this."
        if wf.STAFF in getattr(wf.BY_TRIGGER.get(r.trigger), "actor", (wf.STAFF,))
        else "Only the case's provider can do this.",
        "Back to the case",
        case_link(case, portal),
    ),
    "not_your_case": lambda r, case, portal: Wording(
        "This case belongs to another provider.", "Back to your cases", reverse("portals:provider_cases")
    ),
    "flag_off": _flag_off,
    "guard": _guard,
    "invalid_input": lambda r, case, portal: Wording(_plain(str(r)), "Correct it and try again."),
    "in_progress": lambda r, case, portal: Wording(
        f"{wf.trigger_label(r.trigger) if r.trigger else 'A call'} is being sent to Align for this case right now.",
        "Wait a moment, then reload the case",
        case_link(case, portal),
        level=messages.WARNING,
    ),
}


def refusal(refused, *, case=None, portal="staff") -> Wording:
    """The wording of a TransitionNotAllowed."""
    base = REFUSALS[refused.code](refused, case, portal)
    spec = wf.BY_TRIGGER.get(refused.trigger)
    step = spec.flag if refused.code == "flag_off" and spec else refused.trigger
    return _with_code(base, refused.code, step, str(refused))


def _with_code(wording, code, step, detail):
    tech = " · ".join(p for p in (code, step) if p)
    return Wording(wording.text, wording.next_step, wording.link, tech, detail, wording.level)


def contact_refused(refused, *, case) -> Wording:
    """The wording of services.ContactRefused (the case is accepted, shipped or cancelled)."""
    return Wording(
        "The patient's contact details can no longer be changed from this case: "
        f"it is {wf.state_label(case.state)} and Align already works from the details it has.",
        "Correct the patient's record in the admin if the clinic's copy is wrong",
        reverse("admin:cases_patient_change", args=[case.patient_id]),
        "contact_locked",
        str(refused),
    )


# --- failed calls --------------------------------------------------------------------------

_FIELDS = {field: item.name for items in preflight.REQUIRED.values() for item in items for field in item.fields}
_LISTED = re.compile(r":\s*(.+)$")


def _field_names(message):
    """Align's field names in "missing or blank: phone, email" and our criterion names for them."""
    match = _LISTED.search(message or "")
    fields = [f.strip() for f in match.group(1).split(",")] if match else []
    return [_FIELDS[f] for f in fields if f in _FIELDS]


def _at(when):
    return format_date(timezone.localtime(when), "H:i T") if when else ""


def _call_wording(*, step, error_code, message, retryable, auth, retry_at, attention, case, portal, said=""):
    """`message`: Align's message as it came (for its field names); `said`: the same with
    the patient's details removed (the attempt's record), quoted to the person."""
    label = wf.trigger_label(step) if step else "The call"
    quote = f' Align said: "{said}"' if said else ""
    if error_code in FIELD_ERRORS:
        names = _field_names(message)
        if names:
            return _fix(names, ", ".join(_label(n) for n in names) + " missing or not valid for Align", case, portal)
        return Wording(
            f"Align refused {label}: a detail it needs is missing or not valid.{quote}",
            "Open the prescription" if portal == "staff" else "Contact the clinic.",
            case_link(case, portal, "prescription") if portal == "staff" else "",
        )
    if auth:
        return Wording(
            f"{label} was not sent: Align did not accept our sign-in.",
            "Ask an administrator to check the Align connection.",
        )
    if retryable and retry_at:
        return Wording(
            f"Align did not answer {label}.{quote} It is tried again automatically at {_at(retry_at)}.",
            "Nothing to do now; the case page shows the outcome.",
            case_link(case, portal),
            level=messages.WARNING,
        )
    if portal != "staff":
        return Wording(f"{label} did not go through to Align.", "The clinic has been told; try again later.")
    if retryable:
        return Wording(
            f"Align did not answer {label}.{quote} It is not retried automatically any more.",
            "Retry it from the case",
            case_link(case, portal, "align-panel"),
        )
    if attention:
        return Wording(
            f"Align refused {label}.{quote}", "Correct the case, then retry it", case_link(case, portal, "align-panel")
        )
    return Wording(
        f"Align refused {label}.{quote}",
        "Read the details in the timeline, correct, then retry",
        case_link(case, portal, "timeline"),
    )


_LABELS = {item.name: item.label for items in preflight.REQUIRED.values() for item in items}


def _label(name):
    """The checklist's label of a pre-flight criterion (every name _field_names returns has one)."""
    return _LABELS[name]


def failure(failed, *, case=None, portal="staff", step="") -> Wording:
    """The wording of a failed call raised by an action (EffectFailed or AlignError)."""
    error = failed.error if isinstance(failed, AlignCallFailed) else failed
    attempt = failed.attempt if isinstance(failed, AlignCallFailed) else None
    base = _call_wording(
        step=getattr(attempt, "step", step),
        error_code=getattr(error, "code", ""),
        message=getattr(error, "message", str(error)),
        retryable=bool(getattr(error, "retryable", False)),
        auth=isinstance(error, AlignAuthError),
        retry_at=getattr(attempt, "next_retry_at", None),
        attention=bool(case and case.needs_attention),
        case=case,
        portal=portal,
        said=getattr(attempt, "message", ""),
    )
    code = getattr(error, "code", "") if isinstance(error, AlignError) else type(error).__name__
    return _with_code(base, code, getattr(attempt, "step", step), str(failed))


def send_failure(result, *, case=None, portal="staff") -> Wording:
    """The wording of a SendResult that stopped at `failed_step`, from its attempt's record."""
    attempt = OutboundAttempt.objects.filter(pk=result.attempt_id).first() if result.attempt_id else None
    if attempt is None:  # refused before it was sent (the case changed meanwhile)
        return Wording(
            f"{wf.trigger_label(result.failed_step)} was not sent to Align: the case changed meanwhile.",
            "Reload the case to see what can be done now",
            case_link(case, portal),
            "not sent · " + result.failed_step,
            result.error,
        )
    code = attempt.error_code
    base = _attempt_wording(attempt, result.retry_at, result.needs_attention, case, portal)
    done = ", ".join(wf.trigger_label(s) for s in result.done)
    text = f"Align accepted: {done}. {base.text}" if done else base.text
    text += f" The case stays {wf.state_label(result.state)}." if result.state else ""
    return _with_code(
        Wording(text, base.next_step, base.link, level=base.level), code or "not sent", result.failed_step, result.error
    )


def _attempt_wording(attempt, retry_at, attention, case, portal):
    """The wording of a failed call from its record (an OutboundAttempt)."""
    return _call_wording(
        step=attempt.step,
        error_code=attempt.error_code,
        message=attempt.message,
        retryable=attempt.status == OutboundAttempt.Status.FAILED_RETRYABLE,
        auth=attempt.http_status in (401, 403),
        retry_at=retry_at,
        attention=attention,
        case=case,
        portal=portal,
        said=attempt.message,
    )


def attention(case) -> Wording | None:
    """The staff panel's *Needs attention* box: the case's last failed call in plain words
    (its stored reason in the tooltip); None when the case does not need attention."""
    if not case.needs_attention:
        return None
    attempt = (
        OutboundAttempt.objects.filter(case_id=case.pk)
        .exclude(status__in=(*OutboundAttempt.OPEN, OutboundAttempt.Status.SUCCEEDED))
        .order_by("-id")
        .first()
    )
    reason = case.attention_reason or "A call to Align failed for good."
    if attempt is None or not reason.startswith(wf.trigger_label(attempt.step)):
        return Wording(reason, "Retry it below once it is fixed.")  # raised by something else than a call
    base = _attempt_wording(attempt, None, True, case, "staff")
    return _with_code(base, attempt.error_code or "failed", attempt.step, reason)


# --- confirmations before irreversible actions -----------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    title: str
    sent: str  # what is sent to Align (or stored) when confirmed
    not_sent: str  # what is not sent
    button: str  # the confirming button


def confirmation(action, *, flag_on=True) -> Confirmation:
    """What the dialog (and the page shown without JavaScript) says before `action`:
    "approve", "purchased" or "cancel"."""
    if action == "approve":
        return Confirmation(
            "Approve this plan?",
            "Nothing goes to Align yet: your approval and a picture of the patient information and comments "
            "are stored here as the record of your acceptance.",
            "Align is told only when the clinic confirms the aligner purchase; then the plan's acceptance is "
            "sent. The approval cannot be taken back from this page.",
            "Yes, approve the plan",
        )
    if action == "purchased":
        sent = (
            "The plan's acceptance, with the provider's approval picture, is sent to Align, and Align starts "
            "making the aligners. This cannot be undone from here."
            if flag_on
            else "The purchase is recorded. The plan's acceptance is not sent to Align yet (switched off at the "
            "moment): it goes automatically once an administrator switches it on."
        )
        return Confirmation(
            "Confirm the aligner purchase?",
            sent,
            "Not sent to Align: the payment, the order reference, or any change to the patient's details.",
            "Yes, the aligners were bought",
        )
    if action == "cancel":
        return Confirmation(
            "Cancel this case?",
            "The case leaves the Align workflow here, with your reason in its timeline. This cannot be undone.",
            "Align is not told. If Align already has this case, cancel it with Align as well.",
            "Yes, cancel the case",
        )
    raise ValueError(f"no confirmation for {action!r}")
