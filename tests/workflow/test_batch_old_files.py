"""The old ad-hoc scripts' CSV files run as they are: `id,medical_record_number` for the
acceptance, `id,medical_record_number,body,comment` for revisions. The MRN is checked
against the case; an empty comment is the old default, sent as the batch's own request."""

import pytest
from django.test import Client
from django_fsm_log.models import StateLog

from align_workflow.workflow import batch
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.batch import known_to_align, ready_to_accept, run_batch, write_csv
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db(transaction=True)


def state_of(case):
    case.refresh_from_db()
    return case.state


def test_the_old_acceptance_file_is_read_and_says_which_columns(simulator, flags_on, tmp_path):
    cases = [ready_to_accept(simulator) for _ in range(2)]
    path = write_csv(tmp_path, "id,medical_record_number\n" + "".join(f"{c.pk},{c.patient.mrn}\n" for c in cases))

    code, out, err = run_batch("accept", "--csv", path)

    assert code == 0, err + out
    assert "Columns read: id (the case id); medical_record_number (the MRN, checked against the case)." in out
    assert all(state_of(c) == wf.ACCEPTED for c in cases)
    assert simulator.state()["effects"]["accepts"] == 2


def test_an_mrn_that_does_not_match_the_case_id_refuses_that_row_only(simulator, flags_on, tmp_path):
    good, wrong = ready_to_accept(simulator), ready_to_accept(simulator)
    other = make_case()
    path = write_csv(
        tmp_path, f"ID,Medical_Record_Number\n{good.pk},{good.patient.mrn}\n{wrong.pk},{other.patient.mrn}\n"
    )

    code, out, err = run_batch("accept", "--csv", path)

    assert code == 0, err + out
    assert state_of(good) == wf.ACCEPTED and state_of(wrong) == wf.PROVIDER_APPROVED
    assert f"line 3 skipped: the MRN on line 3 does not match the patient of case {wrong.case_number}" in out
    assert other.patient.mrn not in out + err
    assert not OutboundAttempt.objects.filter(case=wrong).exists()
    assert simulator.state()["effects"]["accepts"] == 1


def test_the_old_revision_file_sends_the_comment_or_the_old_default_as_the_batch(simulator, flags_on, tmp_path):
    written, empty, in_body = (known_to_align(simulator, make_case(state=wf.PLAN_RECEIVED)) for _ in range(3))
    path = write_csv(
        tmp_path,
        "id,medical_record_number,body,comment\n"
        f"{written.pk},{written.patient.mrn},,Less IPR on 11\n"
        f"{empty.pk},{empty.patient.mrn},,\n"
        f"{in_body.pk},{in_body.patient.mrn},Fewer stages,\n",
    )

    code, out, err = run_batch("revise", "--csv", path)

    assert code == 0, err + out
    assert "body (the revision comment); comment (the revision comment)" in out
    remote = {c["caseId"]: c for c in simulator.state()["orders"]}
    assert remote[written.pk]["plans"][-1]["comments"] == "Less IPR on 11"
    assert remote[empty.pk]["plans"][-1]["comments"] == "Revision Requested." == batch.DEFAULT_COMMENTS
    assert remote[in_body.pk]["plans"][-1]["comments"] == "Fewer stages"
    logs = {c.pk: StateLog.objects.for_(c).get(transition="request_revision") for c in (written, empty)}
    assert logs[written.pk].description == "Revision requested (plan version 1): Less IPR on 11"
    # The batch's default: recorded as align_batch's comment, not the provider's words.
    assert logs[empty.pk].description.startswith("Revision requested by align_batch with its default comment")
    attempt = OutboundAttempt.objects.get(case=empty, step="request_revision")
    assert attempt.params["sent_by"] == "align_batch"

    # The provider sees the batch's default as the batch's, not as "You".
    client = Client()
    client.force_login(empty.prescription.provider.user)
    html = client.get(f"/provider/cases/{empty.pk}/").content.decode()
    assert "You," not in html and "align_batch" in html and "Revision Requested." in html


def test_different_text_in_body_and_comment_skips_the_row(simulator, flags_on, tmp_path):
    case = known_to_align(simulator, make_case(state=wf.PLAN_RECEIVED))
    path = write_csv(tmp_path, f"id,body,comment\n{case.pk},One thing,Another\n")
    code, out, err = run_batch("revise", "--csv", path)
    assert "line 2 has different text under comment and body" in out
    assert state_of(case) == wf.PLAN_RECEIVED and simulator.state()["effects"]["modifies"] == 0


def test_a_provider_sees_earlier_comments_in_full(simulator, flags_on):
    from align_workflow.workflow import fire

    case = known_to_align(simulator, make_case(state=wf.PLAN_RECEIVED))
    provider = case.prescription.provider.user
    long_comment = "Please reduce the movement on 11 and 21. " * 12 + "THE END."
    fire(case, "request_revision", by=provider, comments=long_comment)
    assert len(long_comment) > 300

    client = Client()
    client.force_login(provider)
    html = client.get(f"/provider/cases/{case.pk}/").content.decode()
    assert long_comment in html and "You," in html
