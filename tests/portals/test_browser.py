"""The portals in a real browser (headless Chromium) against the live app and the
Align simulator: staff sends a case, the provider asks for a revision and approves,
staff confirms the purchase, Align ships it."""

import pytest
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Prescription
from states import align_case as wf
from tests.support.browser import ARTIFACTS, Portal, browser, portal  # noqa: F401  (fixtures)
from tests.support.factories import ProviderFactory, StaffFactory, make_case

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def flags():
    # A transactional test starts from an emptied database: the flags' migration rows are gone.
    for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
        get_waffle_flag_model().objects.update_or_create(name=name, defaults={"everyone": True})


def test_provider_cannot_open_another_providers_case_and_failed_criteria_hide_send(portal, browser, live_server,
                                                                                   flags):
    signin = Portal(browser, live_server.url)
    signin.open("/")
    signin.page.wait_for_url("**/accounts/login/")
    signin.screenshot("login")
    signin.close()

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


def _state(tab):
    return tab.page.locator(".current .state, .pagehead .state").first


def test_a_case_from_send_to_shipping(portal, flags, simulator, live_server, settings, require_postgres, tmp_path):
    """(1) staff sends the case; (2) the provider asks for a revision, then approves the new
    version; (3) staff confirms the purchase and Align ships it."""
    import io

    from PIL import Image, ImageStat
    from playwright.sync_api import expect

    from align_workflow.cases.models import CaseAsset
    from align_workflow.integration.vault import get_vault

    settings.MEDIA_ROOT = tmp_path
    settings.APP_BASE_URL = live_server.url
    simulator.connect_app(live_server.url)
    simulator.config(auto_advance=True, delay_ms=400)
    staff = StaffFactory()
    doctor = ProviderFactory()
    case = make_case(provider=doctor)

    # (1) Staff sends an eligible case to Align.
    clinic = portal(staff.username)
    clinic.page.wait_for_url("**/staff/")
    clinic.screenshot("staff-case-list")
    clinic.open(f"/staff/cases/{case.pk}/")
    expect(_state(clinic)).to_have_text(wf.ELIGIBLE)
    clinic.screenshot("staff-case-eligible")
    clinic.page.click("#send-button")
    expect(_state(clinic)).to_have_text(wf.ASSETS_UPLOADED)
    expect(clinic.page.locator(".msg-success")).to_contain_text("Align accepted")
    # The simulator's events arrive; the page notices and reloads itself.
    expect(_state(clinic)).to_have_text(wf.PLAN_RECEIVED, timeout=20_000)
    clinic.screenshot("staff-case-plan-received")

    # (2) The provider asks for a revision, gets version 2, approves it.
    reviewer = portal(doctor.user.username)
    reviewer.page.wait_for_url("**/provider/")
    reviewer.page.click(f"text={case.case_number}")
    expect(reviewer.page.locator("#plan-version")).to_have_text("version 1")
    reviewer.screenshot("provider-plan-review")
    reviewer.page.fill("#id_comments", "Please reduce the IPR on the lower arch.")
    reviewer.page.click("#revision-button")
    expect(_state(reviewer)).to_have_text(wf.REVISION_REQUESTED)
    expect(reviewer.page.locator("#plan-version")).to_have_text("version 2", timeout=20_000)
    expect(_state(reviewer)).to_have_text(wf.PLAN_RECEIVED)
    expect(reviewer.page.locator("#comments")).to_contain_text("Please reduce the IPR on the lower arch.")
    reviewer.page.click("#approve-button")
    expect(_state(reviewer)).to_have_text(wf.PROVIDER_APPROVED)
    expect(reviewer.page.locator("#approved-on")).to_contain_text(f"Approved by {doctor.user.username}")
    reviewer.screenshot("provider-approved")

    shot = CaseAsset.objects.get(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN)
    stored = get_vault().get(shot.vault_id, shot.external_key)
    (ARTIFACTS / "acceptance-screenshot.jpg").write_bytes(stored)
    image = Image.open(io.BytesIO(stored))
    image.load()
    assert image.format == "JPEG"
    assert image.width > 300 and image.height > 150
    grey = image.convert("L")
    low, high = grey.getextrema()
    assert high - low > 100, "the acceptance screenshot is blank"
    assert ImageStat.Stat(grey).stddev[0] > 10, "the acceptance screenshot is nearly uniform"

    # (3) Staff confirms the purchase; Align accepts, manufactures and ships.
    clinic.open(f"/staff/cases/{case.pk}/")
    expect(_state(clinic)).to_have_text(wf.PROVIDER_APPROVED)
    clinic.page.click("#purchased-button")
    expect(_state(clinic)).to_have_text(wf.ACCEPTED)
    expect(_state(clinic)).to_have_text(wf.SHIPPING, timeout=20_000)
    case.refresh_from_db()
    assert case.tracking_number
    expect(clinic.page.locator("#tracking-number")).to_have_text(case.tracking_number)
    clinic.screenshot("staff-case-shipping")
    clinic.page.click(".tl-filter button[data-kind=attempt]")
    visible = clinic.page.locator("#timeline li:visible")
    assert visible.count() >= 5  # create patient, order, upload, revision, accept
    assert all("tl-attempt" in c for c in visible.evaluate_all("items => items.map(i => i.className)"))
    clinic.open("/support/workflow/")
    clinic.screenshot("support-workflow")
