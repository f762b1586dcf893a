"""The plain words of refusals and failed calls (align_workflow/portals/wording.py): every
refusal code has a sentence and a next step, none of them speaks the engine's language,
what already happened is information, and the next step links where it is done."""

import ast
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib import messages

from align_workflow.align.errors import AlignAuthError, AlignRejected, AlignUnavailable
from align_workflow.portals import wording
from align_workflow.workflow.effects import AlignCallFailed
from align_workflow.workflow.engine import TransitionNotAllowed
from align_workflow.workflow.guards import Criterion
from states import align_case as wf

SOURCES = Path(settings.BASE_DIR) / "align_workflow"
# Words of the engine a person must not read: raw state and trigger names, flag names.
ENGINE_WORDS = [name for name in (*wf.STATES, *wf.TRIGGERS) if "_" in name] + [
    wf.FLAG_INITIATE_ORDER,
    wf.FLAG_SET_ORDER_STATUS,
]
CASE = SimpleNamespace(pk=7, state=wf.ELIGIBLE, needs_attention=False, patient_id=3)


def _case(state):
    return SimpleNamespace(**{**vars(CASE), "state": state})


def refusal_codes():
    """Every `code` a TransitionNotAllowed is raised with, and every EffectInputError
    subclass's `code` (the engine turns those into refusals), read from the source."""
    codes = set()
    for path in SOURCES.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "TransitionNotAllowed":
                for keyword in node.keywords:
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        codes.add(keyword.value.value)
            if isinstance(node, ast.ClassDef) and any(
                getattr(base, "id", "") in ("EffectInputError", "PreflightFailed") or node.name == "EffectInputError"
                for base in node.bases
            ):
                for item in node.body:
                    if isinstance(item, ast.Assign) and [getattr(t, "id", "") for t in item.targets] == ["code"]:
                        codes.add(item.value.value)
    return codes


def test_the_source_scan_finds_the_codes_the_engine_documents():
    assert {"wrong_state", "actor", "not_your_case", "flag_off", "guard", "invalid_input", "in_progress"} <= (
        refusal_codes()
    )


@pytest.mark.parametrize("code", sorted(refusal_codes() | set(wording.REFUSALS)))
def test_every_refusal_code_has_wording(code):
    assert code in wording.REFUSALS, f"add the wording of {code!r} to portals/wording.py"


def _read(w):
    return f"{w.text} {w.next_step}"


@pytest.mark.parametrize("portal", ["staff", "provider"])
@pytest.mark.parametrize("code", sorted(wording.REFUSALS))
def test_no_refusal_speaks_the_engines_language(code, portal):
    for trigger in wf.TRIGGERS:
        for state in wf.STATES:
            refused = TransitionNotAllowed(f"engine text {trigger} {state}", code=code, trigger=trigger, state=state)
            said = wording.refusal(refused, case=_case(state), portal=portal)
            assert said.text and said.next_step, (code, trigger, state)
            assert not [word for word in ENGINE_WORDS if word in _read(said)], (code, trigger, state, _read(said))
            assert code in said.code  # the technical code stays, for support
            assert said.detail == refused.args[0]


@pytest.mark.parametrize(
    "trigger,state",
    [
        ("accept_clincheck", wf.ACCEPTED),
        ("accept_clincheck", wf.SHIPPING),
        ("approve_plan", wf.PROVIDER_APPROVED),
        ("approve_plan", wf.ACCEPTED),
        ("cancel", wf.CANCELLED),
        ("create_patient", wf.PLAN_RECEIVED),
        ("request_revision", wf.REVISION_REQUESTED),
    ],
)
def test_what_already_happened_is_information(trigger, state):
    refused = TransitionNotAllowed("Cannot …", code="wrong_state", trigger=trigger, state=state)
    said = wording.refusal(refused, case=_case(state))
    assert said.level == messages.INFO
    assert said.text.startswith("Nothing to do: this was already done.")
    assert said.link == "/staff/cases/7/"


@pytest.mark.parametrize(
    "trigger,state",
    [
        ("request_revision", wf.PROVIDER_APPROVED),  # approved instead: not "done"
        ("approve_plan", wf.REVISION_REQUESTED),
        ("accept_clincheck", wf.PLAN_RECEIVED),
        ("create_patient", wf.CANCELLED),
    ],
)
def test_a_step_not_done_is_an_error_saying_where_the_case_is(trigger, state):
    refused = TransitionNotAllowed("Cannot …", code="wrong_state", trigger=trigger, state=state)
    said = wording.refusal(refused, case=_case(state))
    assert said.level == messages.ERROR
    assert wf.state_label(state) in said.text


def test_a_retry_with_nothing_failed_is_information():
    refused = TransitionNotAllowed("Nothing to retry: Create Patient succeeded.", code="wrong_state", state="eligible")
    said = wording.refusal(refused, case=None)
    assert said.level == messages.INFO and said.text == "Nothing to retry: the last call to Align went through."


