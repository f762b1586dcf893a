import pytest
from django.core.management import call_command
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, Patient
from align_workflow.workflow.guards import can_send_to_align
from states import align_case as wf

pytestmark = pytest.mark.django_db


def test_seed_covers_every_state_and_is_idempotent():
    call_command("seed_demo")
    counts = (Case.objects.count(), Patient.objects.count(), StateLog.objects.count())
    call_command("seed_demo")
    assert (Case.objects.count(), Patient.objects.count(), StateLog.objects.count()) == counts
    assert set(Case.objects.values_list("state", flat=True)) == set(wf.STATES)


def test_seed_has_eligible_cases_failing_each_criterion():
    call_command("seed_demo")
    failing = set()
    for case in Case.objects.filter(state=wf.ELIGIBLE):
        failing |= {c.name for c in can_send_to_align(case) if not c.ok}
    assert failing == {"lab_is_align", "photos_approved", "two_stl_files"}


def test_seeded_history_is_a_legal_path():
    call_command("seed_demo")
    for case in Case.objects.all():
        state = wf.INITIAL
        for log in StateLog.objects.for_(case).order_by("timestamp"):
            assert log.source_state == state and state in wf.BY_TRIGGER[log.transition].source
            state = log.state
        assert state == case.state


def test_eligible_load_cases_pass_every_criterion_and_are_not_duplicated():
    call_command("seed_demo", eligible=30)
    call_command("seed_demo", eligible=30)
    load = Case.objects.filter(case_number__startswith="LOAD-")
    assert load.count() == 30
    assert all(c.ok for case in load[:5] for c in can_send_to_align(case))
