"""The portals in plain words: refusals and failed calls with their next step and link,
states by their labels, and a confirmation before Approve, Aligners purchased and Cancel
(a page of its own without JavaScript: nothing irreversible on a single click)."""

import re

import pytest

from align_workflow.cases.models import Case, CaseNote, Patient
from states import align_case as wf
from tests.support.factories import PatientFactory, make_case
from tests.support.fakes import FakeAlign, rejected
from tests.support.pages import messages_of, raw_messages_of

pytestmark = pytest.mark.django_db


# --- confirmations ------------------------------------------------------------------------


def test_cancel_without_confirmation_asks_first_and_changes_nothing(staff_client):
    case = make_case(state=wf.PLAN_RECEIVED)
    response = staff_client.post(f"/staff/cases/{case.pk}/cancel/", {"reason": "Moved abroad"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cancel this case?" in html and "Align is not told." in html
    assert '<input type="hidden" name="confirm" value="1">' in html
    assert '<input type="hidden" name="reason" value="Moved abroad">' in html  # the typed reason is kept
    assert f'href="/staff/cases/{case.pk}/" id="confirm-back"' in html
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED

    response = staff_client.post(f"/staff/cases/{case.pk}/cancel/", {"reason": "Moved abroad", "confirm": "1"})
    assert response.status_code == 302
    assert Case.objects.get(pk=case.pk).state == wf.CANCELLED


def test_cancel_without_a_reason_is_refused_before_any_confirmation(staff_client):
    case = make_case()
    response = staff_client.post(f"/staff/cases/{case.pk}/cancel/", {"reason": " "}, follow=True)
    assert "A reason is required to cancel a case." in messages_of(response)
    assert "Cancel this case?" not in messages_of(response)


def test_aligners_purchased_without_confirmation_records_nothing(staff_client, flags_on, local_effects_only):
    case = make_case(state=wf.PROVIDER_APPROVED)
    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Confirm the aligner purchase?" in html and "is sent to Align" in html
    case.refresh_from_db()
    assert case.aligners_purchased_at is None and case.state == wf.PROVIDER_APPROVED
    assert not CaseNote.objects.filter(case=case).exists()


def test_the_purchase_confirmation_says_the_acceptance_waits_while_switched_off(staff_client):
    case = make_case(state=wf.PROVIDER_APPROVED)
    html = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/").content.decode()
    assert "is not sent to Align yet" in html


def test_the_case_pages_carry_the_dialogs(staff_client, provider_client, provider, flags_on):
    approved = make_case(state=wf.PROVIDER_APPROVED)
    html = staff_client.get(f"/staff/cases/{approved.pk}/").content.decode()
    assert 'data-confirm="confirm-purchased"' in html and '<dialog class="confirm" id="confirm-purchased"' in html
    assert 'data-confirm="confirm-cancel"' in html and '<dialog class="confirm" id="confirm-cancel"' in html
    assert "Align is not told" in html
    assert "/static/portals/confirm.js" in html

    review = make_case(provider=provider, state=wf.PLAN_RECEIVED)
    from align_workflow.cases.models import TreatmentPlan

    TreatmentPlan.objects.create(case=review, plan_id="P-1", version=1, stages_upper=10, stages_lower=10)
    html = provider_client.get(f"/provider/cases/{review.pk}/").content.decode()
    assert 'data-confirm="confirm-approve"' in html and '<dialog class="confirm" id="confirm-approve"' in html


# --- patient details changed after the case was sent ----------------------------------------


def test_a_gender_change_after_sending_says_it_was_not_sent_to_align(staff_client):
    sent = make_case(state=wf.ORDER_CREATED, patient=PatientFactory(gender="U"))
    response = staff_client.post(f"/staff/cases/{sent.pk}/gender/", {"gender": "F"}, follow=True)
    assert (
        "Patient gender set to Female. This change was not sent to Align: Align already has the patient record."
        in messages_of(response)
    )
    fresh = make_case(patient=PatientFactory(gender="U"))
    response = staff_client.post(f"/staff/cases/{fresh.pk}/gender/", {"gender": "F"}, follow=True)
    assert messages_of(response) == ["Patient gender set to Female."]


def test_a_contact_change_after_sending_says_it_was_not_sent_to_align(staff_client):
    case = make_case(state=wf.PLAN_RECEIVED)
    patient = Patient.objects.get(pk=case.patient_id)
    data = {
        f"contact-{name}": getattr(patient, name)
        for name in ("email", "address_line1", "address_line2", "city", "state", "zip_code", "country")
    }
    data["contact-phone"] = "+1 555 010 9999"
    response = staff_client.post(f"/staff/cases/{case.pk}/contact/", data, follow=True)
    assert any("This change was not sent to Align" in m for m in messages_of(response)), messages_of(response)


# --- refusals in plain words ------------------------------------------------------------------


def test_a_purchase_already_accepted_is_information_not_an_error(staff_client, flags_on):
    case = make_case(state=wf.ACCEPTED)
    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"}, follow=True)
    [(level, text)] = raw_messages_of(response)
    assert level < 40, text  # info, not an error
    assert "msg-error" not in response.content.decode()


def test_a_refusal_keeps_the_technical_code_in_small_print(staff_client):
    case = make_case(state=wf.SHIPPING)
    response = staff_client.post(f"/staff/cases/{case.pk}/cancel/", {"reason": "x", "confirm": "1"}, follow=True)
    html = response.content.decode()
    assert re.search(r'<small class="techcode" title="Cannot cancel: [^"]*">wrong_state · cancel</small>', html)
    [message] = messages_of(response)
    assert message.startswith("The case is shipping, so nothing more can be done with it here.")


def test_the_contact_form_opens_from_the_link_of_a_refusal(staff_client):
    case = make_case(state=wf.PLAN_RECEIVED)  # contact details fine: the form is closed
    assert '<details class="contact">' in staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    html = staff_client.get(f"/staff/cases/{case.pk}/?fix=contact").content.decode()
    assert '<details class="contact" open>' in html


@pytest.mark.django_db(transaction=True)
def test_aligns_missing_phone_on_send_links_to_the_contact_form(staff_client, flags_on, monkeypatch, settings):
    from align_workflow.workflow import align_effects

    settings.ALIGN_EXECUTION = "inline"
    fake = FakeAlign()
    monkeypatch.setattr(align_effects, "align_client", lambda: fake)
    fake.fail("create_patient", rejected(400, "REQUEST.MISSING_FIELD", "missing or blank: phone"))
    case = make_case()
    response = staff_client.post(f"/staff/cases/{case.pk}/send/", follow=True)
    [(level, text)] = raw_messages_of(response)
    assert level == 40
    assert "Nothing was sent to Align: Patient phone number missing or not valid for Align." in text
    assert f'<a class="msg-next" href="/staff/cases/{case.pk}/?fix=contact#contact-form">' in text
    assert "REQUEST.MISSING_FIELD · create_patient" in text
    assert "The case stays eligible." in text
    # The Needs attention box says the same, with the stored reason for support in the tooltip.
    box = re.search(r'<p id="attention-reason">(.*?)</p>', response.content.decode(), re.S).group(1)
    assert "Nothing was sent to Align: Patient phone number missing or not valid for Align." in box
    assert f'href="/staff/cases/{case.pk}/?fix=contact#contact-form"' in box
    assert 'title="Create Patient: Bad Align response during Create Patient. Status code: 400' in box


def test_the_send_switch_off_note_names_no_flag_in_its_words(staff_client):
    case = make_case()
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    note = re.search(r'<p class="note" id="send-unavailable">(.*?)<small', html, re.S).group(1)
    assert note.startswith("Sending new cases to Align is switched off at the moment")


# --- states by their labels -------------------------------------------------------------------------


def test_states_show_their_labels_with_the_technical_name_in_the_tooltip(staff_client):
    case = make_case(state=wf.PLAN_RECEIVED)
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert re.search(
        r'<span class="state state-plan_received" title="[^"]*technical name: plan_received\)">'
        r"plan received</span>",
        html,
    )
    listing = staff_client.get("/staff/").content.decode()
    assert ">plan received</span>" in listing and ">plan_received<" not in listing
    assert "plan received <b>1</b>" in listing
