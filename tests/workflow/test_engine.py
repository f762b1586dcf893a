"""The engine against the table in states/: every (state, trigger) pair, actors,
guards, flags, and the effect contract."""

import pytest
from django.db import connection
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, CaseAsset, PhotoAssessment, Prescription
from align_workflow.workflow import TransitionNotAllowed, effects, fire
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.triggers import PARAMS, actor_for

pytestmark = pytest.mark.django_db

PAIRS = [(state, trigger) for state in wf.STATES for trigger in wf.TRIGGERS]


def legal(state, trigger):
    return state in wf.BY_TRIGGER[trigger].source


@pytest.mark.parametrize("state,trigger", PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_every_state_and_trigger(state, trigger, staff, flags_on, local_effects_only):
    case = make_case(state=state)
    by = actor_for(trigger, case, staff)

    if legal(state, trigger):
        log = fire(case, trigger, by=by, **PARAMS.get(trigger, {}))
        dest = wf.BY_TRIGGER[trigger].dest
        assert case.state == dest
        assert Case.objects.get(pk=case.pk).state == dest
        logs = list(StateLog.objects.for_(case))
        assert len(logs) == 1
        assert (logs[0].source_state, logs[0].state, logs[0].transition) == (state, dest, trigger)
        assert logs[0].by == by
        assert logs[0] == log
    else:
        with pytest.raises(TransitionNotAllowed) as refused:
            fire(case, trigger, by=by, **PARAMS.get(trigger, {}))
        assert refused.value.code == "wrong_state"
        assert state.replace("_", " ") in str(refused.value)
        assert Case.objects.get(pk=case.pk).state == state
        assert not StateLog.objects.for_(case).exists()


def test_unknown_trigger_is_refused(staff):
    case = make_case()
    with pytest.raises(TransitionNotAllowed, match="Unknown action") as refused:
        fire(case, "teleport", by=staff)
    assert refused.value.code == "unknown_trigger"


@pytest.mark.parametrize(
    "trigger,state",
    [
        ("create_patient", wf.ELIGIBLE),
        ("create_order", wf.PATIENT_CREATED),
        ("accept_clincheck", wf.PROVIDER_APPROVED),
        ("cancel", wf.ORDER_CREATED),
    ],
)
def test_provider_cannot_fire_staff_triggers(trigger, state, flags_on, local_effects_only):
    case = make_case(state=state)
    with pytest.raises(TransitionNotAllowed) as refused:
        fire(case, trigger, by=case.prescription.provider.user, **PARAMS.get(trigger, {}))
    assert refused.value.code == "actor"
    assert "Only staff" in str(refused.value)
    assert Case.objects.get(pk=case.pk).state == state


@pytest.mark.parametrize("trigger", ["approve_plan", "request_revision"])
def test_provider_cannot_act_on_another_providers_case(trigger, other_provider, flags_on, local_effects_only):
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(TransitionNotAllowed, match="another provider") as refused:
        fire(case, trigger, by=other_provider.user, comments="x")
    assert refused.value.code == "not_your_case"
    assert not StateLog.objects.for_(case).exists()


@pytest.mark.parametrize("trigger", ["approve_plan", "request_revision"])
def test_staff_cannot_fire_provider_triggers(trigger, staff, flags_on, local_effects_only):
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(TransitionNotAllowed, match="Only provider") as refused:
        fire(case, trigger, by=staff, comments="x")
    assert refused.value.code == "actor"


@pytest.mark.parametrize("trigger,state", [("create_patient", wf.ELIGIBLE), ("approve_plan", wf.PLAN_RECEIVED)])
def test_automation_cannot_fire_person_triggers(trigger, state, flags_on, local_effects_only):
    case = make_case(state=state)
    with pytest.raises(TransitionNotAllowed, match="Align or automation") as refused:
        fire(case, trigger, by=None)
    assert refused.value.code == "actor"


def test_align_cannot_fire_staff_only_triggers_but_can_cancel(flags_on, local_effects_only):
    case = make_case(state=wf.PLAN_RECEIVED)
    fire(case, "cancel", by=None, reason="Align cancelled the order")
    assert case.state == wf.CANCELLED
    assert case.cancel_reason == "Align cancelled the order"


GUARD_CASES = {
    "lab": (dict(lab=Prescription.Lab.IN_HOUSE), "Prescription lab is Align: prescribed to In-house, not Align"),
    "photos": (
        dict(photos=PhotoAssessment.Status.PENDING),
        "Photo assessment approved: photo assessment is pending, not approved",
    ),
    "no_photos": (dict(photos=None), "Photo assessment approved: no photo assessment yet"),
    "stl": (dict(stl_files=1), "At least two STL files: 1 STL file (at least 2 needed)"),
}


@pytest.mark.parametrize("failing", list(GUARD_CASES))
def test_guard_names_the_failed_criterion(failing, staff, flags_on, local_effects_only):
    kwargs, message = GUARD_CASES[failing]
    case = make_case(**kwargs)
    with pytest.raises(TransitionNotAllowed) as refused:
        fire(case, "create_patient", by=staff)
    assert refused.value.code == "guard"
    assert message in str(refused.value)
    failed = [c.name for c in refused.value.criteria if not c.ok]
    assert len(failed) == 1
    assert Case.objects.get(pk=case.pk).state == wf.ELIGIBLE
    assert not StateLog.objects.for_(case).exists()


def test_guard_reports_every_failed_criterion_at_once(staff, flags_on):
    case = make_case(lab=Prescription.Lab.OTHER, photos=PhotoAssessment.Status.REJECTED, stl_files=0)
    with pytest.raises(TransitionNotAllowed) as refused:
        fire(case, "create_patient", by=staff)
    text = str(refused.value)
    assert "not Align" in text and "rejected, not approved" in text and "0 STL files" in text


def test_removed_stl_files_do_not_count(staff, flags_on):
    case = make_case(stl_files=2)
    CaseAsset.objects.filter(pk=case.assets.first().pk).update(removed=True)
    with pytest.raises(TransitionNotAllowed, match="1 STL file"):
        fire(case, "create_patient", by=staff)


@pytest.mark.parametrize(
    "trigger,state,flag",
    [
        ("create_patient", wf.ELIGIBLE, wf.FLAG_INITIATE_ORDER),
        ("upload_assets", wf.ORDER_CREATED, wf.FLAG_INITIATE_ORDER),
        ("accept_clincheck", wf.PROVIDER_APPROVED, wf.FLAG_SET_ORDER_STATUS),
    ],
)
def test_flag_off_refuses(trigger, state, flag, staff, local_effects_only):
    # The migration creates both flags switched off.
    case = make_case(state=state)
    with pytest.raises(TransitionNotAllowed, match=f"'{flag}' flag is off") as refused:
        fire(case, trigger, by=staff)
    assert refused.value.code == "flag_off"
    assert Case.objects.get(pk=case.pk).state == state


def test_cancel_needs_a_reason(staff):
    case = make_case(state=wf.ORDER_CREATED)
    with pytest.raises(TransitionNotAllowed, match="reason is required") as refused:
        fire(case, "cancel", by=staff, reason="   ")
    assert refused.value.code == "invalid_input"
    assert not StateLog.objects.for_(case).exists()


# --- The effect contract ---------------------------------------------------------


@pytest.fixture
def recording_effect(monkeypatch, local_effects_only):
    """A fake outbound effect on create_order that records how it was called."""
    calls = []

    def call(case, by, params):
        calls.append({"in_transaction": connection.in_atomic_block, "busy_with": case.busy_with})
        if params.get("fail"):
            raise RuntimeError("Align said no")
        return {"answer": 42}

    def apply(case, by, params, result):
        return f"answer was {result['answer']}"

    monkeypatch.setitem(effects.EFFECTS, "create_order", effects.Effect(call=call, apply=apply))
    return calls


@pytest.mark.django_db(transaction=True)
def test_outbound_effect_runs_outside_any_transaction(recording_effect, staff, flags_on):
    case = make_case(state=wf.PATIENT_CREATED)
    log = fire(case, "create_order", by=staff)
    assert recording_effect == [{"in_transaction": False, "busy_with": "create_order"}]
    assert log.description == "answer was 42"
    case.refresh_from_db()
    assert (case.state, case.busy_with, case.busy_until) == (wf.ORDER_CREATED, "", None)


@pytest.mark.django_db(transaction=True)
def test_failed_effect_leaves_the_case_where_it_was(recording_effect, staff, flags_on):
    case = make_case(state=wf.PATIENT_CREATED)
    with pytest.raises(RuntimeError, match="Align said no"):
        fire(case, "create_order", by=staff, fail=True)
    case.refresh_from_db()
    assert case.state == wf.PATIENT_CREATED
    assert case.busy_with == ""  # the claim is released, so a retry can run
    assert not StateLog.objects.for_(case).exists()
    fire(case, "create_order", by=staff)
    assert case.state == wf.ORDER_CREATED


def test_a_claimed_case_refuses_a_second_call(recording_effect, staff, flags_on):
    from datetime import timedelta

    from django.utils import timezone

    case = make_case(state=wf.PATIENT_CREATED)
    Case.objects.filter(pk=case.pk).update(busy_with="create_order", busy_until=timezone.now() + timedelta(minutes=1))
    with pytest.raises(TransitionNotAllowed, match="already being sent") as refused:
        fire(case, "create_order", by=staff)
    assert refused.value.code == "in_progress"
    assert recording_effect == []
    # An expired claim (a crashed process) is taken over.
    Case.objects.filter(pk=case.pk).update(busy_until=timezone.now() - timedelta(seconds=1))
    fire(case, "create_order", by=staff)
    assert case.state == wf.ORDER_CREATED


def test_refused_trigger_never_reaches_the_effect(recording_effect, staff, flags_on):
    case = make_case(state=wf.ELIGIBLE)
    with pytest.raises(TransitionNotAllowed):
        fire(case, "create_order", by=staff)
    assert recording_effect == []
