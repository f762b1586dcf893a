"""The pre-flight of every call to Align (workflow.preflight.REQUIRED): each field Align
requires, blank or invalid on an otherwise ready case, is named by the checklist (or the
refusal), the engine refuses with code "guard", nothing is recorded and the simulator
receives no request."""

import uuid
from datetime import date, timedelta

import pytest

from align_workflow.cases.models import Case, CaseAsset, CaseNote, PhotoAssessment, Prescription, TreatmentPlan
from align_workflow.workflow import TransitionNotAllowed, fire, send_to_align
from align_workflow.workflow.guards import can_send_to_align
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def align(simulator, app_for_align):
    simulator.config(app_url=app_for_align.url)
    return simulator


def calls_received(sim):
    """Requests the simulator got for the contract's work (a token request is not one)."""
    return [r for r in sim.requests() if r["path"] not in ("/auth/token",)]


# field on the patient, bad value, the checklist group that names it
PATIENT_FIELDS = [
    ("mrn", "", "patient_mrn"),
    ("mrn", "   ", "patient_mrn"),
    ("first_name", "", "patient_name"),
    ("last_name", " ", "patient_name"),
    ("date_of_birth", date.today() + timedelta(days=30), "patient_date_of_birth"),
    ("email", "", "patient_email"),
    ("email", "not-an-email", "patient_email"),
    ("phone", "", "patient_phone"),
    ("phone", "call me", "patient_phone"),
    ("phone", "12", "patient_phone"),
    ("address_line1", "", "patient_address"),
    ("city", "", "patient_address"),
    ("state", "", "patient_address"),
    ("zip_code", "", "patient_address"),
    ("country", "", "patient_address"),
    ("country", "u1", "patient_address"),
]


@pytest.mark.parametrize("field,value,group", PATIENT_FIELDS)
def test_create_patient_field_missing_or_invalid_is_named_and_refused_before_anything_is_sent(
    align, staff, flags_on, field, value, group
):
    case = make_case(**{f"patient__{field}": value})
    failing = [c for c in can_send_to_align(case) if not c.ok]
    assert [c.name for c in failing] == [group]
    if str(value).strip():
        assert str(value).strip() not in failing[0].reason  # the reason never echoes the patient's data

    with pytest.raises(TransitionNotAllowed) as refused:
        send_to_align(case, by=staff)

    assert refused.value.code == "guard"
    assert failing[0].label in str(refused.value)
    assert OutboundAttempt.objects.filter(case=case).count() == 0
    assert calls_received(align) == []
    assert Case.objects.get(pk=case.pk).state == wf.ELIGIBLE


def test_the_checklist_shows_phone_and_address_as_separate_criteria(db):
    case = make_case(patient__phone="", patient__address_line1="", patient__city="")
    failing = {c.label: c.reason for c in can_send_to_align(case) if not c.ok}
    assert set(failing) == {"Patient phone number", "Patient address"}
    assert "street (line 1)" in failing["Patient address"] and "city" in failing["Patient address"]


def test_treatment_option_missing_is_in_the_send_checklist(align, staff, flags_on):
    case = make_case()
    PhotoAssessment.objects.filter(case=case).update(treatment_option="")
    assert [c.name for c in can_send_to_align(case) if not c.ok] == ["treatment_option"]
    with pytest.raises(TransitionNotAllowed) as refused:
        send_to_align(case, by=staff)
    assert refused.value.code == "guard"
    assert calls_received(align) == []


def test_a_complete_case_passes_every_criterion_and_align_takes_it(align, staff, flags_on):
    case = make_case()
    assert all(c.ok for c in can_send_to_align(case))
    result = send_to_align(case, by=staff)
    assert result.ok, result
    assert case.state == wf.ASSETS_UPLOADED


# --- The later steps: the case changed since it was sent ------------------------------------


def _at(state, **extra):
    case = make_case(state=state, **extra)
    Case.objects.filter(pk=case.pk).update(align_pid="P0000001")
    case.refresh_from_db()
    return case


def _screenshot(case, vault_id=None, external_key=None):
    CaseAsset.objects.create(
        case=case,
        kind=CaseAsset.Kind.CCACCEPTSCREEN,
        filename="shot.jpg",
        vault_id=vault_id or str(uuid.uuid4()),
        external_key=external_key or str(uuid.uuid4()),
    )


