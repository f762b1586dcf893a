"""`manage.py align_batch` against the Align simulator (a real process): each action's
success path, --dry-run, faults followed by a re-run, the report, progress output and
bounded parallelism.

Given cases in the database (and, where a call is made, on the simulator); when the
command runs; then the cases, their history, the simulator's effects and request log,
the output and the exit status say what happened."""

import csv
import io
import threading

import pytest
from django.db.backends.signals import connection_created
from django_fsm_log.models import StateLog

from align_workflow.align.client import AlignRejected, AlignUnavailable
from align_workflow.cases.models import Case, TreatmentPlan
from align_workflow.workflow import batch, fire
from align_workflow.workflow.align_effects import AlignCallFailed
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.batch import (
    Terminal,
    effects,
    keys_sent,
    known_to_align,
    notes,
    ready_to_accept,
    run_batch,
    with_screenshot,
    write_csv,
)
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db(transaction=True)

S = OutboundAttempt.Status
MODIFY = "/orders/{}/modify"


def state_of(case):
    return Case.objects.get(pk=case.pk).state


def last_log(case):
    return StateLog.objects.for_(case).order_by("-id").first()


# --- accept ----------------------------------------------------------------------------------


def test_accept_sends_the_default_selection_only(simulator, flags_on):
    ready = [ready_to_accept(simulator) for _ in range(3)]
    not_purchased = ready_to_accept(purchased=False)
    no_screenshot = ready_to_accept(screenshot=False)
    reviewing = make_case(state=wf.PLAN_RECEIVED)

    code, out, err = run_batch("accept")

    assert code == 0, err
    assert "3 case(s) from provider approved, aligners purchased, acceptance screenshot stored" in out
    for case in ready:
        assert state_of(case) == wf.ACCEPTED
        assert f"{case.case_number} accepted" in out
        log = last_log(case)
        assert log.transition == "accept_clincheck" and log.by is None
        assert any(n.startswith("align_batch accept (run by ") for n in notes(case))
        assert any(n.startswith("Align accepted Accept ClinCheck.") for n in notes(case))
    for case in (not_purchased, no_screenshot, reviewing):
        assert case.case_number not in out
        assert state_of(case) == Case.objects.get(pk=case.pk).state and not notes(case)
    assert effects(simulator, "accepts") == {"accepts": 3}
    assert "Done: 3 accepted, 0 skipped, 0 failed" in out


def test_accept_from_a_csv_found_by_header_name_skips_what_is_not_ready(simulator, flags_on, tmp_path):
    ready = ready_to_accept(simulator)
    done_already = ready_to_accept(state=wf.ACCEPTED)
    shipped = ready_to_accept(state=wf.SHIPPING)
    not_purchased = ready_to_accept(purchased=False)
    no_screenshot = ready_to_accept(screenshot=False)
    # Columns in another order and case, an MRN column too, a BOM as Excel writes it.
    cases = (ready, done_already, shipped, not_purchased, no_screenshot)
    path = write_csv(tmp_path, "\ufeffMRN,Case Number\n" + "".join(f"{c.patient.mrn},{c.case_number}\n" for c in cases))

    code, out, err = run_batch("accept", "--csv", path)

    assert code == 0, err
    assert state_of(ready) == wf.ACCEPTED
    assert f"{done_already.case_number} skipped: already accepted" in out
    assert f"{shipped.case_number} skipped: already accepted (the case is now shipping)" in out
    assert f"{not_purchased.case_number} skipped: no aligner purchase is recorded for this case" in out
    assert f"{no_screenshot.case_number} skipped: No acceptance screenshot is stored" in out
    assert effects(simulator, "accepts") == {"accepts": 1}
    assert "Done: 1 accepted, 4 skipped, 0 failed" in out
    for case in (done_already, shipped, not_purchased, no_screenshot):
        assert not OutboundAttempt.objects.filter(case=case).exists() and not notes(case)


