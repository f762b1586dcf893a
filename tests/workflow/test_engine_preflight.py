"""engine.preflight: every check fire() makes before anything is sent, with the same
refusal, and nothing written or sent; align_batch decides with it."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_fsm_log.models import StateLog
from waffle.models import Flag

from align_workflow.cases.models import Case, CaseNote, PhotoAssessment
from align_workflow.workflow import TransitionNotAllowed, engine, fire
from align_workflow.workflow.batch import ACTIONS
from align_workflow.workflow.effects import EffectParams
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db


def written(case):
    return (
        CaseNote.objects.filter(case=case).count(),
        OutboundAttempt.objects.filter(case=case).count(),
        StateLog.objects.for_(case).count(),
        Case.objects.get(pk=case.pk).state,
    )


def refusal(call):
    with pytest.raises(TransitionNotAllowed) as refused:
        call()
    return refused.value.code, str(refused.value)


def wrong_state(staff):
    return make_case(), "create_order", staff, {}


def flag_off(staff):
    Flag.objects.filter(name=wf.FLAG_INITIATE_ORDER).update(everyone=False)
    return make_case(), "create_patient", staff, {}


def claimed(staff):
    case = make_case(state=wf.PATIENT_CREATED, align_pid="P-1")
    Case.objects.filter(pk=case.pk).update(busy_with="create_patient", busy_until=timezone.now() + timedelta(minutes=1))
    return Case.objects.get(pk=case.pk), "create_order", staff, {}


def align_preflight(staff):
    case = make_case(state=wf.PATIENT_CREATED, align_pid="P-1")
    PhotoAssessment.objects.filter(case=case).update(treatment_option="")
    return case, "create_order", staff, {}


def missing_input(staff):
    return make_case(), "cancel", staff, {}


def guard(staff):
    return make_case(stl_files=1), "create_patient", staff, {}


def actor(staff):
    return make_case(), "create_patient", None, {}


SCENARIOS = {
    "wrong_state": wrong_state,
    "flag_off": flag_off,
    "in_progress": claimed,
    "guard": guard,
    "align_preflight": align_preflight,
    "invalid_input": missing_input,
    "actor": actor,
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_preflight_refuses_as_fire_does_and_writes_nothing(name, staff, flags_on, fake_align):
    case, trigger, by, params = SCENARIOS[name](staff)
    before = written(case)
    code, message = refusal(lambda: engine.preflight(case, trigger, by=by, **params))
    assert code == ("guard" if name == "align_preflight" else name)
    assert written(case) == before
    assert refusal(lambda: fire(case, trigger, by=by, **params)) == (code, message)
    assert fake_align.calls == []


def test_preflight_of_a_ready_call_returns_the_prepared_input_and_sends_nothing(staff, flags_on, fake_align):
    case = make_case(state=wf.PATIENT_CREATED, align_pid="P-1")
    before = written(case)
    prepared = engine.preflight(case, "create_order", by=staff)
    assert isinstance(prepared, EffectParams) and dict(prepared) == {}
    assert written(case) == before
    assert fake_align.calls == []


def test_the_align_preflight_refusal_of_fire_adds_a_note_but_preflight_does_not(staff, flags_on):
    case, trigger, by, params = align_preflight(staff)
    refusal(lambda: engine.preflight(case, trigger, by=by))
    assert not CaseNote.objects.filter(case=case).exists()
    refusal(lambda: fire(case, trigger, by=by))
    assert [n.text[:36] for n in CaseNote.objects.filter(case=case)] == ["Create Order was not sent to Align: "]


@pytest.mark.parametrize("internal", ["_attempt_id", "_screenshot", "_screenshot_asset"])
def test_internal_values_do_not_ride_the_public_parameters(internal, staff, flags_on, fake_align):
    case = make_case(state=wf.PATIENT_CREATED, align_pid="P-1")
    for call in (
        lambda: fire(case, "create_order", by=staff, **{internal: 1}),
        lambda: engine.preflight(case, "create_order", by=staff, **{internal: 1}),
    ):
        code, message = refusal(call)
        assert code == "invalid_input" and internal in message
    assert fake_align.calls == [] and not OutboundAttempt.objects.filter(case=case).exists()


@pytest.mark.parametrize(
    ("action", "states"),
    [
        ("accept", (wf.ACCEPTED, wf.SHIPPING)),
        (
            "upload-assets",
            (
                wf.ASSETS_UPLOADED,
                wf.PLAN_RECEIVED,
                wf.REVISION_REQUESTED,
                wf.PROVIDER_APPROVED,
                wf.ACCEPTED,
                wf.SHIPPING,
            ),
        ),
        ("revise", (wf.REVISION_REQUESTED,)),
    ],
)
def test_a_batch_actions_done_states_are_computed_from_the_table(action, states):
    assert ACTIONS[action].done_states == states
