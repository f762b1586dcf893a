"""align_batch given hostile input: ids that only look like digits, report cells that a
spreadsheet would run, terminal control characters in what is printed, and cases left
in flight by a process that was killed."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from align_workflow.cases.models import Case
from align_workflow.workflow import batch
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.batch import Terminal, effects, ready_to_accept, run_batch, write_csv

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("ids", ["²", "1,²", "١٢", "１２"])
def test_case_ids_that_are_digits_only_outside_ascii_are_refused_with_a_message(simulator, flags_on, ids):
    ready_to_accept()
    code, out, err = run_batch("accept", "--case-ids", ids)
    assert code == 2, (code, out, err)
    assert "is not a case id" in err and "Nothing was sent." in err
    assert "Traceback" not in err and "ValueError" not in err
    assert simulator.requests() == []


def test_a_superscript_digit_in_a_csv_id_column_is_a_skipped_row(simulator, flags_on, tmp_path):
    good = ready_to_accept(simulator)
    code, out, err = run_batch("accept", "--csv", write_csv(tmp_path, f"case_id\n²\n{good.pk}\n"))
    assert code == 0, err
    assert "line 2 skipped: case_id '²' is not a case id (a whole number)" in out
    assert f"{good.case_number} accepted" in out
    assert effects(simulator, "accepts") == {"accepts": 1}


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1+1", "\r=1+1", "\t", "\rx"])
def test_report_cells_a_spreadsheet_would_run_are_neutralised(value):
    row = batch.Row(label="line 2", line=2)
    handle = io.StringIO()
    batch.write_report(handle, [batch.RowOutcome(row, "accept", batch.SKIPPED, value)])
    detail = list(csv.DictReader(io.StringIO(handle.getvalue())))[0]["detail"]
    assert detail == "'" + value


def test_control_characters_in_case_numbers_are_escaped_on_the_terminal(simulator, flags_on):
    hostile = ready_to_accept(purchased=False, case_number="C1\x1b[2J\x1b]0;pwned\x07\u202eX")
    for stdout in (None, Terminal()):
        code, out, err = run_batch("accept", "--case-ids", str(hostile.pk), stdout=stdout)
        assert code == 0, err
        out = out.replace("\x1b[K", "")  # the progress bar's own "clear to the end of the line"
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in out and raw not in err
        assert "C1\\x1b[2J\\x1b]0;pwned\\x07\\u202eX" in out


def test_a_case_left_in_flight_by_a_killed_run_is_reported_in_progress_elsewhere(simulator, flags_on):
    """kill -9 of align_batch leaves the case claimed and its attempt in flight until the
    lease runs out; a re-run must not call that 'skipped' and exit 0."""
    case = ready_to_accept(simulator)
    until = timezone.now() + timedelta(minutes=2)
    Case.objects.filter(pk=case.pk).update(busy_with="accept_clincheck", busy_until=until)
    OutboundAttempt.objects.create(
        case=case,
        step="accept_clincheck",
        idempotency_key=f"k-{case.pk}",
        attempt=1,
        status=OutboundAttempt.Status.IN_FLIGHT,
        claimed_until=until,
    )
    other = ready_to_accept(simulator)

    code, out, err = run_batch("accept", "--case-ids", f"{case.pk},{other.pk}")

    assert code == 1, (code, out, err)
    assert f"{case.case_number} in progress elsewhere" in out
    assert f"{other.case_number} accepted" in out
    assert "1 in progress elsewhere" in out
    assert "in progress elsewhere" in err and "run the same command again" in err
    assert effects(simulator, "accepts") == {"accepts": 1}
    assert Case.objects.get(pk=case.pk).state == wf.PROVIDER_APPROVED
