"""Many cases through a faulty Align: every case ends where it should, nothing is done
twice. And the same without idempotency keys, to show what the keys prevent.

PostgreSQL: the sends run in parallel threads, as several web and worker processes would.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import close_old_connections, connection
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case
from align_workflow.workflow import send_to_align
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from states.machine import next_state
from tests.support.factories import make_case

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CASES = 200
THREADS = 8
SEND_PATH = [
    (wf.ELIGIBLE, wf.PATIENT_CREATED, "create_patient"),
    (wf.PATIENT_CREATED, wf.ORDER_CREATED, "create_order"),
    (wf.ORDER_CREATED, wf.ASSETS_UPLOADED, "upload_assets"),
]


@pytest.fixture
def faulty_align(simulator, app_for_align, settings):
    simulator.config(app_url=app_for_align.url, seed=7)
    # The first fault that hits a request applies: 20% answer 503, then 2% of requests
    # lose their connection, then 5% are done but answered only after the client gave up.
    simulator.fault(route="*", rate=0.20, status=503, seed=11)
    simulator.fault(route="*", mode="reset", rate=0.02, seed=12)
    simulator.fault(route="*", mode="timeout_after_commit", rate=0.05, seconds=2, seed=13)
    settings.ALIGN_READ_TIMEOUT = 0.4  # timeout_after_commit costs this much, not 10 s
    settings.ALIGN_RETRY_MAX_ATTEMPTS = 30  # this test is about duplicates, not giving up
    return simulator


def send_all(cases, by):
    def send(case_id):
        try:
            return send_to_align(Case.objects.get(pk=case_id), by=by)
        finally:
            close_old_connections()
            connection.close()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(send, [c.pk for c in cases]))


def retry_until_settled(max_rounds=40):
    for rounds in range(1, max_rounds + 1):
        if not OutboundAttempt.objects.filter(
            status=OutboundAttempt.Status.FAILED_RETRYABLE, next_retry_at__isnull=False
        ).exists():
            return rounds - 1
        call_command("align_retry_due", "--all", "--workers", str(THREADS), verbosity=0)
    raise AssertionError("retries did not settle")


def legal_path(case):
    state, steps = wf.INITIAL, []
    for log in StateLog.objects.for_(case).order_by("timestamp", "id"):
        assert log.source_state == state, (case.pk, log.source_state, state)
        assert next_state(state, log.transition) == log.state
        steps.append((log.source_state, log.state, log.transition))
        state = log.state
    return steps


def test_two_hundred_cases_through_faults_end_uploaded_exactly_once(require_postgres, faulty_align, staff, flags_on):
    cases = [make_case() for _ in range(CASES)]
    started = time.monotonic()
    results = send_all(cases, staff)
    first_pass = sum(r.ok for r in results)
    rounds = retry_until_settled()
    elapsed = time.monotonic() - started

    states = {s: Case.objects.filter(state=s).count() for s in wf.STATES if Case.objects.filter(state=s).exists()}
    assert states == {wf.ASSETS_UPLOADED: CASES}
    effects = faulty_align.state()["effects"]
    assert (effects["patients"], effects["orders"], effects["uploads"]) == (CASES, CASES, CASES)
    for case in cases:
        assert legal_path(case) == SEND_PATH
    assert not Case.objects.filter(needs_attention=True).exists()

    fired = {f["mode"]: f["fired"] for f in faulty_align.state()["faults"]}
    assert fired["status"] > 50 and fired["reset"] > 0 and fired["timeout_after_commit"] > 5, fired
    attempts = OutboundAttempt.objects.count()
    print(
        f"\n{CASES} cases: {first_pass} done on the first pass, {rounds} retry rounds, {attempts} attempts, "
        f"faults fired {fired}, {elapsed:.1f}s"
    )


def test_negative_control_without_idempotency_keys_work_is_done_twice(
    require_postgres, faulty_align, staff, flags_on, monkeypatch
):
    from align_workflow.workflow import align_effects

    monkeypatch.setattr(align_effects, "SEND_IDEMPOTENCY_KEYS", False)
    faulty_align.clear_faults()
    faulty_align.fault(route="*", mode="timeout_after_commit", rate=0.3, seconds=2, seed=5)
    n = 30
    cases = [make_case() for _ in range(n)]
    send_all(cases, staff)
    retry_until_settled()
    effects = faulty_align.state()["effects"]
    stuck = Case.objects.exclude(state=wf.ASSETS_UPLOADED).count()
    # A lost answer, re-sent without its key, is new work: a second patient record
    # request, a second upload, or a 409 for the order that already exists.
    assert effects["patients"] > n or effects["uploads"] > n or stuck > 0, (effects, stuck)
    assert effects["patients"] > n, effects