def test_faults_then_a_rerun_finish_every_case_with_no_duplicate_effects(simulator, flags_on, tmp_path):
    cases = [ready_to_accept(simulator) for _ in range(6)]
    simulator.fault(route="PUT /orders/{caseId}/accept", mode="reset_after_commit", count=1)
    simulator.fault(route="PUT /orders/{caseId}/accept", status=503, count=2)
    report = tmp_path / "first.csv"

    code, out, err = run_batch("accept", "--report", str(report))

    assert code == 1 and "3 case(s) failed" in err
    assert "Done: 3 accepted, 0 skipped, 3 failed" in out
    assert effects(simulator, "accepts") == {"accepts": 4}  # one was done by Align, its answer lost
    failed = [r for r in csv.DictReader(io.StringIO(report.read_text())) if r["outcome"] == "failed"]
    assert len(failed) == 3 and all("Align" in r["detail"] for r in failed)
    lost = [c for c in cases if state_of(c) == wf.PROVIDER_APPROVED]
    assert len(lost) == 3

    code, out, err = run_batch("accept", "--case-ids", ",".join(str(c.pk) for c in cases))

    assert code == 0, err
    assert all(state_of(c) == wf.ACCEPTED for c in cases)
    assert out.count("skipped: already accepted") == 3
    assert effects(simulator, "accepts") == {"accepts": 6}  # the lost answer was replayed, not redone
    for case in lost:  # sent twice each, with one key
        sent = keys_sent(simulator, "PUT", f"/orders/{case.pk}/accept")
        assert len(sent) == 2 and sent[0] == sent[1], sent
    assert all(StateLog.objects.for_(c).filter(transition="accept_clincheck").count() == 1 for c in cases)


# --- revise ---------------------------------------------------------------------------------


def failed_revision(sim, comments="Less movement on 11 and 21."):
    """The provider asked for a revision; the call failed (503), the case stays in plan_received."""
    case = make_case(state=wf.PLAN_RECEIVED)
    known_to_align(sim, case)
    sim.fault(route="PUT /orders/{caseId}/modify", status=503, count=1)
    with pytest.raises(AlignCallFailed, match="Status code: 503") as failed:
        fire(case, "request_revision", by=case.prescription.provider.user, comments=comments)
    assert isinstance(failed.value.error, AlignUnavailable)
    assert state_of(case) == wf.PLAN_RECEIVED
    return case


def test_revise_resends_failed_revision_requests_as_the_provider_with_the_same_key(simulator, flags_on):
    cases = [failed_revision(simulator, f"Comments {i}.") for i in range(3)]
    untouched = make_case(state=wf.PLAN_RECEIVED)  # nobody asked for a revision: not selected

    code, out, err = run_batch("revise")

    assert code == 0, err
    assert "3 case(s) from plan received, the provider's revision request failed" in out
    remote = {c["caseId"]: c for c in simulator.state()["orders"]}
    for i, case in enumerate(cases):
        assert state_of(case) == wf.REVISION_REQUESTED
        assert remote[case.pk]["plans"][-1]["comments"] == f"Comments {i}."
        sent = keys_sent(simulator, "PUT", MODIFY.format(case.pk))
        assert len(sent) == 2 and sent[0] == sent[1]
        log = last_log(case)
        assert log.by == case.prescription.provider.user and log.transition == "request_revision"
        assert any("on behalf of the case's provider" in n for n in notes(case))
    assert effects(simulator, "modifies") == {"modifies": 3}
    assert state_of(untouched) == wf.PLAN_RECEIVED and untouched.case_number not in out

    code, out, _ = run_batch("revise", "--case-ids", ",".join(str(c.pk) for c in cases))
    assert code == 0 and out.count("skipped: revision already requested") == 3
    assert effects(simulator, "modifies") == {"modifies": 3}


def test_a_failed_revision_of_an_older_plan_is_not_sent_for_the_new_one(simulator, flags_on):
    case = failed_revision(simulator)
    data = simulator.emit(case.pk, "treatment_plan.submitted")["body"]["data"]
    TreatmentPlan.objects.create(case=case, plan_id=data["treatmentPlanId"], version=data["version"])

    code, out, err = run_batch("revise")

    assert code == 0, err
    assert (
        f"{case.case_number} skipped: its failed revision request was about plan version 1, but version 2 "
        "is waiting now, for the provider to review"
    ) in out
    assert state_of(case) == wf.PLAN_RECEIVED and effects(simulator, "modifies") == {"modifies": 0}


def test_revise_from_a_csv_sends_its_comments_or_the_default(simulator, flags_on, tmp_path):
    with_comments, without = (known_to_align(simulator, make_case(state=wf.PLAN_RECEIVED)) for _ in range(2))
    failed = failed_revision(simulator, "The provider's words.")
    path = write_csv(
        tmp_path,
        f'comments;case_id\n"Less IPR; fewer stages";{with_comments.pk}\n;{without.pk}\nSomething else;{failed.pk}\n',
    )

    code, out, err = run_batch("revise", "--csv", path)

    assert code == 0, err
    remote = {c["caseId"]: c for c in simulator.state()["orders"]}
    assert remote[with_comments.pk]["plans"][-1]["comments"] == "Less IPR; fewer stages"
    assert remote[without.pk]["plans"][-1]["comments"] == batch.DEFAULT_COMMENTS
    assert remote[failed.pk]["plans"][-1]["comments"] == "The provider's words."  # re-sent as recorded
    assert (
        f"{failed.case_number} revision requested (the file's comments were not used: the provider's own were re-sent)"
    ) in out
    assert all(state_of(c) == wf.REVISION_REQUESTED for c in (with_comments, without, failed))
    assert effects(simulator, "modifies") == {"modifies": 3}


