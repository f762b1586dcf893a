"""Ten Send-to-Align clicks on one case at the same moment: one chain of calls (PostgreSQL)."""

import pytest
from django_fsm_log.models import StateLog

from align_workflow.align.client import Align
from align_workflow.cases.models import Case
from align_workflow.workflow import SendResult, TransitionNotAllowed, send_to_align
from align_workflow.workflow.align_effects import patient_fields
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.threads import race

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 10


def test_ten_concurrent_sends_make_one_chain_of_calls(require_postgres, simulator, app_for_align, staff, flags_on):
    simulator.config(app_url=app_for_align.url)
    case = make_case()
    outcomes = race(lambda: send_to_align(Case.objects.get(pk=case.pk), by=staff), THREADS)

    sent = [o for o in outcomes if isinstance(o, SendResult)]
    refused = [o for o in outcomes if isinstance(o, TransitionNotAllowed)]
    assert len(sent) == 1 and sent[0].done == list(wf.SEND_TO_ALIGN), outcomes
    assert len(refused) == THREADS - 1, outcomes
    assert {r.code for r in refused} <= {"in_progress", "wrong_state"}
    effects = simulator.state()["effects"]
    assert (effects["patients"], effects["orders"], effects["uploads"]) == (1, 1, 1)
    assert StateLog.objects.for_(case).count() == 3
    assert OutboundAttempt.objects.filter(case=case).count() == 3


def test_negative_control_ten_unguarded_sends_create_ten_patients(require_postgres, simulator, staff):
    """The simulator counts duplicates: ten racing requests without the claim and without
    keys are ten pieces of work, so the test above could see them."""
    case = make_case()
    fields = patient_fields(case)
    outcomes = race(lambda: Align().create_patient(**fields, idempotency_key=None), THREADS)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert simulator.state()["effects"]["patients"] == THREADS
