"""`manage.py align_batch` given bad input: a file that cannot be used is refused as a
whole (exit status 2, nothing sent); unknown, ambiguous and repeated rows in a usable
file are skipped with a reason while the others are done.

Every test runs with the simulator and ends by checking what reached it."""

import pytest

from align_workflow.cases.models import Case
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.batch import effects, notes, ready_to_accept, run_batch, write_csv
from tests.support.factories import PatientFactory, make_case

pytestmark = pytest.mark.django_db(transaction=True)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
XLSX = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"[Content_Types].xml" + b"\x00" * 20


@pytest.fixture
def ready(simulator, flags_on):
    """One case ready to accept; the bad input must not send it."""
    return ready_to_accept()


def refused(simulator, code, out, err, *expected):
    """Exit status 2, the message names the problem, and nothing was sent or written."""
    assert code == 2, (code, out, err)
    for text in expected:
        assert text in err, err
    assert "Nothing was sent." in err
    assert simulator.requests() == []
    assert not OutboundAttempt.objects.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"  \n\n \r\n", "is empty"),
        (b"case_id\n", "has a header row but no rows"),
        (b"case_id\n\n,\n", "has a header row but no rows"),
        (PNG, "is not a CSV file (it holds binary data"),
        (XLSX, "is not a CSV file (it holds binary data"),
        ("case_id,comments\n1,Caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
        (b"ident,number\n1,2\n", "the first line must be a header row naming a case_id (or id), case_number or mrn"),
        (b"case_id,first_name,state\n1,Jane,IL\n", "unknown column(s) 'first_name', 'state'"),
        (b"case_id,case_id\n1,1\n", "column(s) case_id appear more than once"),
        (b'case_id\n"1\n', "is not valid CSV"),
    ],
)
def test_an_unusable_file_is_refused_as_a_whole(simulator, ready, tmp_path, content, message):
    code, out, err = run_batch("accept", "--csv", write_csv(tmp_path, content))
    refused(simulator, code, out, err, message)
    assert Case.objects.get(pk=ready.pk).state == wf.PROVIDER_APPROVED and not notes(ready)


def test_a_file_without_a_header_row_is_refused_without_echoing_its_data(simulator, ready, tmp_path):
    path = write_csv(tmp_path, f"{ready.pk},Jane,Doe,1990-05-17\n")
    code, out, err = run_batch("accept", "--csv", path)
    refused(simulator, code, out, err, "its 4 column(s) name none of them", "without a header row is refused")
    assert "Jane" not in err + out and "1990" not in err + out


def test_comments_are_an_unknown_column_outside_revise(simulator, ready, tmp_path):
    path = write_csv(tmp_path, f"case_id,comments\n{ready.pk},Looks good\n")
    code, out, err = run_batch("accept", "--csv", path)
    refused(
        simulator, code, out, err, "unknown column(s) 'comments'; this command reads only case_id, case_number, mrn"
    )


def test_a_misspelt_comments_column_is_refused_rather_than_defaulted(simulator, flags_on, tmp_path):
    case = make_case(state=wf.PLAN_RECEIVED)
    path = write_csv(tmp_path, f"case_id,coments\n{case.pk},Less IPR\n")
    code, out, err = run_batch("revise", "--csv", path)
    refused(
        simulator,
        code,
        out,
        err,
        "unknown column(s) 'coments'; this command reads only case_id, case_number, mrn, comments",
    )


def test_a_missing_file_and_a_directory(simulator, ready, tmp_path):
    code, out, err = run_batch("accept", "--csv", str(tmp_path / "nope.csv"))
    refused(simulator, code, out, err, "nope.csv: no such file.")
    code, out, err = run_batch("accept", "--csv", str(tmp_path))
    refused(simulator, code, out, err, "is a directory, not a CSV file")


@pytest.mark.parametrize(
    "ids, message",
    [
        ("1,x,3", "--case-ids: 'x' is not a case id"),
        ("C000001", "'C000001' is not a case id (case ids are whole numbers; for case numbers or MRNs use --csv)"),
        (" , ", "--case-ids names no case"),
    ],
)
def test_bad_case_ids_are_refused(simulator, ready, ids, message):
    code, out, err = run_batch("accept", "--case-ids", ids)
    refused(simulator, code, out, err, message)


