"""How many SQL statements one step costs. Exact numbers: a change that adds a query to
a step (a repeated lookup, an N+1) fails here; one that removes a query updates them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from align_workflow.align.client import AssetUpload, ClinCheckResult, CreatedOrder, CreatedPatient
from align_workflow.workflow import batch, send_to_align
from states import align_case as wf
from tests.support.batch import with_screenshot
from tests.support.factories import make_case

pytestmark = [pytest.mark.django_db(transaction=True)]


class InstantAlign:
    """Answers every call at once, touching no database (FakeAlign reads the attempts)."""

    def create_patient(self, *, case_id, mrn, **kw):
        return CreatedPatient(p_id=f"P{case_id}", mrn=mrn, created=True)

    def create_order(self, *, case_id, p_id, **kw):
        return CreatedOrder(case_id=case_id, p_id=p_id, order_type="IAS", status="RECEIVED")

    def upload_assets(self, *, case_id, **kw):
        return AssetUpload(case_id=case_id, accepted=True, asset_count=2)

    def accept_clincheck(self, *, case_id, **kw):
        return ClinCheckResult(case_id=case_id, status="APPROVED", sales_order_number=f"SO-{case_id}")


@pytest.fixture
def instant_align(monkeypatch):
    from align_workflow.workflow import align_effects

    monkeypatch.setattr(align_effects, "align_client", InstantAlign)


def statements(queries):
    return [q["sql"] for q in queries.captured_queries]


def test_one_batch_acceptance(require_postgres, instant_align, flags_on):
    """align_batch accept, one case: the case with its open call (one statement), the
    engine's pre-flight (once: the engine is handed the batch's), the note, the claim,
    the attempt recorded before the call, its outcome with the move, its history row and
    the needs-attention flag in one statement, and the look for events waiting for the case."""
    cases = [make_case(state=wf.PROVIDER_APPROVED, aligners_purchased_at=timezone.now()) for _ in range(2)]
    for case in cases:
        with_screenshot(case)
    first, second = batch.rows_from_ids([c.pk for c in cases])
    action = batch.ACTIONS["accept"]
    assert batch.process(action, first).outcome == batch.DONE  # warm: flags and ContentType cached

    with CaptureQueriesContext(connection) as queries:
        outcome = batch.process(action, second)

    assert outcome.outcome == batch.DONE, outcome.detail
    sql = statements(queries)
    # 16 (22 before): the pre-flight (screenshot, lab, patient, read as they are now) runs
    # once, the open call is read with the case, the flag is cleared and the pending
    # events are read by the move's round trip.
    assert len(sql) == 16, "\n".join(sql)
    assert not [s for s in sql if s.startswith('SELECT "id" FROM "integration_inboundevent"')]
    assert sum(s.startswith("SELECT") and '"cases_caseasset"' in s.split("WHERE")[0] for s in sql) == 1
    assert sum('FROM "cases_patient"' in s for s in sql) == 1
    assert sum(s == "COMMIT" for s in sql) == 2  # the attempt, then the outcome with the move


def test_send_to_align_by_staff(require_postgres, instant_align, flags_on, staff):
    """Three steps (patient, order, assets) from one click: the user, the case and each
    attempt are not read again (the rows the step before left are handed on), the case's
    provider is never looked up for a staff user, and each step reads the patient once
    (its pre-flight's read is the one the call sends)."""
    warm, case = make_case(), make_case()
    assert send_to_align(warm, by=staff).ok

    with CaptureQueriesContext(connection) as queries:
        result = send_to_align(case, by=staff)

    assert result.ok and result.state == wf.ASSETS_UPLOADED, result
    sql = statements(queries)
    # 49 (71 before): each step's pre-flight reads the patient and the lab as they are
    # now, and the click is refused for a case not prescribed to Align (1).
    assert len(sql) == 49, "\n".join(sql)
    assert not [s for s in sql if '"cases_provider"' in s]
    assert sum('FROM "auth_user"' in s for s in sql) == 0  # the clicking user is the one handed on
    assert sum('FROM "cases_patient"' in s for s in sql) == 4  # the click's guard, then once per step
    assert sum(s.startswith('SELECT "cases_case"') for s in sql) == 1  # the click's lock; not re-read per step
    assert sum(s == "COMMIT" for s in sql) == 4  # the click, then one outcome per step
    # The guard (prescription, photo assessment, STL count) runs when the click is
    # checked and again when the first step claims the case (kept: in Celery mode the
    # claim comes later, and the case may have lost a file meanwhile); Upload Assets' own
    # pre-flight counts the stored files once more, just before that call.
    assert sum(s.startswith('SELECT COUNT(*) AS "__count" FROM "cases_caseasset"') for s in sql) == 3


def test_applying_an_event_that_moves_the_case(require_postgres):
    """A stored plan event applied through the engine: one transaction with one savepoint
    (the engine's, around the move), not two."""
    from align_workflow.align import payloads
    from align_workflow.integration import events
    from tests.support.deliveries import encode, make_event

    warm, case = make_case(state=wf.ASSETS_UPLOADED), make_case(state=wf.ASSETS_UPLOADED)
    for target in (warm, case):
        payload = make_event("treatment_plan.submitted", target, version=1, treatmentPlanId=f"TP-{target.pk}")
        body = encode(payload)
        stored, _ = events.store(payloads.parse(body), body, target)
        if target is warm:
            assert events.apply_event(stored.pk).status == "applied"

    with CaptureQueriesContext(connection) as queries:
        event = events.apply_event(stored.pk)

    assert event.status == "applied", event.status_detail
    sql = statements(queries)
    # 11 (12 before: the case's pending events are read with the move, not after the commit),
    # and after commit one for the plan's notification (the case, its provider and the newest
    # plan version; this provider has no email address, so nothing more).
    assert len(sql) == 12, "\n".join(sql)
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 1
    assert sum('FROM "integration_inboundevent" WHERE "integration_inboundevent"."case_id"' in s for s in sql) == 0
    assert sum(s.startswith("WITH moved AS") and '; SELECT "id" FROM "integration_inboundevent"' in s for s in sql) == 1
