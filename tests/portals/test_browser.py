"""The portals in a real browser (headless Chromium) against the live app and the
Align simulator: staff sends a case, the provider asks for a revision and approves,
staff confirms the purchase, Align ships it."""

import pytest
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Prescription
from states import align_case as wf
from tests.factories import ProviderFactory, StaffFactory, make_case

from .browser import browser, portal  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def flags():
    # A transactional test starts from an emptied database: the flags' migration rows are gone.
    for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
        get_waffle_flag_model().objects.update_or_create(name=name, defaults={"everyone": True})


def test_provider_cannot_open_another_providers_case_and_failed_criteria_hide_send(portal, flags):
    staff = StaffFactory()
    mine, theirs = ProviderFactory(), ProviderFactory()
    other_case = make_case(provider=theirs, state=wf.PLAN_RECEIVED)
    own_case = make_case(provider=mine, state=wf.PLAN_RECEIVED)
    in_house = make_case(provider=mine, lab=Prescription.Lab.IN_HOUSE)

    provider = portal(mine.user.username)
    provider.page.wait_for_url("**/provider/")
    assert own_case.case_number in provider.page.content()
    assert other_case.case_number not in provider.page.content()
    provider.screenshot("provider-case-list")
    response = provider.open(f"/provider/cases/{other_case.pk}/")
    assert response.status == 404
    assert other_case.patient.mrn not in provider.page.content()
    assert provider.open(f"/staff/cases/{in_house.pk}/").status == 403

    clinic = portal(staff.username)
    clinic.page.wait_for_url("**/staff/")
    clinic.open(f"/staff/cases/{in_house.pk}/")
    assert clinic.page.locator("#send-button").count() == 0
    failed = clinic.page.locator("#checklist li.fail")
    assert failed.count() == 1
    assert "Prescription lab is Align" in failed.inner_text()
    assert "prescribed to In-house, not Align" in failed.inner_text()
    assert "until every item above is ticked" in clinic.page.locator("#send-unavailable").inner_text()
    clinic.screenshot("staff-case-criterion-fails")