# --- retry-failed ---------------------------------------------------------------------------------


def test_retry_failed_retries_the_last_failed_call_of_cases_that_need_attention(simulator, flags_on):
    refused = [ready_to_accept(simulator) for _ in range(2)]
    simulator.fault(route="PUT /orders/{caseId}/accept", status=409, code="PLAN.NOT_PENDING", count=2)
    for case in refused:
        with pytest.raises(AlignCallFailed, match="Status code: 409") as failed:
            fire(case, "accept_clincheck", by=None)
        assert isinstance(failed.value.error, AlignRejected)
        assert Case.objects.get(pk=case.pk).needs_attention
    revision = failed_revision(simulator)
    OutboundAttempt.objects.filter(case=revision).update(status=S.FAILED_PERMANENT, next_retry_at=None)
    Case.objects.filter(pk=revision.pk).update(needs_attention=True, attention_reason="Request Revision: gave up")
    succeeded = ready_to_accept(simulator)
    fire(succeeded, "accept_clincheck", by=None)
    Case.objects.filter(pk=succeeded.pk).update(needs_attention=True, attention_reason="Something else")
    cancelled = ready_to_accept()
    OutboundAttempt.objects.create(
        case=cancelled, step="accept_clincheck", idempotency_key="k:1", attempt=1, status=S.FAILED_PERMANENT, params={}
    )
    Case.objects.filter(pk=cancelled.pk).update(state=wf.CANCELLED, needs_attention=True)

    code, out, err = run_batch("retry-failed")

    assert code == 0, err
    for case in refused:
        fresh = Case.objects.get(pk=case.pk)
        assert fresh.state == wf.ACCEPTED and not fresh.needs_attention
    assert state_of(revision) == wf.REVISION_REQUESTED
    assert last_log(revision).by == revision.prescription.provider.user
    assert f"{succeeded.case_number} skipped: nothing to retry: its last call (Accept ClinCheck) succeeded" in out
    assert (
        f"{cancelled.case_number} skipped: its last failed call (Accept ClinCheck) no longer applies: "
        "the case is cancelled"
    ) in out
    assert f"{refused[0].case_number} retried: Align accepted: Accept ClinCheck." in out
    assert effects(simulator, "accepts", "modifies") == {"accepts": 3, "modifies": 1}


# --- upload-assets (the simulator reads the STL list from this app) -----------------------------


def test_upload_assets_uploads_cases_stuck_in_order_created(simulator, app_for_align, flags_on):
    simulator.config(app_url=app_for_align.url)
    stuck = [known_to_align(simulator, make_case(state=wf.ORDER_CREATED), plan=False) for _ in range(3)]
    further = make_case(state=wf.ASSETS_UPLOADED)

    simulator.fault(route="POST /assets/upload", mode="reset_after_commit", count=1)
    simulator.fault(route="POST /assets/upload", status=503, count=1)

    code, out, err = run_batch("upload-assets")

    assert code == 1, err
    assert "Done: 1 assets uploaded, 0 skipped, 2 failed" in out
    assert further.case_number not in out
    assert effects(simulator, "uploads") == {"uploads": 2}  # one answer was lost after the work

    code, out, err = run_batch("upload-assets", "--case-ids", ",".join(str(c.pk) for c in stuck + [further]))
    assert code == 0, err
    assert all(state_of(c) == wf.ASSETS_UPLOADED for c in stuck)
    assert out.count("skipped: assets already uploaded") == 2
    assert effects(simulator, "uploads") == {"uploads": 3}
    sent = keys_sent(simulator, "POST", "/assets/upload")
    assert len(sent) == 5 and len(set(sent)) == 3  # the two failed cases were re-sent with their keys