def _guard(*names):
    criteria = [Criterion(n, n.replace("_", " ").capitalize(), False, "missing") for n in names]
    criteria.append(Criterion("patient_mrn", "Patient MRN", True, "present"))
    return TransitionNotAllowed(
        "Cannot …", code="guard", trigger="create_patient", state=wf.ELIGIBLE, criteria=criteria
    )


@pytest.mark.parametrize("name", wording.CONTACT_CRITERIA)
def test_a_missing_contact_detail_links_to_the_contact_form(name):
    said = wording.refusal(_guard(name), case=CASE)
    assert said.next_step == "Edit the patient's contact details"
    assert said.link == "/staff/cases/7/?fix=contact#contact-form"
    assert "Patient MRN" not in said.text  # only what fails is named


@pytest.mark.parametrize("name", wording.PRESCRIPTION_CRITERIA)
def test_a_prescription_criterion_links_to_the_prescription(name):
    said = wording.refusal(_guard(name), case=CASE)
    assert (said.next_step, said.link) == ("Open the prescription", "/staff/cases/7/#prescription")


def test_a_provider_is_sent_to_the_clinic_not_to_the_staff_page():
    said = wording.refusal(_guard("patient_phone"), case=CASE, portal="provider")
    assert said.link == "" and "contact the clinic" in said.next_step


def test_a_flag_that_is_off_says_what_is_switched_off_and_whom_to_ask():
    refused = TransitionNotAllowed("The 'x' flag is off", code="flag_off", trigger="create_patient", state="eligible")
    said = wording.refusal(refused, case=CASE)
    assert said.text.startswith("Sending new cases to Align is switched off")
    assert said.next_step.startswith("Ask an administrator to switch it on")
    assert said.code == f"flag_off · {wf.FLAG_INITIATE_ORDER}"


def test_the_html_keeps_the_technical_code_in_small_print_and_escapes_everything():
    said = wording.Wording("A <b>", "Go", "/x/?a=1&b=2", "guard · create_patient", 'said "<no>"')
    html = str(said.html())
    assert '<span class="msg-text">A &lt;b&gt;</span>' in html
    assert '<a class="msg-next" href="/x/?a=1&amp;b=2">Go</a>' in html
    assert '<small class="techcode" title="said &quot;&lt;no&gt;&quot;">guard · create_patient</small>' in html


def _failed(error, *, step="create_patient", next_retry_at=None, message=""):
    attempt = SimpleNamespace(step=step, next_retry_at=next_retry_at, message=message or error.message)
    return AlignCallFailed("Bad Align response during Create Patient.", attempt=attempt, error=error)


def test_aligns_missing_phone_links_to_the_contact_form():
    error = AlignRejected("missing or blank: phone", status=400, code="REQUEST.MISSING_FIELD")
    said = wording.failure(_failed(error), case=CASE)
    assert said.text == "Nothing was sent to Align: Patient phone number missing or not valid for Align."
    assert said.link == "/staff/cases/7/?fix=contact#contact-form"
    assert said.code == "REQUEST.MISSING_FIELD · create_patient"


def test_align_down_with_a_retry_planned_says_when():
    when = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)
    said = wording.failure(_failed(AlignUnavailable("down", status=503, code="ALIGN.UNAVAILABLE"), next_retry_at=when))
    assert said.level == messages.WARNING
    assert (
        said.text
        == 'Align did not answer Create Patient. Align said: "down" It is tried again automatically at 14:05 UTC.'
    )


def test_refused_credentials_ask_for_an_administrator():
    said = wording.failure(_failed(AlignAuthError("invalid client", status=401, code="AUTH.INVALID_CLIENT")), case=CASE)
    assert "sign-in" in said.text and said.next_step.startswith("Ask an administrator")


def test_a_rejection_quotes_what_align_said_from_the_scrubbed_record():
    error = AlignRejected("zip 90210 of Jane Roe is not valid", status=422, code="PATIENT.INVALID")
    said = wording.failure(_failed(error, message="zip 90210 of [redacted] is not valid"), case=CASE)
    assert "Jane Roe" not in said.text and "[redacted]" in said.text
    assert said.link == "/staff/cases/7/#timeline"


@pytest.mark.parametrize("action", ["approve", "purchased", "cancel"])
def test_each_confirmation_says_what_is_sent_and_what_is_not(action):
    c = wording.confirmation(action)
    assert c.title.endswith("?") and c.sent and c.not_sent and c.button.startswith("Yes")


def test_the_cancel_confirmation_says_align_is_not_told():
    assert wording.confirmation("cancel").not_sent.startswith("Align is not told.")


def test_the_purchase_confirmation_with_the_switch_off_says_nothing_goes_yet():
    assert "not sent to Align yet" in wording.confirmation("purchased", flag_on=False).sent
    assert "is sent to Align" in wording.confirmation("purchased", flag_on=True).sent