def test_an_unwritable_report_path_is_refused_before_anything_is_sent(simulator, ready, tmp_path):
    code, out, err = run_batch("accept", "--report", str(tmp_path / "no-such-dir" / "report.csv"))
    refused(simulator, code, out, err, "--report", "cannot write it")
    assert Case.objects.get(pk=ready.pk).state == wf.PROVIDER_APPROVED


def test_csv_and_case_ids_together_are_refused(simulator, ready, tmp_path):
    code, out, err = run_batch("accept", "--csv", write_csv(tmp_path, "case_id\n1\n"), "--case-ids", "1")
    assert code != 0 and "not allowed with argument" in err
    assert simulator.requests() == []


def test_bad_rows_in_a_usable_file_are_skipped_and_the_others_done(simulator, flags_on, tmp_path):
    good = ready_to_accept(simulator)
    twin_patient = PatientFactory()
    twins = [ready_to_accept(patient=twin_patient), ready_to_accept(simulator, patient=twin_patient)]
    other = ready_to_accept()
    path = write_csv(
        tmp_path,
        "\n".join(
            [
                "Case_ID;MRN;case-number",  # semicolons, any case, a hyphen
                f"{good.pk};;",  # line 2: done
                "999999;;",  # line 3: unknown id
                ";NO-SUCH-MRN;",  # line 4: unknown MRN
                "abc;;",  # line 5: not a number
                f";{twin_patient.mrn};",  # line 6: an MRN with two cases
                f"{good.pk};{other.patient.mrn};",  # line 7: two columns naming different cases
                f";;{good.case_number}",  # line 8: a duplicate of line 2
                ";;",  # line 9: blank: ignored
                f";{good.patient.mrn};;extra",  # line 10: more values than columns
                f";{twin_patient.mrn};{twins[1].case_number}",  # line 11: the MRN and case number agree: fine
            ]
        )
        + "\n",
    )

    code, out, err = run_batch("accept", "--csv", path)

    assert code == 0, err
    assert f"] {good.case_number} accepted" in out
    expected = [
        "line 3 skipped: no case with case_id '999999'",
        "line 4 skipped: no case with mrn 'NO-SUCH-MRN'",
        "line 5 skipped: case_id 'abc' is not a case id (a whole number)",
        f"line 6 skipped: mrn '{twin_patient.mrn}' has 2 cases ({twins[0].case_number}, {twins[1].case_number}); "
        "give the case_id or case_number",
        f"line 7 skipped: the MRN on line 7 does not match the patient of case {good.case_number} "
        f"(case_id '{good.pk}'); check the file (nothing sent)",
        f"{good.case_number} skipped: duplicate: case {good.case_number} is already on line 2",
        "line 10 skipped: line 10 has more values than the header has named columns",
    ]
    for text in expected:
        assert text in out, out
    assert f"] {twins[1].case_number} accepted" in out
    assert "Done: 2 accepted, 7 skipped, 0 failed" in out
    assert effects(simulator, "accepts") == {"accepts": 2}
    assert other.patient.mrn not in out  # a mismatching MRN is never printed
    assert Case.objects.get(pk=twins[0].pk).state == wf.PROVIDER_APPROVED and not notes(twins[0])
    assert Case.objects.get(pk=other.pk).state == wf.PROVIDER_APPROVED and not notes(other)


def test_unknown_and_repeated_case_ids_are_skipped(simulator, flags_on):
    good = ready_to_accept(simulator)
    code, out, err = run_batch("accept", "--case-ids", f"{good.pk}, 424242 ,{good.pk}")
    assert code == 0, err
    assert f"{good.case_number} accepted" in out
    assert "case id 424242 skipped: no case with case_id '424242'" in out
    assert f"skipped: duplicate: case {good.case_number} is already earlier in the list" in out
    assert effects(simulator, "accepts") == {"accepts": 1}


def test_a_flag_that_is_off_skips_every_case_and_says_which(simulator, db, tmp_path):
    from waffle import get_waffle_flag_model

    get_waffle_flag_model().objects.update_or_create(name=wf.FLAG_SET_ORDER_STATUS, defaults={"everyone": False})
    case = ready_to_accept()
    code, out, err = run_batch("accept")
    assert code == 0
    assert f"{case.case_number} skipped: The 'set-align-order-status' flag is off" in out
    assert simulator.requests() == []
