"""Deliveries racing each other and the workflow on PostgreSQL."""

import threading
import time

import pytest
from django.db import close_old_connections, connection
from django.test import Client
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, TreatmentPlan
from align_workflow.integration import events
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow import fire
from states import align_case as wf
from tests.support.deliveries import encode, make_event, post, svix_headers
from tests.support.factories import make_case

THREADS = 10


def in_threads(targets):
    """Run the callables at the same moment, one thread each; what each returned or raised."""
    barrier = threading.Barrier(len(targets))
    outcomes = [None] * len(targets)

    def run(i, target):
        try:
            barrier.wait(timeout=30)
            outcomes[i] = target()
        except Exception as exc:  # noqa: BLE001 - the outcome is what we measure
            outcomes[i] = exc
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def one_delivery():
    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = make_event("treatment_plan.submitted", case)
    body = encode(payload)
    return case, payload, body, svix_headers(body, payload["event_id"])


def assert_stored_and_applied_once(case, payload, responses):
    assert all(getattr(r, "status_code", None) == 200 for r in responses), responses
    bodies = [r.json() for r in responses]
    assert sorted(b["duplicate"] for b in bodies) == [False] + [True] * (THREADS - 1)
    event = InboundEvent.objects.get(event_id=payload["event_id"])
    assert (event.status, event.attempts) == ("applied", 1)
    assert InboundEvent.objects.count() == 1
    assert TreatmentPlan.objects.filter(case=case).count() == 1
    assert list(StateLog.objects.for_(case).values_list("transition", flat=True)) == ["receive_plan"]
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED


@pytest.mark.django_db(transaction=True)
def test_ten_threads_posting_the_same_event(require_postgres):
    case, payload, body, headers = one_delivery()
    responses = in_threads([lambda: post(Client(), body, headers)] * THREADS)
    assert_stored_and_applied_once(case, payload, responses)


@pytest.mark.django_db(transaction=True)
def test_the_unique_event_id_decides_when_every_thread_passed_the_duplicate_check(require_postgres, monkeypatch):
    # Hold every thread after the "already stored?" check until all ten have passed it:
    # that check alone would then store the event ten times (the negative control);
    # the unique constraint stores it once.
    case, payload, body, headers = one_delivery()
    gate = threading.Barrier(THREADS, timeout=30)
    reached_store = []
    real_store = events.store

    def store_after_everyone_checked(*args, **kwargs):
        reached_store.append(threading.get_ident())
        gate.wait()
        return real_store(*args, **kwargs)

    monkeypatch.setattr(events, "store", store_after_everyone_checked)
    responses = in_threads([lambda: post(Client(), body, headers)] * THREADS)

    assert len(reached_store) == THREADS
    assert_stored_and_applied_once(case, payload, responses)


@pytest.mark.django_db(transaction=True)
def test_an_early_event_racing_the_transition_it_waits_for_is_never_left_behind(
    require_postgres, staff, flags_on, local_effects_only
):
    # The plan arrives while staff upload the assets: whichever commits first, the plan
    # ends applied (no lost wake-up between "pending" and the transition). The upload
    # starts a little later each round, so both orders happen.
    paths = []
    for delay in (0, 0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.5):
        case = make_case(state=wf.ORDER_CREATED)
        payload = make_event("treatment_plan.submitted", case)
        body = encode(payload)
        headers = svix_headers(body, payload["event_id"])

        def upload(case=case, delay=delay):
            time.sleep(delay)
            return fire(Case.objects.get(pk=case.pk), "upload_assets", by=staff)

        outcomes = in_threads([lambda body=body, headers=headers: post(Client(), body, headers), upload])
        assert outcomes[0].status_code == 200, outcomes
        assert isinstance(outcomes[1], StateLog), outcomes
        event = InboundEvent.objects.get(event_id=payload["event_id"])
        assert event.status == "applied", event.status_detail
        assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
        paths.append("waited" if event.attempts > 1 else "applied at once")
    # Both orders were exercised: some plans had to wait for the upload.
    assert set(paths) == {"waited", "applied at once"}, paths


@pytest.mark.django_db(transaction=True)
def test_applying_an_event_does_not_wait_for_a_transaction_that_refers_to_it(require_postgres):
    """Two status events of one case applied at once: the one holding the case records the
    other as the case's current status (AlignCaseStatus.event, a foreign key, so PostgreSQL
    takes a KEY SHARE lock on that event's row) while the other waits for the case with its
    own event row locked. Locked FOR UPDATE, the two waited for each other (a deadlock seen
    under concurrent deliveries); FOR NO KEY UPDATE does not conflict with KEY SHARE."""
    from django.db import transaction

    case = make_case(state=wf.ASSETS_UPLOADED)
    payload = make_event("case.status_changed", case, status="ON_HOLD", previousStatus="RECEIVED")
    body = encode(payload)
    stored, created = events.store(events.payloads.parse(body), body, case)
    assert created
    table = InboundEvent._meta.db_table
    referring, finish = threading.Event(), threading.Event()

    def refer_to_the_event():  # what the foreign key check of another transaction's insert does
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SELECT id FROM {table} WHERE id = %s FOR KEY SHARE", [stored.pk])
                referring.set()
                finish.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=refer_to_the_event)
    other.start()
    try:
        assert referring.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        event = events.apply_event(stored.pk)
    finally:
        finish.set()
        other.join(15)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert (event.status, event.attempts) == ("applied", 1)
