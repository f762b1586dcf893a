"""CSV exports: the staff list with its filters (/staff/export.csv) and a case's history."""

import csv
import io
from datetime import timedelta

import pytest
from django.conf import settings as conf
from django.db.models.signals import post_init
from django.shortcuts import resolve_url
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, CaseNote, Patient, Prescription
from align_workflow.integration.models import InboundEvent
from states import align_case as wf
from tests.support.factories import PatientFactory, ProviderFactory, make_case

pytestmark = pytest.mark.django_db


def rows_of(response):
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def numbers(rows):
    return sorted(r[0] for r in rows[1:])


def test_filters_in_the_address_are_honoured(staff_client, settings):
    settings.ALIGN_STUCK_AFTER_SECONDS = 3600
    old = timezone.now() - timedelta(hours=3)
    make_case(case_number="C-PLAN-1", state=wf.PLAN_RECEIVED)
    make_case(case_number="C-PLAN-OLD", state=wf.PLAN_RECEIVED, state_changed_at=old)
    make_case(case_number="C-SHIP", state=wf.SHIPPING)
    make_case(case_number="C-ATT", state=wf.ASSETS_UPLOADED, needs_attention=True)
    make_case(case_number="C-OTHER", lab=Prescription.Lab.OTHER)
    assert numbers(rows_of(staff_client.get("/staff/export.csv"))) == [
        "C-ATT",
        "C-PLAN-1",
        "C-PLAN-OLD",
        "C-SHIP",
    ]
    assert numbers(rows_of(staff_client.get("/staff/export.csv?state=plan_received"))) == ["C-PLAN-1", "C-PLAN-OLD"]
    assert numbers(rows_of(staff_client.get("/staff/export.csv?state=plan_received&stuck=on"))) == ["C-PLAN-OLD"]
    assert numbers(rows_of(staff_client.get("/staff/export.csv?attention=on"))) == ["C-ATT"]
    assert numbers(rows_of(staff_client.get("/staff/export.csv?other_labs=on"))) == ["C-OTHER"]


def test_the_lists_order_is_the_exports_order(staff_client):
    for number in ("C-B", "C-C", "C-A"):
        make_case(case_number=number)
    ascending = [r[0] for r in rows_of(staff_client.get("/staff/export.csv?sort=case"))[1:]]
    descending = [r[0] for r in rows_of(staff_client.get("/staff/export.csv?sort=-case"))[1:]]
    assert ascending == ["C-A", "C-B", "C-C"] and descending == ["C-C", "C-B", "C-A"]


def test_a_search_is_exported_by_its_opaque_id(staff_client):
    make_case(case_number="C-1", patient=PatientFactory(last_name="Quenneville"))
    make_case(case_number="C-2", patient=PatientFactory(last_name="Smith"))
    response = staff_client.post("/staff/", {"q": "quenne"})
    search = response["Location"].split("?", 1)[1]
    page = staff_client.get(response["Location"]).content.decode()
    assert f'href="/staff/export.csv?{search}"' in page  # the page links to the same list
    rows = rows_of(staff_client.get(f"/staff/export.csv?{search}"))
    assert numbers(rows) == ["C-1"]
    assert rows[1][1] == "Quenneville"


def test_bad_filters_are_refused(staff_client):
    response = staff_client.get("/staff/export.csv?state=nonsense")
    assert response.status_code == 400
    assert "nothing was exported" in response.content.decode()
    response = staff_client.get("/staff/export.csv?q=smith")  # names never in an address
    assert response.status_code == 400
    assert "search box" in response.content.decode()
    response = staff_client.get("/staff/export.csv?s=unknown")
    assert response.status_code == 404
    assert "no longer available" in response.content.decode()


