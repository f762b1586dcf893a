"""What a step no longer reads or writes separately still holds: the needs-attention flag
is cleared by the statement that moves the case (only when a call to Align raised it,
whatever the caller's copy says), and a stored event is committed on its own."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from align_workflow.align import payloads
from align_workflow.cases.models import Case
from align_workflow.integration import events
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow import align_effects, fire, send_to_align
from states import align_case as wf
from tests.support.deliveries import encode, make_event
from tests.support.factories import make_case
from tests.workflow.test_query_counts import InstantAlign

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def instant_align(monkeypatch):
    monkeypatch.setattr(align_effects, "align_client", InstantAlign)


def _flag(case, reason):
    Case.objects.filter(pk=case.pk).update(needs_attention=True, attention_reason=reason)


def test_a_step_clears_attention_a_call_to_align_raised_though_the_callers_copy_predates_it(
    instant_align, flags_on, staff
):
    case = make_case()
    case.refresh_from_db()
    _flag(case, "Create Patient: Bad Align response during Create Patient. Status code: 503.")
    assert not case.needs_attention  # the caller's copy does not know

    fire(case, "create_patient", by=staff)

    fresh = Case.objects.get(pk=case.pk)
    assert fresh.state == wf.PATIENT_CREATED
    assert (fresh.needs_attention, fresh.attention_reason) == (False, "")
    assert (case.needs_attention, case.attention_reason) == (False, "")


def test_a_step_keeps_attention_raised_by_something_else(instant_align, flags_on, staff):
    case = make_case()
    reason = "An event from Align has been waiting for 7 hours."
    _flag(case, reason)

    result = send_to_align(case, by=staff)

    assert result.ok and result.state == wf.ASSETS_UPLOADED
    fresh = Case.objects.get(pk=case.pk)
    assert (fresh.needs_attention, fresh.attention_reason) == (True, reason)
    assert (case.needs_attention, case.attention_reason) == (True, reason)
    assert result.needs_attention


def test_storing_an_event_is_one_committed_statement(require_postgres):
    case = make_case(state=wf.ASSETS_UPLOADED)
    body = encode(make_event("case.status_changed", case, status="SETUP_IN_PROGRESS"))

    with CaptureQueriesContext(connection) as queries:
        stored, created = events.store(payloads.parse(body), body, case)

    assert created and stored.status == InboundEvent.Status.PENDING
    assert [q["sql"].split(" ", 1)[0] for q in queries.captured_queries] == ["INSERT"]
    assert not connection.in_atomic_block  # autocommit: committed before it is applied

    again, created_again = events.store(payloads.parse(body), body, case)
    assert not created_again and again.pk == stored.pk