# --- --dry-run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["accept", "revise", "upload-assets", "retry-failed"])
def test_dry_run_lists_what_would_be_done_and_sends_nothing(simulator, flags_on, action, tmp_path):
    accept = ready_to_accept()
    upload = make_case(state=wf.ORDER_CREATED, align_pid="P0000001")
    revise = make_case(state=wf.PLAN_RECEIVED)
    OutboundAttempt.objects.create(
        case=revise,
        step="request_revision",
        idempotency_key="k:1",
        attempt=1,
        status=S.FAILED_RETRYABLE,
        by=revise.prescription.provider.user,
        params={"comments": "Less.", "plan_version": 0},
    )
    Case.objects.filter(pk=accept.pk).update(needs_attention=True)
    OutboundAttempt.objects.create(
        case=accept, step="accept_clincheck", idempotency_key="k:2", attempt=1, status=S.FAILED_PERMANENT, params={}
    )
    before = {c.pk: (c.state, len(notes(c))) for c in Case.objects.all()}
    attempts = OutboundAttempt.objects.count()
    report = tmp_path / "dry.csv"

    code, out, err = run_batch(action, "--dry-run", "--report", str(report))

    assert code == 0, err
    assert "dry run: nothing is sent" in out and "Dry run: nothing was sent. 1 would be sent" in out
    expected = {"accept": accept, "revise": revise, "upload-assets": upload, "retry-failed": accept}[action]
    assert f"[1/1] {expected.case_number} would " in out
    assert simulator.requests() == []
    assert {c.pk: (c.state, len(notes(c))) for c in Case.objects.all()} == before
    assert OutboundAttempt.objects.count() == attempts
    assert [r["outcome"] for r in csv.DictReader(io.StringIO(report.read_text()))] == ["would_do"]


# --- the report, the output, the exit status -----------------------------------------------------------


def test_the_report_has_every_cases_outcome(simulator, flags_on, tmp_path):
    done = ready_to_accept(simulator)
    failing = ready_to_accept(simulator)
    skipped = ready_to_accept(purchased=False)
    simulator.fault(route=f"PUT /orders/{failing.pk}/accept", status=422, code="SCREENSHOT.UNREADABLE", count=1)
    path = write_csv(
        tmp_path,
        "case_number\n"
        + "".join(f"{c.case_number}\n" for c in (done, failing, skipped))
        + "NO-SUCH-CASE\n"
        + f"{done.case_number}\n",
    )
    report = tmp_path / "out" / "report.csv"
    report.parent.mkdir()

    code, out, err = run_batch("accept", "--csv", path, "--report", str(report))

    assert code == 1 and "1 case(s) failed" in err
    rows = list(csv.DictReader(io.StringIO(report.read_text())))
    assert list(rows[0]) == ["line", "case_id", "case_number", "mrn", "action", "outcome", "detail"]
    got = [(r["line"], r["case_number"], r["outcome"]) for r in rows]
    assert got == [
        ("2", done.case_number, "done"),
        ("3", failing.case_number, "failed"),
        ("4", skipped.case_number, "skipped"),
        ("5", "", "skipped"),
        ("6", done.case_number, "skipped"),
    ]
    assert rows[0]["case_id"] == str(done.pk) and rows[0]["mrn"] == done.patient.mrn
    assert all(r["action"] == "accept" for r in rows)
    assert rows[0]["detail"] == "ClinCheck accepted by Align (APPROVED)"
    assert "Status code: 422 (SCREENSHOT.UNREADABLE" in rows[1]["detail"]
    assert rows[2]["detail"] == "no aligner purchase is recorded for this case"
    assert rows[3]["detail"] == "no case with case_number 'NO-SUCH-CASE'"
    assert rows[4]["detail"] == f"duplicate: case {done.case_number} is already on line 2"
    assert f"Report: {report}" in out
    # No patient details anywhere (names, email); case numbers and MRNs only.
    for text in (out, err, report.read_text()):
        assert "Jane" not in text and "Doe" not in text and "@example.com" not in text


def test_plain_lines_when_not_a_terminal_and_a_bar_on_one(simulator, flags_on):
    first = [ready_to_accept(simulator) for _ in range(2)]
    code, out, _ = run_batch("accept")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [line[:6] for line in lines] == ["[1/2] ", "[2/2] "]
    assert sorted(line[6:] for line in lines) == sorted(f"{c.case_number} accepted" for c in first)
    assert "\r" not in out

    ready_to_accept(simulator)
    terminal = Terminal()
    code, out, _ = run_batch("accept", stdout=terminal)
    assert code == 0
    assert "\r[" + "#" * 30 + "] 1/1  done 1  skipped 0  failed 0" in out
    assert "[1/1] " not in out  # no per-case lines on a terminal, unless one failed


