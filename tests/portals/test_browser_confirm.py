"""In a real browser (headless Chromium): the confirmation dialogs before Approve,
Aligners purchased and Cancel (going back sends nothing, "Yes" sends), the page that asks
instead when JavaScript is off, and a refused action's plain sentence whose link leads to
where it is fixed."""

import pytest
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Case, CaseAsset, CaseNote, Patient, TreatmentPlan
from states import align_case as wf
from tests.support.browser import VIEWPORT, Portal
from tests.support.factories import ProviderFactory, StaffFactory, make_case

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _flags(**on):
    for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
        get_waffle_flag_model().objects.update_or_create(name=name, defaults={"everyone": on.get(name, True)})


def _dialog(tab, action):
    return tab.page.locator(f"dialog#confirm-{action}")


def test_cancel_asks_in_a_dialog_going_back_sends_nothing_yes_cancels(portal):
    from playwright.sync_api import expect

    _flags()
    case = make_case(state=wf.PLAN_RECEIVED)
    clinic = portal(StaffFactory().username)
    clinic.open(f"/staff/cases/{case.pk}/")
    clinic.page.click("details.cancel summary")
    clinic.page.fill("#id_reason", "Patient moved abroad")
    clinic.page.click("#cancel-button")

    dialog = _dialog(clinic, "cancel")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Align is not told.")
    expect(dialog.locator("[data-confirm-no]")).to_be_focused()  # the safe answer has the focus
    clinic.screenshot("staff-cancel-dialog")
    dialog.locator("[data-confirm-no]").click()
    expect(dialog).to_be_hidden()
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    assert clinic.page.url.endswith(f"/staff/cases/{case.pk}/")
    expect(clinic.page.locator("#id_reason")).to_have_value("Patient moved abroad")  # nothing typed is lost

    clinic.page.click("#cancel-button")
    clinic.page.keyboard.press("Escape")  # Escape is "no" as well
    expect(dialog).to_be_hidden()
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED

    clinic.page.click("#cancel-button")
    dialog.locator("[data-confirm-yes]").click()
    expect(clinic.page.locator(".msg-success")).to_contain_text("Align was not told")
    assert Case.objects.get(pk=case.pk).state == wf.CANCELLED


def test_aligners_purchased_asks_first_and_says_what_goes_to_align(portal):
    from playwright.sync_api import expect

    _flags(**{wf.FLAG_SET_ORDER_STATUS: False})  # the purchase is recorded; nothing goes to Align
    case = make_case(state=wf.PROVIDER_APPROVED)
    clinic = portal(StaffFactory().username)
    clinic.open(f"/staff/cases/{case.pk}/")
    clinic.page.click("#purchased-button")
    dialog = _dialog(clinic, "purchased")
    expect(dialog).to_contain_text("is not sent to Align yet")
    dialog.locator("[data-confirm-no]").click()
    assert Case.objects.get(pk=case.pk).aligners_purchased_at is None

    clinic.page.click("#purchased-button")
    dialog.locator("[data-confirm-yes]").click()
    expect(clinic.page.locator(".msg-info")).to_contain_text("Aligner purchase recorded.")
    expect(clinic.page.locator(".msg-info")).not_to_contain_text(wf.FLAG_SET_ORDER_STATUS)  # the flag's name...
    expect(clinic.page.locator(".msg-info .techcode")).to_have_attribute("title", _contains(wf.FLAG_SET_ORDER_STATUS))
    assert Case.objects.get(pk=case.pk).aligners_purchased_at is not None


def _contains(text):
    import re

    return re.compile(re.escape(text))


def test_approve_asks_first_going_back_stores_nothing(browser, live_server, settings, tmp_path):
    from playwright.sync_api import expect

    settings.MEDIA_ROOT = tmp_path
    _flags()
    doctor = ProviderFactory()
    case = make_case(provider=doctor, state=wf.PLAN_RECEIVED)
    TreatmentPlan.objects.create(case=case, plan_id=f"TP-{case.pk}-1", version=1, stages_upper=10, stages_lower=9)
    tab = Portal(browser, live_server.url).sign_in(doctor.user.username)
    try:
        tab.page.wait_for_url("**/provider/")
        tab.open(f"/provider/cases/{case.pk}/")
        tab.page.click("#approve-button")
        dialog = _dialog(tab, "approve")
        expect(dialog).to_contain_text("Nothing goes to Align yet")
        dialog.locator("[data-confirm-no]").click()
        expect(dialog).to_be_hidden()
        expect(tab.page.locator("#approve-button")).to_be_enabled()
        assert not CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN).exists()
        assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED

        tab.page.click("#approve-button")
        dialog.locator("[data-confirm-yes]").click()
        expect(tab.page.locator(".pagehead .state")).to_have_text(wf.state_label(wf.PROVIDER_APPROVED))
        assert CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN).count() == 1
    finally:
        tab.close()


def test_without_javascript_a_page_asks_before_the_purchase(browser, live_server):
    _flags(**{wf.FLAG_SET_ORDER_STATUS: False})
    staff = StaffFactory()
    case = make_case(state=wf.PROVIDER_APPROVED)
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(live_server.url + "/accounts/login/")
        page.fill("#id_username", staff.username)
        page.fill("#id_password", "pw")
        page.click("button[type=submit]")
        page.goto(f"{live_server.url}/staff/cases/{case.pk}/")
        page.click("#purchased-button")
        assert "Confirm the aligner purchase?" in page.locator("h1").inner_text()
        assert Case.objects.get(pk=case.pk).aligners_purchased_at is None  # one click changed nothing
        page.click("#confirm-button")
        assert page.url.endswith(f"/staff/cases/{case.pk}/")
        assert Case.objects.get(pk=case.pk).aligners_purchased_at is not None
        assert CaseNote.objects.filter(case=case, text__startswith="Aligner purchase recorded").count() == 1
    finally:
        context.close()


def test_a_refused_send_says_what_is_missing_and_links_to_the_contact_form(portal):
    from playwright.sync_api import expect

    _flags()
    case = make_case()
    clinic = portal(StaffFactory().username)
    clinic.open(f"/staff/cases/{case.pk}/")
    expect(clinic.page.locator("#contact-form")).to_be_hidden()  # nothing to fix yet: the form is folded
    Patient.objects.filter(pk=case.patient_id).update(phone="")  # meanwhile, someone removed the phone number
    clinic.page.click("#send-button")

    message = clinic.page.locator(".msg-error")
    expect(message).to_contain_text("Nothing was sent to Align: Patient phone number: missing")
    expect(message.locator(".techcode")).to_have_text("guard · create_patient")
    read = message.locator(".msg-text").inner_text() + " " + message.locator(".msg-next").inner_text()
    assert not [word for word in ("create_patient", "can_send_to_align", wf.FLAG_INITIATE_ORDER) if word in read]
    clinic.screenshot("staff-refused-send-plain-words")
    message.get_by_role("link", name="Edit the patient's contact details").click()
    expect(clinic.page.locator("#contact-form")).to_be_visible()
    expect(clinic.page.locator("#id_contact-phone")).to_be_visible()
    assert Case.objects.get(pk=case.pk).state == wf.ELIGIBLE
