"""The effects registry binds loudly: every row of the table in states/ has its effect,
a missing one stops start-up (system check align_workflow.E010), and the engine never
moves a case past a row whose effect is missing."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from align_workflow.workflow import effects
from align_workflow.workflow.checks import check_effects
from states import align_case as wf

ALIGN_ROWS = ("create_patient", "create_order", "upload_assets", "request_revision", "accept_clincheck")


def test_every_row_of_the_table_has_its_effect():
    assert sorted(effects.EFFECTS) == sorted(wf.TRIGGERS)
    assert check_effects() == []


def test_the_rows_that_call_align_are_known_from_the_table():
    assert tuple(t.trigger for t in wf.TRANSITIONS if effects.calls_align(t)) == ALIGN_ROWS


def test_an_unregistered_trigger_is_an_error_not_a_silent_state_change(monkeypatch):
    monkeypatch.delitem(effects.EFFECTS, "create_patient")
    with pytest.raises(effects.UnknownEffect, match="'create_patient'"):
        effects.get("create_patient")


def test_a_row_without_its_effect_stops_start_up(monkeypatch):
    monkeypatch.delitem(effects.EFFECTS, "create_patient")
    problems = check_effects()
    assert [p.id for p in problems] == ["align_workflow.E010"]
    assert "create_patient: no effect is registered" in problems[0].msg
    with pytest.raises(SystemCheckError, match="create_patient: no effect is registered"):
        call_command("check")


def test_a_row_that_calls_align_needs_an_effect_that_calls(monkeypatch):
    monkeypatch.setitem(effects.EFFECTS, "create_order", effects.Effect(apply=lambda *args: None))
    problems = check_effects()
    assert [p.id for p in problems] == ["align_workflow.E010"]
    assert "create_order: its effect has no call" in problems[0].msg


@pytest.mark.django_db
def test_the_engine_refuses_to_move_a_case_past_a_row_without_its_effect(monkeypatch, staff, flags_on):
    from align_workflow.workflow import fire
    from tests.support.factories import make_case

    monkeypatch.delitem(effects.EFFECTS, "create_patient")
    case = make_case()
    with pytest.raises(effects.UnknownEffect):
        fire(case, "create_patient", by=staff)
    case.refresh_from_db()
    assert case.state == wf.ELIGIBLE
