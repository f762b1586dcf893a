"""Sending cases to Align, against an in-memory fake of the client: the sequence, what
is sent, recorded attempts and notes, resume, retries, needs-attention, recovery.

Given a case and a fake Align; when the workflow sends; then the case, its attempts,
its notes and the fake's effects say what happened."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, CaseNote, Patient, PhotoAssessment
from align_workflow.workflow import TransitionNotAllowed, outbound, retry_case, send_to_align
from align_workflow.workflow.history import path_taken
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import StaffFactory, make_case
from tests.support.fakes import AFTER_COMMIT, auth_refused, rejected, unavailable

pytestmark = pytest.mark.django_db(transaction=True)

S = OutboundAttempt.Status
SEND_PATH = [
    (wf.ELIGIBLE, wf.PATIENT_CREATED),
    (wf.PATIENT_CREATED, wf.ORDER_CREATED),
    (wf.ORDER_CREATED, wf.ASSETS_UPLOADED),
]


def notes(case):
    return list(CaseNote.objects.filter(case=case).order_by("created", "id").values_list("text", flat=True))


def attempts(case):
    return list(OutboundAttempt.objects.filter(case=case).order_by("id"))


def reload(case):
    return Case.objects.get(pk=case.pk)


def make_due(case):
    OutboundAttempt.objects.filter(case=case, next_retry_at__isnull=False).update(next_retry_at=timezone.now())


# --- The happy path ----------------------------------------------------------------------


def test_one_send_takes_an_eligible_case_to_assets_uploaded(fake_align, staff, flags_on):
    case = make_case(patient__gender="F")
    result = send_to_align(case, by=staff)

    assert result.ok and not result.queued
    assert result.done == list(wf.SEND_TO_ALIGN)
    assert result.message == "Align accepted: Create Patient, Create Order, Upload Assets."
    assert case.state == result.state == wf.ASSETS_UPLOADED  # the caller's instance is refreshed
    assert case.align_pid == "P0000001"
    assert path_taken(case) == SEND_PATH
    assert [log.by for log in StateLog.objects.for_(case)] == [staff] * 3
    assert dict(fake_align.effects) == {"patients": 1, "orders": 1, "uploads": 1}
    rows = attempts(case)
    assert [(a.step, a.attempt, a.status, a.http_status) for a in rows] == [
        (step, 1, S.SUCCEEDED, 200) for step in wf.SEND_TO_ALIGN
    ]
    assert all(a.by == staff and a.chain and a.duration_ms is not None and a.finished_at for a in rows)
    assert notes(case) == [
        "Align accepted Create Patient. Align patient id P0000001",
        "Align accepted Create Order. IAS order, status RECEIVED.",
        "Align accepted Upload Assets. 2 asset(s).",
    ]


def test_every_request_is_recorded_and_committed_before_it_is_sent(fake_align, staff, flags_on):
    case = make_case()
    send_to_align(case, by=staff)
    for method, _kwargs, seen in fake_align.calls:
        # No transaction is open during the request, so the in-flight row it sees is committed.
        assert seen["in_transaction"] is False, method
        assert seen["attempt"] == {"status": S.IN_FLIGHT, "attempt": 1}, method


def test_what_is_sent(fake_align, staff, flags_on, settings):
    settings.ALIGN_CHIEF_CONCERN = "Wants straighter teeth."
    case = make_case(patient__gender="F", patient__address_line2="Apt 4")
    PhotoAssessment.objects.filter(case=case).update(treatment_option="UPPER_ONLY")
    send_to_align(case, by=staff)
    p = case.patient
    [patient] = fake_align.sent("create_patient")
    assert patient == dict(
        case_id=case.pk,
        mrn=p.mrn,
        first_name="Jane",
        last_name="Doe",
        date_of_birth="1990-05-17",
        gender="F",
        email=p.email,
        phone="555-0100",
        address=dict(line1="1 Main St", line2="Apt 4", city="Springfield", state="IL", zip="62701", country="US"),
        idempotency_key=f"align-workflow:case-{case.pk}:create_patient:1",
    )
    [order] = fake_align.sent("create_order")
    assert order == dict(
        case_id=case.pk,
        p_id="P0000001",
        mrn=p.mrn,
        order_type="IAS",
        treatment_option="UPPER_ONLY",
        chief_concern="Wants straighter teeth.",
        idempotency_key=f"align-workflow:case-{case.pk}:create_order:1",
    )
    [upload] = fake_align.sent("upload_assets")
    assert upload == dict(
        case_id=case.pk, p_id="P0000001", mrn=p.mrn, idempotency_key=f"align-workflow:case-{case.pk}:upload_assets:1"
    )


def test_unknown_gender_is_sent_as_m_with_a_note(fake_align, staff, flags_on):
    case = make_case(patient__gender=Patient.Gender.UNKNOWN)
    send_to_align(case, by=staff)
    assert fake_align.sent("create_patient")[0]["gender"] == "M"
    assert any("gender is unknown here; it was sent to Align as M" in n for n in notes(case))
    assert "sent as M" in StateLog.objects.for_(case).get(transition="create_patient").description


def test_no_patient_details_in_notes_logs_or_attempts(fake_align, staff, flags_on, caplog):
    case = make_case(patient__first_name="Zelda", patient__last_name="Quixotic", patient__email="zq@example.org")
    # The service echoes the patient's name in an error message.
    fake_align.fail("create_order", rejected(400, "ORDER.INVALID", "order for Zelda Quixotic (zq@example.org) lacks x"))
    with caplog.at_level("INFO"):
        send_to_align(case, by=staff)
    texts = notes(case) + [reload(case).attention_reason] + [a.message for a in attempts(case)]
    texts += [r.getMessage() for r in caplog.records] + [log.description or "" for log in StateLog.objects.for_(case)]
    joined = "\n".join(texts)
    assert "lacks x" in joined  # the message is kept ...
    for phi in ("Zelda", "Quixotic", "zq@example.org", "1990-05-17", "555-0100", "Main St"):
        assert phi not in joined  # ... without the patient's details


# --- Refusals: nothing sent, nothing recorded --------------------------------------------


def test_flag_off_refuses_and_says_so(fake_align, staff):
    case = make_case()
    with pytest.raises(TransitionNotAllowed, match="'initiate-align-order' flag is off") as refused:
        send_to_align(case, by=staff)
    assert refused.value.code == "flag_off"
    assert fake_align.calls == [] and attempts(case) == [] and notes(case) == []


def test_guard_refuses_before_anything_is_sent(fake_align, staff, flags_on):
    case = make_case(stl_files=1)
    with pytest.raises(TransitionNotAllowed, match="1 STL file") as refused:
        send_to_align(case, by=staff)
    assert refused.value.code == "guard"
    assert fake_align.calls == [] and attempts(case) == []


def test_a_provider_cannot_send(fake_align, flags_on):
    case = make_case()
    with pytest.raises(TransitionNotAllowed) as refused:
        send_to_align(case, by=case.prescription.provider.user)
    assert refused.value.code == "actor"
    assert fake_align.calls == []


def test_nothing_left_to_send(fake_align, staff, flags_on):
    case = make_case(state=wf.ASSETS_UPLOADED)
    with pytest.raises(TransitionNotAllowed, match="Nothing to send: the case is assets uploaded") as refused:
        send_to_align(case, by=staff)
    assert refused.value.code == "wrong_state"


def test_a_second_send_while_one_is_in_flight_is_refused(fake_align, staff, flags_on):
    case = make_case()
    OutboundAttempt.objects.create(
        case=case,
        step="create_patient",
        idempotency_key="k",
        attempt=1,
        status=S.IN_FLIGHT,
        claimed_until=timezone.now() + timedelta(minutes=1),
    )
    with pytest.raises(TransitionNotAllowed, match="Create Patient is already being sent") as refused:
        send_to_align(case, by=staff)
    assert refused.value.code == "in_progress"
    assert fake_align.calls == []


# --- Failures, resume and retries --------------------------------------------------------


def test_a_503_on_create_order_stops_the_sequence_with_a_note(fake_align, staff, flags_on, settings):
    settings.ALIGN_RETRY_BASE_SECONDS = 30
    case = make_case()
    fake_align.fail("create_order", unavailable(503))
    before = timezone.now()
    result = send_to_align(case, by=staff)

    assert not result.ok and result.done == ["create_patient"] and result.failed_step == "create_order"
    assert case.state == wf.PATIENT_CREATED
    assert "Bad Align response during Create Order. Status code: 503" in result.error
    assert notes(case)[-1].startswith(
        "Bad Align response during Create Order. Status code: 503 "
        "(ALIGN.UNAVAILABLE: Align is unavailable). Attempt 1 of 5; retrying"
    )
    failed = attempts(case)[-1]
    assert (failed.step, failed.status, failed.http_status, failed.error_code, failed.request_id) == (
        "create_order",
        S.FAILED_RETRYABLE,
        503,
        "ALIGN.UNAVAILABLE",
        "req-fake",
    )
    # Backoff with jitter: the first retry comes between half the base and the base.
    assert before + timedelta(seconds=15) <= failed.next_retry_at <= timezone.now() + timedelta(seconds=30)
    assert result.retry_at == failed.next_retry_at
    assert failed.failed and failed.error == "ALIGN.UNAVAILABLE: Align is unavailable"
    assert not reload(case).needs_attention
    assert fake_align.sent("upload_assets") == []
    assert result.message.startswith("Align accepted: Create Patient. Create Order did not go through: Bad Align")


def test_the_retry_reuses_the_key_and_continues_the_sequence(fake_align, staff, flags_on):
    case = make_case()
    fake_align.fail("create_order", unavailable(503))
    send_to_align(case, by=staff)

    assert outbound.run_due().started == 0  # not due yet
    make_due(case)
    run = outbound.run_due()
    assert run.retried == 1 and run.results[0].done == ["create_order", "upload_assets"]

    assert reload(case).state == wf.ASSETS_UPLOADED
    keys = [kw["idempotency_key"] for kw in fake_align.sent("create_order")]
    assert len(keys) == 2 and keys[0] == keys[1]
    orders = [a for a in attempts(case) if a.step == "create_order"]
    assert [(a.attempt, a.status) for a in orders] == [(1, S.FAILED_RETRYABLE), (2, S.SUCCEEDED)]
    assert orders[0].next_retry_at is None  # taken
    assert dict(fake_align.effects) == {"patients": 1, "orders": 1, "uploads": 1}
    assert path_taken(case) == SEND_PATH


def test_sending_again_resumes_from_the_current_state(fake_align, staff, flags_on):
    case = make_case()
    fake_align.fail("upload_assets", unavailable(502))
    send_to_align(case, by=staff)
    assert case.state == wf.ORDER_CREATED

    result = send_to_align(case, by=staff)  # the staff member clicks again before the retry is due
    assert result.done == ["upload_assets"] and case.state == wf.ASSETS_UPLOADED
    assert len(fake_align.sent("create_patient")) == 1 and len(fake_align.sent("create_order")) == 1
    uploads = [a for a in attempts(case) if a.step == "upload_assets"]
    assert [(a.attempt, a.idempotency_key == uploads[0].idempotency_key) for a in uploads] == [(1, True), (2, True)]
    assert outbound.run_due(everything=True).started == 0  # the planned retry was superseded


def test_an_answer_lost_after_align_did_the_work_is_recovered_with_the_same_key(fake_align, staff, flags_on):
    case = make_case()
    fake_align.fail("create_patient", AFTER_COMMIT)  # Align creates the patient; we hear nothing
    result = send_to_align(case, by=staff)
    assert result.failed_step == "create_patient" and case.state == wf.ELIGIBLE
    assert notes(case)[-1].startswith("No answer from Align during Create Patient (TIMEOUT")
    assert fake_align.effects["patients"] == 1

    outbound.run_due(everything=True)
    assert reload(case).state == wf.ASSETS_UPLOADED
    assert dict(fake_align.effects) == {"patients": 1, "orders": 1, "uploads": 1}


def test_after_the_last_attempt_the_case_needs_attention_until_a_retry_succeeds(fake_align, staff, flags_on, settings):
    settings.ALIGN_RETRY_MAX_ATTEMPTS = 3
    case = make_case()
    fake_align.fail("create_patient", *[unavailable(503)] * 3)
    send_to_align(case, by=staff)
    outbound.run_due(everything=True)
    outbound.run_due(everything=True)
    case.refresh_from_db()
    assert case.state == wf.ELIGIBLE and case.needs_attention
    assert case.attention_reason.startswith(
        "Create Patient: Bad Align response during Create Patient. Status code: 503"
    )
    assert "Gave up after 3 attempts" in case.attention_reason
    assert [a.attempt for a in attempts(case)] == [1, 2, 3]
    assert attempts(case)[-1].next_retry_at is None
    assert "no more automatic retries" in notes(case)[-1]
    assert outbound.run_due(everything=True).started == 0

    result = retry_case(case, by=staff)
    assert result.ok and case.state == wf.ASSETS_UPLOADED
    assert not case.needs_attention and case.attention_reason == ""
    keys = {kw["idempotency_key"] for kw in fake_align.sent("create_patient")}
    assert len(keys) == 1 and len(fake_align.sent("create_patient")) == 4


def test_a_rejection_is_not_retried_and_needs_a_person(fake_align, staff, flags_on):
    case = make_case()
    fake_align.fail("create_order", rejected(422, "ORDER.INVALID", "treatment option not allowed"))
    result = send_to_align(case, by=staff)
    assert result.failed_step == "create_order"
    failed = attempts(case)[-1]
    assert (failed.status, failed.http_status, failed.next_retry_at) == (S.FAILED_PERMANENT, 422, None)
    case.refresh_from_db()
    assert case.needs_attention
    assert case.attention_reason == (
        "Create Order: Bad Align response during Create Order. Status code: 422 "
        "(ORDER.INVALID: treatment option not allowed)."
    )
    assert "Not retried automatically" in notes(case)[-1]
    assert outbound.run_due(everything=True).started == 0


def test_retrying_a_refused_step_uses_a_fresh_key(fake_align, staff, flags_on):
    # Align keeps the first answer per key; a refusal did nothing, so after a person fixed
    # the cause the request goes out under a new key rather than replaying the refusal.
    case = make_case()
    original = fake_align._create_order
    calls = []

    def refuse_once(kw):
        calls.append(kw["idempotency_key"])
        if len(calls) == 1:
            raise rejected(409, "ORDER.CONFLICT", "try later")
        return original(kw)

    fake_align._create_order = refuse_once
    send_to_align(case, by=staff)
    assert reload(case).needs_attention
    result = retry_case(case, by=staff)
    assert result.ok, result.error
    assert calls == [f"align-workflow:case-{case.pk}:create_order:1", f"align-workflow:case-{case.pk}:create_order:2"]
    assert not reload(case).needs_attention
    assert fake_align.effects["orders"] == 1


def test_credentials_refused_needs_a_person_and_the_retry_keeps_the_key(fake_align, staff, flags_on):
    case = make_case()
    fake_align.fail("create_patient", auth_refused())
    send_to_align(case, by=staff)
    assert attempts(case)[-1].status == S.FAILED_PERMANENT and reload(case).needs_attention
    retry_case(case, by=staff)
    keys = [kw["idempotency_key"] for kw in fake_align.sent("create_patient")]
    assert keys[0] == keys[1]


def test_a_retry_fires_as_the_actor_who_first_sent_it(fake_align, flags_on):
    first, second = StaffFactory(), StaffFactory()
    case = make_case()
    fake_align.fail("create_patient", rejected(400, "PATIENT.INVALID", "phone is required"))
    send_to_align(case, by=first)
    retry_case(case, by=second)
    assert {log.by for log in StateLog.objects.for_(case)} == {first}
    assert {a.by for a in attempts(case)} == {first}
    assert f"Retry of Create Patient requested by {second.username}." in notes(case)


def test_retry_case_refusals(fake_align, staff, flags_on):
    case = make_case()
    with pytest.raises(TransitionNotAllowed, match="no call to Align has been made"):
        retry_case(case, by=staff)
    fake_align.fail("create_patient", unavailable(503))
    send_to_align(case, by=staff)
    with pytest.raises(TransitionNotAllowed, match="Only staff may retry") as refused:
        retry_case(case, by=case.prescription.provider.user)
    assert refused.value.code == "actor"
    OutboundAttempt.objects.filter(case=case).update(
        status=S.IN_FLIGHT, claimed_until=timezone.now() + timedelta(minutes=1)
    )
    with pytest.raises(TransitionNotAllowed, match="already being sent") as refused:
        retry_case(case, by=staff)
    assert refused.value.code == "in_progress"


def test_backoff_grows_exponentially_with_jitter_and_respects_retry_after(settings):
    settings.ALIGN_RETRY_BASE_SECONDS = 10
    settings.ALIGN_RETRY_MAX_DELAY_SECONDS = 60
    for n, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = [outbound.retry_delay(n) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), n
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not one value
    assert outbound.retry_delay(1, retry_after=45) >= 45


# --- Crashes and stray attempts ----------------------------------------------------------


def test_a_worker_that_died_mid_call_is_taken_over_after_its_lease(fake_align, staff, flags_on):
    """The process sent create_patient, Align did it, and the process died before
    recording anything: the attempt is in flight, the case claimed, both leases running."""
    case = make_case()
    key = f"align-workflow:case-{case.pk}:create_patient:1"
    past = timezone.now() - timedelta(seconds=1)
    OutboundAttempt.objects.create(
        case=case,
        step="create_patient",
        idempotency_key=key,
        attempt=1,
        chain=True,
        by=staff,
        status=S.IN_FLIGHT,
        started_at=past,
        claimed_until=past,
    )
    Case.objects.filter(pk=case.pk).update(busy_with="create_patient", busy_until=past)
    from align_workflow.workflow.align_effects import patient_fields

    fake_align.create_patient(**patient_fields(case), idempotency_key=key)  # the work Align did

    run = outbound.run_due()
    assert run.expired == 1 and run.retried == 1
    case.refresh_from_db()
    assert case.state == wf.ASSETS_UPLOADED and case.busy_with == ""
    assert dict(fake_align.effects) == {"patients": 1, "orders": 1, "uploads": 1}
    first, second = [a for a in attempts(case) if a.step == "create_patient"]
    assert (first.status, first.error_code, second.attempt, second.idempotency_key) == (
        S.FAILED_RETRYABLE,
        "LEASE_EXPIRED",
        2,
        key,
    )
    assert any(n.startswith("No answer recorded for Create Patient") for n in notes(case))


def test_a_live_lease_is_left_alone(fake_align, staff, flags_on):
    case = make_case()
    OutboundAttempt.objects.create(
        case=case,
        step="create_patient",
        idempotency_key="k",
        attempt=1,
        status=S.IN_FLIGHT,
        claimed_until=timezone.now() + timedelta(minutes=1),
    )
    run = outbound.run_due(everything=True)
    assert (run.expired, run.started) == (0, 0)


def test_a_recorded_attempt_nobody_started_is_started_by_the_sweep(fake_align, staff, flags_on):
    case = make_case()
    with transaction.atomic():
        attempt = outbound.enqueue(case, "create_patient", by=staff, params={}, chain=True)
    OutboundAttempt.objects.filter(pk=attempt.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    run = outbound.run_due()
    assert run.restarted == 1
    assert reload(case).state == wf.ASSETS_UPLOADED


def test_a_commit_that_fails_after_align_answered_is_resent_with_the_same_key(fake_align, staff, flags_on, monkeypatch):
    case = make_case()
    real = outbound.record_success
    failures = []

    def flaky(case, attempt_id, *args, **kwargs):
        if not failures and OutboundAttempt.objects.get(pk=attempt_id).step == "create_order":
            failures.append(1)
            raise DatabaseError("connection lost")
        return real(case, attempt_id, *args, **kwargs)

    monkeypatch.setattr(outbound, "record_success", flaky)
    with pytest.raises(DatabaseError):
        send_to_align(case, by=staff)
    case.refresh_from_db()
    assert case.state == wf.PATIENT_CREATED and case.busy_with == ""
    order = attempts(case)[-1]
    assert (order.status, order.error_code, order.http_status) == (S.FAILED_RETRYABLE, "NOT_SAVED", 200)
    assert "it will be re-sent with the same key" in notes(case)[-1]

    outbound.run_due(everything=True)
    assert reload(case).state == wf.ASSETS_UPLOADED
    assert fake_align.effects["orders"] == 1 and len(fake_align.sent("create_order")) == 2


def test_a_pending_attempt_that_is_no_longer_allowed_is_skipped_with_a_note(fake_align, staff, flags_on):
    case = make_case()
    fake_align.fail("create_order", unavailable(503))
    send_to_align(case, by=staff)
    from align_workflow.workflow import fire

    fire(reload(case), "cancel", by=staff, reason="Patient moved away")
    make_due(case)
    outbound.run_due()
    last = attempts(case)[-1]
    assert (last.step, last.status) == ("create_order", S.SKIPPED)
    assert notes(case)[-1].startswith("Create Order was not sent: Cannot create order: the case is cancelled")
    assert len(fake_align.sent("create_order")) == 1


# --- Execution modes -------------------------------------------------------------------


def test_inline_inside_a_transaction_waits_for_the_commit(fake_align, staff, flags_on):
    case = make_case()
    with transaction.atomic():
        result = send_to_align(case, by=staff)
        assert result.queued and fake_align.calls == []
    assert reload(case).state == wf.ASSETS_UPLOADED


def test_inline_send_rolled_back_with_its_transaction_sends_nothing(fake_align, staff, flags_on):
    case = make_case()

    def send_then_fail():
        with transaction.atomic():
            send_to_align(case, by=staff)
            raise RuntimeError("the view failed later")

    with pytest.raises(RuntimeError, match="the view failed later"):
        send_then_fail()
    assert fake_align.calls == [] and attempts(case) == []


def test_celery_mode_queues_the_recorded_attempt(fake_align, staff, flags_on, settings, monkeypatch):
    from align_workflow.workflow import tasks

    settings.ALIGN_EXECUTION = "celery"
    queued = []
    monkeypatch.setattr(tasks.run_attempt_task, "delay", queued.append)
    case = make_case()
    result = send_to_align(case, by=staff)
    assert result.queued and fake_align.calls == []
    [attempt] = attempts(case)
    assert queued == [attempt.pk] and attempt.status == S.PENDING

    tasks.run_attempt_task(attempt.pk)  # what the worker runs
    tasks.run_attempt_task(attempt.pk)  # a redelivered message does nothing
    assert reload(case).state == wf.ASSETS_UPLOADED
    assert dict(fake_align.effects) == {"patients": 1, "orders": 1, "uploads": 1}


def test_the_celery_sweep_queues_due_retries_and_expired_leases(fake_align, staff, flags_on, settings, monkeypatch):
    from align_workflow.workflow import tasks

    case = make_case()
    fake_align.fail("create_order", unavailable(503))
    send_to_align(case, by=staff)
    make_due(case)
    crashed = make_case()  # its worker died in the middle of create_patient
    past = timezone.now() - timedelta(seconds=1)
    OutboundAttempt.objects.create(
        case=crashed,
        step="create_patient",
        attempt=1,
        chain=True,
        by=staff,
        idempotency_key=f"align-workflow:case-{crashed.pk}:create_patient:1",
        status=S.IN_FLIGHT,
        started_at=past,
        claimed_until=past,
    )
    settings.ALIGN_EXECUTION = "celery"
    queued = []
    monkeypatch.setattr(tasks.run_attempt_task, "delay", queued.append)
    assert tasks.sweep_task() == 2
    assert tasks.sweep_task() == 0  # claimed once
    for attempt_id in queued:
        tasks.run_attempt_task(attempt_id)
    assert reload(case).state == wf.ASSETS_UPLOADED and reload(crashed).state == wf.ASSETS_UPLOADED


def test_the_beat_schedule_runs_the_sweep(settings):
    from align_workflow.celery import app
    from align_workflow.workflow import tasks  # noqa: F401 - what the worker's autodiscovery imports

    assert app.conf.beat_schedule["align-sweep"]["task"] == "align.sweep"
    assert "align.sweep" in app.tasks and "align.run_attempt" in app.tasks
    assert app.conf.task_acks_late is True


# --- The command -------------------------------------------------------------------------


def test_align_retry_due_command(fake_align, staff, flags_on, capsys):
    case = make_case()
    fake_align.fail("create_order", unavailable(503))
    send_to_align(case, by=staff)
    call_command("align_retry_due")
    assert "0 attempt(s) run" in capsys.readouterr().out
    call_command("align_retry_due", "--all")
    assert "1 attempt(s) run (1 retries, 0 never started), 0 taken over" in capsys.readouterr().out
    assert reload(case).state == wf.ASSETS_UPLOADED


# --- The timeline a portal shows ----------------------------------------------------------


def test_attempts_of_lists_newest_first(fake_align, staff, flags_on):
    case = make_case()
    fake_align.fail("create_order", unavailable(503))
    send_to_align(case, by=staff)
    rows = list(outbound.attempts_of(case))
    assert [(a.step, a.status) for a in rows] == [("create_order", S.FAILED_RETRYABLE), ("create_patient", S.SUCCEEDED)]
    assert rows[0].label == "Create Order"


def test_the_admin_lists_attempts_read_only(fake_align, staff, flags_on, admin_client):
    case = make_case()
    fake_align.fail("create_order", unavailable(503))
    send_to_align(case, by=staff)
    page = admin_client.get("/admin/workflow/outboundattempt/?status=failed_retryable")
    assert page.status_code == 200 and b"create_order" in page.content
    attempt = attempts(case)[-1]
    detail = admin_client.get(f"/admin/workflow/outboundattempt/{attempt.pk}/change/")
    assert detail.status_code == 200 and b"ALIGN.UNAVAILABLE" in detail.content
    assert admin_client.get("/admin/workflow/outboundattempt/add/").status_code == 403


def test_retry_workers_keep_one_connection_each_for_the_run_and_close_them(
    require_postgres, fake_align, staff, flags_on
):
    """align_retry_due --workers 4 with twelve due retries: each worker thread opens at
    most one database connection (not one per attempt), and none is left open."""
    import threading

    from django.db.backends.signals import connection_created

    cases = [make_case() for _ in range(12)]
    fake_align.fail("create_patient", *[unavailable(503)] * len(cases))
    for case in cases:
        assert send_to_align(case, by=staff).failed_step == "create_patient"
    opened = []

    def created(sender, connection, **kwargs):
        if threading.current_thread() is not threading.main_thread():  # the workers
            opened.append(connection)

    connection_created.connect(created)
    try:
        run = outbound.run_due(everything=True, workers=4)
    finally:
        connection_created.disconnect(created)

    assert run.retried == 12 and all(r.ok for r in run.results)
    assert {c.state for c in Case.objects.filter(pk__in=[c.pk for c in cases])} == {wf.ASSETS_UPLOADED}
    assert 1 <= len(opened) <= 4
    assert all(own.connection is None for own in opened)


def test_align_retry_due_escapes_control_characters_in_what_it_prints(fake_align, staff, flags_on, capsys):
    case = make_case()
    fake_align.fail(
        "create_order",
        unavailable(503, message="busy\x1b[2J\x1b]0;title\x07"),
        unavailable(503, message="busy\x1b[2J\x1b]0;title\x07"),
    )
    send_to_align(case, by=staff)
    call_command("align_retry_due", "--all", verbosity=2)
    out = capsys.readouterr().out
    assert "failed again" in out and f"case {case.pk}:" in out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out