def test_formula_cells_are_neutralised(staff_client):
    patient = PatientFactory(first_name='=HYPERLINK("http://x")', last_name="+SUM(A1)", mrn="@MRN1")
    make_case(case_number="-2+3", patient=patient, provider=ProviderFactory(account_name="\tTabbed"))
    other = PatientFactory(first_name="\rCarriage", last_name="Plain-Name", mrn="M-5")
    make_case(case_number="C-9", patient=other)
    rows = {r[0]: r for r in rows_of(staff_client.get("/staff/export.csv"))[1:]}
    assert rows["'-2+3"][1:5] == ["'+SUM(A1)", '\'=HYPERLINK("http://x")', "'@MRN1", "'\tTabbed"]
    assert rows["C-9"][1:4] == ["Plain-Name", "'\rCarriage", "M-5"]  # only a first character counts


def test_the_same_access_as_the_page(client, provider_client):
    case = make_case()
    for url in ("/staff/export.csv", f"/staff/cases/{case.pk}/history.csv"):
        assert provider_client.get(url).status_code == 403
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(resolve_url(conf.LOGIN_URL))


def test_filename_and_caching_carry_no_patient_data(staff_client):
    case = make_case(case_number="C-77", patient=PatientFactory(last_name="Zabriskie", mrn="MRN-UNIQUE-9"))
    response = staff_client.get("/staff/export.csv?state=eligible")
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="cases-') and disposition.endswith('.csv"')
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    response = staff_client.get(f"/staff/cases/{case.pk}/history.csv")
    assert response["Content-Disposition"] == 'attachment; filename="case-C-77-history.csv"'
    for part in ("Zabriskie", "MRN-UNIQUE-9"):
        assert part not in response["Content-Disposition"]


def test_ten_thousand_rows_are_streamed_not_loaded(staff_client):
    provider = ProviderFactory()
    patients = Patient.objects.bulk_create(
        [Patient(first_name="P", last_name=f"L{i}", date_of_birth="1990-01-01", mrn=f"M{i:06d}") for i in range(10000)]
    )
    cases = Case.objects.bulk_create([Case(case_number=f"B{i:06d}", patient=p) for i, p in enumerate(patients)])
    Prescription.objects.bulk_create([Prescription(case=c, provider=provider) for c in cases])
    made = []

    def count(sender, **kwargs):
        made.append(1)

    post_init.connect(count, sender=Case)
    try:
        response = staff_client.get("/staff/export.csv")
        assert response.streaming
        assert not made  # nothing is read before the download starts
        lines = iter(response.streaming_content)
        first = [next(lines) for _ in range(101)]  # header and 100 rows
        assert first[0].startswith(b"case number,")
        # Read in chunks: the first rows cost one chunk, not the whole list.
        assert 100 <= len(made) <= 2000
        rest = list(lines)
    finally:
        post_init.disconnect(count, sender=Case)
    assert len(first) + len(rest) == 10001
    assert len(made) == 10000


def test_case_history_has_states_notes_calls_and_events(staff_client, staff):
    case = make_case(case_number="C-H1")
    start = timezone.now() - timedelta(days=2)
    StateLog.objects.create(
        content_object=case,
        timestamp=start,
        source_state=wf.ELIGIBLE,
        state=wf.PATIENT_CREATED,
        transition="create_patient",
        by=staff,
    )
    CaseNote.objects.create(case=case, text="=cmd|' /C calc'!A0", created=start + timedelta(hours=1))
    InboundEvent.objects.create(
        case=case,
        event_id="evt-1",
        type=InboundEvent.Type.values[0],
        received_at=start + timedelta(hours=2),
        occurred_at=start + timedelta(hours=2),
        payload={},
        raw_body="{}",
    )
    rows = rows_of(staff_client.get(f"/staff/cases/{case.pk}/history.csv"))
    assert rows[0] == ["when", "kind", "what", "detail", "by"]
    kinds = [r[1] for r in rows[1:]]
    assert kinds == ["state", "note", "event from Align"]  # oldest first
    assert rows[1][2] == "create patient: eligible → patient created"
    assert rows[1][4] == staff.get_username()
    assert rows[2][3] == "'=cmd|' /C calc'!A0"
    assert rows[3][2].startswith(InboundEvent.Type.values[0])
    assert staff_client.get("/staff/cases/999999/history.csv").status_code == 404
    page = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert f'href="/staff/cases/{case.pk}/history.csv"' in page