def test_interrupting_a_run_reports_the_cases_not_started(db, flags_on):
    rows = batch.rows_from_ids([make_case(state=wf.PLAN_RECEIVED).pk for _ in range(3)])
    seen = []

    def stop_after_first(outcome):
        seen.append(outcome)
        raise KeyboardInterrupt

    outcomes, interrupted = batch.run(batch.ACTIONS["accept"], rows, on_outcome=stop_after_first)
    assert interrupted and len(seen) == 1
    assert [o.detail for o in outcomes[1:]] == ["not run: the batch was interrupted"] * 2


# --- parallelism ----------------------------------------------------------------------------------


def test_sqlite_sends_one_case_at_a_time_and_says_so(simulator, flags_on, settings):
    ready_to_accept(simulator)
    code, out, err = run_batch("accept", "--concurrency", "8")
    assert code == 0
    from django.db import connection

    if connection.vendor == "sqlite":
        assert "one at a time" in err and "(1 at a time)" in out
    else:
        assert err == "" and "(8 at a time)" in out


def _most_accepts_in_flight(simulator):
    """The largest number of accept requests the simulator was serving at one moment."""
    from datetime import datetime, timedelta

    edges = []
    for entry in simulator.requests():
        if entry["method"] == "PUT" and entry["path"].endswith("/accept"):
            end = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
            edges += [(end - timedelta(milliseconds=entry["duration_ms"]), 1), (end, -1)]
    most = current = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        current += step
        most = max(most, current)
    return most


def test_concurrency_sends_cases_in_parallel(require_postgres, simulator, flags_on):
    """With 200 ms per request, eight workers have several accepts in flight at once; one
    worker (the negative control) never has more than one."""
    serial = [ready_to_accept(simulator) for _ in range(8)]
    parallel = [ready_to_accept(simulator) for _ in range(8)]
    simulator.config(latency_ms=200)

    code, _, err = run_batch("accept", "--concurrency", "1", "--case-ids", ",".join(str(c.pk) for c in serial))
    assert code == 0, err
    assert _most_accepts_in_flight(simulator) == 1

    code, out, err = run_batch("accept", "--concurrency", "8", "--case-ids", ",".join(str(c.pk) for c in parallel))
    assert code == 0, err
    assert _most_accepts_in_flight(simulator) >= 2

    assert all(state_of(c) == wf.ACCEPTED for c in serial + parallel)
    assert effects(simulator, "accepts") == {"accepts": 16}
    assert sorted(line.split("] ")[1] for line in out.splitlines() if line.startswith("[")) == sorted(
        f"{c.case_number} accepted" for c in parallel
    )


def test_each_worker_thread_keeps_one_connection_for_the_run_and_closes_it_at_the_end(
    require_postgres, simulator, flags_on
):
    """Twelve cases on four threads open at most four connections, not twelve, and none
    is left open when the command returns."""
    cases = [ready_to_accept(simulator) for _ in range(12)]
    opened = []

    def created(sender, connection, **kwargs):
        if threading.current_thread().name.startswith("align-batch"):
            opened.append(connection)

    connection_created.connect(created)
    try:
        code, _, err = run_batch("accept", "--concurrency", "4", "--case-ids", ",".join(str(c.pk) for c in cases))
    finally:
        connection_created.disconnect(created)

    assert code == 0, err
    assert all(state_of(c) == wf.ACCEPTED for c in cases)
    assert 1 <= len(opened) <= 4
    assert all(own.connection is None for own in opened)


def test_a_screenshot_added_later_is_sent_by_a_fresh_accept(simulator, flags_on):
    """Re-running accept after a newer screenshot was stored sends the newer one (a new key)."""
    case = ready_to_accept(simulator)
    simulator.fault(route="PUT /orders/{caseId}/accept", status=503, count=1)
    assert run_batch("accept")[0] == 1
    newer = with_screenshot(case)
    code, out, err = run_batch("accept")
    assert code == 0, err
    assert simulator.state()["orders"][0]["plans"][-1]["screenshot"]["external_key"] == newer.external_key


def test_log_lines_to_a_terminal_are_held_back_while_the_bar_is_drawn():
    import logging

    from align_workflow.workflow.management.commands.align_batch import terminal_logs_quiet

    on_terminal, in_a_file = Terminal(), io.StringIO()
    logger = logging.getLogger("align_workflow.batch-test")
    handlers = [logging.StreamHandler(on_terminal), logging.StreamHandler(in_a_file)]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        with terminal_logs_quiet():
            logger.warning("one line per request")
            logger.error("an error")
        logger.warning("after the bar")
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    assert on_terminal.getvalue() == "an error\nafter the bar\n"
    assert in_a_file.getvalue() == "one line per request\nan error\nafter the bar\n"
