"""Twenty requests racing on one case produce exactly one transition (PostgreSQL)."""


import pytest
from django.db import transaction
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case
from align_workflow.workflow import TransitionNotAllowed, fire
from states import align_case as wf
from states.machine import next_state
from tests.support.factories import make_case
from tests.support.threads import race

THREADS = 20


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_one_transition(require_postgres, staff, flags_on, local_effects_only):
    case = make_case(state=wf.ORDER_CREATED)
    outcomes = race(
        lambda: fire(Case.objects.get(pk=case.pk), "cancel", by=staff, reason="duplicate click"), THREADS
    )

    successes = [o for o in outcomes if isinstance(o, StateLog)]
    refusals = [o for o in outcomes if isinstance(o, TransitionNotAllowed)]
    assert len(successes) == 1, outcomes
    assert len(refusals) == THREADS - 1, outcomes
    assert {r.code for r in refusals} == {"wrong_state"}
    assert StateLog.objects.for_(case).count() == 1
    assert Case.objects.get(pk=case.pk).state == wf.CANCELLED


def naive_fire(case_id, trigger):
    """What the old view code did: read, check, write, log, with no row lock."""
    with transaction.atomic():
        case = Case.objects.get(pk=case_id)
        dest = next_state(case.state, trigger)  # raises if not allowed
        case.state = dest
        case.save()
        StateLog.objects.create(source_state=wf.ORDER_CREATED, state=dest, transition=trigger,
                                content_object=case)
    return "done"


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_row_lock_the_race_doubles_history(require_postgres):
    case = make_case(state=wf.ORDER_CREATED)
    outcomes = race(lambda: naive_fire(case.pk, "cancel"), THREADS)
    # Without the lock several threads see order_created and all of them "cancel" it.
    assert outcomes.count("done") > 1, outcomes
    assert StateLog.objects.for_(case).count() > 1
