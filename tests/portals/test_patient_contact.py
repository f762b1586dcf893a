"""Staff correct the patient's contact details (phone, email, address) from the case page:
validated as Align validates them, with a case note, never on a case past accepted."""

import pytest

from align_workflow.cases.models import CaseNote, Patient
from align_workflow.workflow.guards import can_send_to_align
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.pages import messages_of

pytestmark = pytest.mark.django_db

GOOD = {
    "contact-phone": "+1 (217) 555-0142",
    "contact-email": "new.address@example.org",
    "contact-address_line1": "12 Elm St",
    "contact-address_line2": "",
    "contact-city": "Peoria",
    "contact-state": "IL",
    "contact-zip_code": "61602",
    "contact-country": "us",
}


def post(client, case, **changes):
    return client.post(f"/staff/cases/{case.pk}/contact/", {**GOOD, **changes}, follow=True)


def test_a_patient_without_phone_and_address_is_fixed_from_the_case_page(staff_client, staff, flags_on):
    case = make_case(patient__phone="", patient__address_line1="", patient__city="")
    page = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'id="contact-form"' in page
    assert 'data-criterion="patient_phone"' in page and 'id="send-button"' not in page

    response = post(staff_client, case)

    patient = Patient.objects.get(pk=case.patient_id)
    assert (patient.phone, patient.city, patient.country) == ("+1 (217) 555-0142", "Peoria", "US")
    assert all(c.ok for c in can_send_to_align(case))
    assert any(m.startswith("Patient contact details saved") for m in messages_of(response))
    note = CaseNote.objects.filter(case=case).latest("id")
    assert note.author == staff and note.text.startswith("Patient contact details corrected: phone")
    for value in ("555-0142", "Peoria", "12 Elm St", "new.address@example.org"):
        assert value not in note.text
    assert 'id="send-button"' in response.content.decode()


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("contact-phone", "call me", "Enter a phone number"),
        ("contact-phone", "", "This field is required"),
        ("contact-email", "nobody", "Enter a valid email address"),
        ("contact-country", "U1", "two-letter code"),
        ("contact-country", "USA", "at most 2 characters"),
        ("contact-city", "  ", "This field is required"),
    ],
)
def test_bad_contact_details_are_refused_with_a_message_and_nothing_changes(staff_client, field, value, message):
    case = make_case()
    before = Patient.objects.filter(pk=case.patient_id).values().get()
    response = post(staff_client, case, **{field: value})
    assert any(message in m for m in messages_of(response))
    assert Patient.objects.filter(pk=case.patient_id).values().get() == before
    assert not CaseNote.objects.filter(case=case).exists()


@pytest.mark.parametrize("state", [wf.ACCEPTED, wf.SHIPPING, wf.CANCELLED])
def test_contact_details_cannot_be_changed_past_accepted(staff_client, state):
    case = make_case(state=state)
    before = Patient.objects.filter(pk=case.patient_id).values().get()
    assert 'id="contact-form"' not in staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    response = post(staff_client, case)
    assert any("can no longer be changed" in m for m in messages_of(response))
    assert Patient.objects.filter(pk=case.patient_id).values().get() == before


def test_a_change_after_sending_says_align_was_not_told(staff_client):
    case = make_case(state=wf.PLAN_RECEIVED)
    post(staff_client, case)
    assert "not sent to Align" in CaseNote.objects.filter(case=case).latest("id").text


def test_the_contact_form_is_post_only_and_for_staff(provider_client):
    case = make_case()
    assert provider_client.post(f"/staff/cases/{case.pk}/contact/", GOOD).status_code in (302, 403, 404)
    assert Patient.objects.get(pk=case.patient_id).city == "Springfield"