def _plan(case):
    TreatmentPlan.objects.create(case=case, plan_id="TP1", version=1)


def _order_created_without_stl():
    case = _at(wf.ORDER_CREATED)
    CaseAsset.objects.filter(case=case, kind__in=CaseAsset.STL_KINDS).update(removed=True)
    return case


def _order_created_stl_not_stored():
    case = _at(wf.ORDER_CREATED)
    CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.STL_UPPER).update(vault_id="")
    return case


def _patient_created_without_pid():
    case = make_case(state=wf.PATIENT_CREATED)
    return case


def _patient_created_without_option():
    case = _at(wf.PATIENT_CREATED)
    PhotoAssessment.objects.filter(case=case).update(treatment_option="")
    return case


def _patient_created_lab_changed():
    case = _at(wf.PATIENT_CREATED)
    Prescription.objects.filter(case=case).update(lab=Prescription.Lab.IN_HOUSE)  # behind the model's back
    return case


def _order_created_lab_changed():
    case = _at(wf.ORDER_CREATED)
    Prescription.objects.filter(case=case).update(lab=Prescription.Lab.OTHER)
    return case


def _approved_with_a_nil_screenshot():
    case = _at(wf.PROVIDER_APPROVED)
    _plan(case)
    _screenshot(case, vault_id=str(uuid.uuid4()), external_key="not-a-uuid")
    return case


def _approved_lab_changed():
    case = _at(wf.PROVIDER_APPROVED)
    _plan(case)
    _screenshot(case)
    Prescription.objects.filter(case=case).update(lab=Prescription.Lab.IN_HOUSE)
    return case


def _approved_mrn_blanked():
    case = _at(wf.PROVIDER_APPROVED)
    _plan(case)
    _screenshot(case)
    case.patient.__class__.objects.filter(pk=case.patient_id).update(mrn=" ")
    return case


def _plan_received_lab_changed():
    case = _at(wf.PLAN_RECEIVED)
    _plan(case)
    Prescription.objects.filter(case=case).update(lab=Prescription.Lab.IN_HOUSE)
    return case


LATER = [
    ("create_order", _patient_created_without_pid, "staff", {}, "Align patient id"),
    ("create_order", _patient_created_without_option, "staff", {}, "Treatment option"),
    ("create_order", _patient_created_lab_changed, "staff", {}, "Prescription lab is Align"),
    ("upload_assets", _order_created_without_stl, "staff", {}, "At least two STL files"),
    ("upload_assets", _order_created_stl_not_stored, "staff", {}, "At least two STL files"),
    ("upload_assets", _order_created_lab_changed, "staff", {}, "Prescription lab is Align"),
    ("accept_clincheck", _approved_with_a_nil_screenshot, "staff", {}, "Acceptance screenshot"),
    ("accept_clincheck", _approved_lab_changed, "staff", {}, "Prescription lab is Align"),
    ("accept_clincheck", _approved_mrn_blanked, "staff", {}, "Patient MRN"),
    ("request_revision", _plan_received_lab_changed, "provider", {"comments": "Less IPR"}, "Prescription lab is Align"),
]


@pytest.mark.parametrize(
    "trigger,make,who,params,label", LATER, ids=[f"{t}-{m.__name__.strip('_')}" for t, m, *_ in LATER]
)
def test_a_later_step_refuses_a_case_changed_since_with_a_note_saying_what_to_fix(
    align, staff, flags_on, trigger, make, who, params, label
):
    case = make()
    by = staff if who == "staff" else case.prescription.provider.user
    state = case.state

    with pytest.raises(TransitionNotAllowed) as refused:
        fire(case, trigger, by=by, **params)

    assert refused.value.code == "guard"
    assert label in str(refused.value)
    assert label in [c.label for c in refused.value.criteria]
    assert OutboundAttempt.objects.filter(case=case).count() == 0
    assert calls_received(align) == []
    assert Case.objects.get(pk=case.pk).state == state
    note = CaseNote.objects.filter(case=case).latest("id").text
    assert "was not sent to Align" in note and label in note and "Fix this" in note
