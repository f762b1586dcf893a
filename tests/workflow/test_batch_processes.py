"""align_batch --processes: the cases shared among forked worker processes give the same
report, outcomes, exit status and idempotency as one process."""

import csv
import io
import os

import pytest
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case
from align_workflow.workflow import batch
from align_workflow.workflow.batch import runner
from states import align_case as wf
from tests.support.batch import effects, keys_sent, ready_to_accept, run_batch, write_csv
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db(transaction=True)


def state_of(case):
    return Case.objects.get(pk=case.pk).state


def _input(simulator, tmp_path, name):
    """Six ready cases, one not ready (skipped), one line naming no case (skipped), in one CSV."""
    cases = [ready_to_accept(simulator) for _ in range(6)]
    not_ready = make_case(state=wf.PLAN_RECEIVED)
    ids = [c.pk for c in cases[:3]] + [not_ready.pk, 99999999] + [c.pk for c in cases[3:]]
    return cases + [not_ready], write_csv(tmp_path, "case_id\n" + "\n".join(map(str, ids)) + "\n", name=name)


def _report(path, cases):
    """The report with each run's own case ids, numbers and MRNs replaced by their position."""
    ids = {str(case.pk): f"case{position}" for position, case in enumerate(cases)}
    words = {}
    for position, case in enumerate(cases):
        words[case.case_number] = f"number{position}"
        words[case.patient.mrn] = f"mrn{position}"
    rows = []
    for row in csv.DictReader(io.StringIO(path.read_text())):
        detail = row["detail"]
        for value, placeholder in words.items():
            detail = detail.replace(value, placeholder)
        rows.append((row["line"], ids.get(row["case_id"], row["case_id"]), row["action"], row["outcome"], detail))
    return rows


def _pids_of_workers(monkeypatch, tmp_path):
    """Each case's process id is written to a file (a forked worker inherits the patch);
    a line naming no case is reported by the calling process without a look-up."""
    seen = tmp_path / "pids"
    real = runner.process

    def recording(action, row, **kwargs):
        if not row.problem:
            with open(seen, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        return real(action, row, **kwargs)

    monkeypatch.setattr(runner, "process", recording)
    return lambda: [int(line) for line in seen.read_text().split()]


def test_two_processes_give_the_same_report_and_outcomes_as_one(
    require_postgres, simulator, flags_on, tmp_path, monkeypatch
):
    one_cases, one_csv = _input(simulator, tmp_path, "one.csv")
    two_cases, two_csv = _input(simulator, tmp_path, "two.csv")
    pids = _pids_of_workers(monkeypatch, tmp_path)

    code_one, out_one, err_one = run_batch(
        "accept", "--csv", one_csv, "--processes", "1", "--report", str(tmp_path / "one-report.csv")
    )
    assert set(pids()) == {os.getpid()}
    (tmp_path / "pids").unlink()
    code_two, out_two, err_two = run_batch(
        "accept", "--csv", two_csv, "--processes", "2", "--report", str(tmp_path / "two-report.csv")
    )

    workers = set(pids())
    assert len(workers) == 2 and os.getpid() not in workers  # two forked processes did the work
    assert code_one == code_two == 0, (err_one, err_two)
    assert err_two == ""
    assert _report(tmp_path / "one-report.csv", one_cases) == _report(tmp_path / "two-report.csv", two_cases)
    assert "Done: 6 accepted, 2 skipped, 0 failed" in out_one
    assert "Done: 6 accepted, 2 skipped, 0 failed" in out_two and "in each of 2 processes" in out_two

    def progress(out, cases):  # the per-case lines, in any order, each run's case numbers by position
        lines = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[")]
        for position, case in enumerate(cases):
            lines = [line.replace(case.case_number, f"number{position}") for line in lines]
        return sorted(lines)

    assert progress(out_two, two_cases) == progress(out_one, one_cases)
    assert len(progress(out_two, two_cases)) == 8
    assert all(state_of(c) == wf.ACCEPTED for c in one_cases[:6] + two_cases[:6])
    assert state_of(one_cases[6]) == state_of(two_cases[6]) == wf.PLAN_RECEIVED
    assert effects(simulator, "accepts") == {"accepts": 12}
    for case in two_cases[:6]:  # each sent once
        assert len(keys_sent(simulator, "PUT", f"/orders/{case.pk}/accept")) == 1


def test_with_processes_a_rerun_does_only_what_is_left_and_nothing_is_sent_twice(
    require_postgres, simulator, flags_on, tmp_path
):
    cases = [ready_to_accept(simulator) for _ in range(8)]
    ids = ",".join(str(c.pk) for c in cases)
    simulator.fault(route="PUT /orders/{caseId}/accept", mode="reset_after_commit", count=1)
    simulator.fault(route="PUT /orders/{caseId}/accept", status=503, count=2)

    code, out, err = run_batch("accept", "--case-ids", ids, "--processes", "2", "--concurrency", "2")

    assert code == 1 and "3 case(s) failed" in err
    assert "Done: 5 accepted, 0 skipped, 3 failed" in out
    assert effects(simulator, "accepts") == {"accepts": 6}  # one was done by Align, its answer lost
    lost = [c for c in cases if state_of(c) == wf.PROVIDER_APPROVED]
    assert len(lost) == 3

    code, out, err = run_batch("accept", "--case-ids", ids, "--processes", "2", "--concurrency", "2")

    assert code == 0, err
    assert "Done: 3 accepted, 5 skipped, 0 failed" in out
    assert out.count("skipped: already accepted") == 5
    assert all(state_of(c) == wf.ACCEPTED for c in cases)
    assert effects(simulator, "accepts") == {"accepts": 8}  # the lost answer was replayed, not redone
    for case in cases:
        sent = keys_sent(simulator, "PUT", f"/orders/{case.pk}/accept")
        assert len(sent) == (2 if case in lost else 1) and len(set(sent)) == 1, sent
        assert StateLog.objects.for_(case).filter(transition="accept_clincheck").count() == 1

    code, out, err = run_batch("accept", "--case-ids", ids, "--processes", "2")  # nothing left
    assert code == 0 and out.count("skipped: already accepted") == 8
    assert effects(simulator, "accepts") == {"accepts": 8}


def test_interrupting_a_run_with_processes_reports_what_was_not_started(require_postgres, simulator, flags_on):
    cases = [ready_to_accept(simulator) for _ in range(8)]
    simulator.config(latency_ms=300)
    rows = batch.rows_from_ids([c.pk for c in cases])
    seen = []

    def stop_after_first(outcome):
        seen.append(outcome)
        if len(seen) == 1:
            raise KeyboardInterrupt

    outcomes, interrupted = batch.run(
        batch.ACTIONS["accept"], rows, concurrency=1, processes=2, on_outcome=stop_after_first
    )

    assert interrupted
    not_run = [o for o in outcomes if o.detail == "not run: the batch was interrupted"]
    assert 1 <= len(not_run) <= 8 - 2  # the first case and one in flight in the other process finished
    for outcome in outcomes:  # every outcome says what happened to its case
        accepted = state_of(outcome.row.case) == wf.ACCEPTED
        assert accepted == (outcome.outcome == batch.DONE), (outcome.outcome, outcome.detail)
    assert effects(simulator, "accepts") == {"accepts": 8 - len(not_run)}


def test_a_worker_process_that_dies_leaves_its_unfinished_cases_failed(
    require_postgres, simulator, flags_on, monkeypatch
):
    cases = [ready_to_accept(simulator) for _ in range(6)]
    doomed = cases[0].pk  # the first worker process takes cases 0, 2 and 4
    real = runner.process

    def dies_on_the_doomed_case(action, row, **kwargs):
        if row.case.pk == doomed:
            os._exit(9)
        return real(action, row, **kwargs)

    monkeypatch.setattr(runner, "process", dies_on_the_doomed_case)

    code, out, err = run_batch(
        "accept", "--case-ids", ",".join(str(c.pk) for c in cases), "--processes", "2", "--concurrency", "1"
    )

    assert code == 1 and "3 case(s) failed" in err
    assert "Done: 3 accepted, 0 skipped, 3 failed" in out
    assert "not finished: a worker process stopped (exit code 9)" in out
    assert [state_of(c) == wf.ACCEPTED for c in cases] == [False, True, False, True, False, True]


def test_processes_must_be_one_or_more(db):
    code, _, err = run_batch("accept", "--processes", "0")
    assert code == 2 and "--processes must be 1 or more." in err


def test_sqlite_runs_one_process_and_says_so(db, settings):
    from django.db import connection

    code, out, err = run_batch("accept", "--processes", "2")
    assert code == 0
    if connection.vendor == "sqlite":
        assert "one process sends (--processes 2 needs PostgreSQL)" in err
    else:
        assert err == ""


@pytest.mark.django_db(transaction=False)
def test_inside_a_transaction_one_process_sends_and_says_so():
    """A forked worker would share the caller's open transaction and its connection."""
    from django.db import connection

    assert connection.in_atomic_block
    code, out, err = run_batch("accept", "--processes", "2")
    assert code == 0
    if connection.vendor == "sqlite":
        assert "needs PostgreSQL" in err
    else:
        assert "inside a database transaction, so one process sends (--processes 2)" in err
    assert "in each of" not in out
