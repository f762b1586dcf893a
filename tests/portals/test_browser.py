"""The portals in a real browser (headless Chromium) against the live app and the
Align simulator: staff sends a case, the provider asks for a revision and approves,
staff confirms the purchase, Align ships it; the support page's analytics charts."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from waffle import get_waffle_flag_model

from align_workflow.cases.models import PhotoAssessment, Prescription
from states import align_case as wf
from tests.support.browser import ARTIFACTS, Portal
from tests.support.factories import ProviderFactory, StaffFactory, make_case
from tests.support.history import with_history

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def flags():
    # A transactional test starts from an emptied database: the flags' migration rows are gone.
    for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
        get_waffle_flag_model().objects.update_or_create(name=name, defaults={"everyone": True})


def test_provider_cannot_open_another_providers_case_and_failed_criteria_hide_send(portal, browser, live_server, flags):
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
    photos_pending = make_case(provider=mine, photos=PhotoAssessment.Status.PENDING)

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
    clinic.open(f"/staff/cases/{in_house.pk}/")  # outside the Align workflow: no Align panel at all
    assert clinic.page.locator("#send-button").count() == 0 and clinic.page.locator("#align-panel").count() == 0
    assert "Not prescribed to Align" in clinic.page.locator("#outside-workflow").inner_text()
    clinic.open(f"/staff/cases/{photos_pending.pk}/")
    assert clinic.page.locator("#send-button").count() == 0
    failed = clinic.page.locator("#checklist li.fail")
    assert failed.count() == 1
    assert "Photo assessment approved" in failed.inner_text()
    assert "photo assessment is pending, not approved" in failed.inner_text()
    assert "until every item above is ticked" in clinic.page.locator("#send-unavailable").inner_text()
    clinic.screenshot("staff-case-criterion-fails")
    no_phone = make_case(provider=mine, patient__phone="")
    clinic.open(f"/staff/cases/{no_phone.pk}/")  # the contact form opens by itself: a contact criterion fails
    assert clinic.page.locator("#checklist li.fail").inner_text().startswith("✗")
    assert clinic.page.locator("#contact-form").is_visible()
    clinic.screenshot("staff-case-contact-details")


def _state(tab):
    return tab.page.locator(".current .state, .pagehead .state").first


def _confirm(tab, action):
    """Answer "Yes" in the confirmation dialog of `action` (approve, purchased, cancel)."""
    tab.page.locator(f"#confirm-{action} [data-confirm-yes]").click()


def test_a_case_from_send_to_shipping(portal, flags, simulator, live_server, settings, require_postgres, tmp_path):
    """(1) staff sends the case; (2) the provider asks for a revision, then approves the new
    version; (3) staff confirms the purchase and Align ships it."""
    import io

    from PIL import Image, ImageStat
    from playwright.sync_api import expect

    from align_workflow.align.vault import get_vault
    from align_workflow.cases.models import CaseAsset

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
    expect(_state(clinic)).to_have_text(wf.state_label(wf.ELIGIBLE))
    clinic.screenshot("staff-case-eligible")
    clinic.page.click("#send-button")
    expect(_state(clinic)).to_have_text(wf.state_label(wf.ASSETS_UPLOADED))
    expect(clinic.page.locator(".msg-success")).to_contain_text("Align accepted")
    # The simulator's events arrive; the page notices and reloads itself.
    expect(_state(clinic)).to_have_text(wf.state_label(wf.PLAN_RECEIVED), timeout=20_000)
    clinic.screenshot("staff-case-plan-received")

    # (2) The provider asks for a revision, gets version 2, approves it.
    reviewer = portal(doctor.user.username)
    reviewer.page.wait_for_url("**/provider/")
    reviewer.page.click(f"main >> text={case.case_number}")  # the top bar lists it too
    expect(reviewer.page.locator("#plan-version")).to_have_text("version 1")
    reviewer.screenshot("provider-plan-review")
    reviewer.page.fill("#id_comments", "Please reduce the IPR on the lower arch.")
    reviewer.page.click("#revision-button")
    expect(_state(reviewer)).to_have_text(wf.state_label(wf.REVISION_REQUESTED))
    expect(reviewer.page.locator("#plan-version")).to_have_text("version 2", timeout=20_000)
    expect(_state(reviewer)).to_have_text(wf.state_label(wf.PLAN_RECEIVED))
    expect(reviewer.page.locator("#comments")).to_contain_text("Please reduce the IPR on the lower arch.")
    reviewer.page.click("#approve-button")
    _confirm(reviewer, "approve")
    expect(_state(reviewer)).to_have_text(wf.state_label(wf.PROVIDER_APPROVED))
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
    expect(_state(clinic)).to_have_text(wf.state_label(wf.PROVIDER_APPROVED))
    clinic.page.click("#purchased-button")
    _confirm(clinic, "purchased")
    expect(_state(clinic)).to_have_text(wf.state_label(wf.ACCEPTED))
    expect(_state(clinic)).to_have_text(wf.state_label(wf.SHIPPING), timeout=20_000)
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


def test_a_ratio_3_screen_approves_a_plan(browser, live_server, flags, settings, tmp_path):
    """A devicePixelRatio-3 screen (a phone, a 4K laptop): its capture is made smaller until
    it fits ALIGN_SCREENSHOT_MAX_BYTES, and the approval goes through. The limit is set to
    half of what this page's full-resolution capture needs, so the scaling is exercised."""
    import io

    from PIL import Image
    from playwright.sync_api import expect

    from align_workflow.align.vault import get_vault
    from align_workflow.cases.models import CaseAsset, TreatmentPlan

    settings.MEDIA_ROOT = tmp_path
    doctor = ProviderFactory()
    case = make_case(provider=doctor, state=wf.PLAN_RECEIVED)
    preview = CaseAsset.objects.create(case=case, kind=CaseAsset.Kind.PROVPREV, url="https://example.com/preview/1")
    TreatmentPlan.objects.create(
        case=case,
        plan_id=f"TP-{case.pk}-1",
        version=1,
        stages_upper=14,
        stages_lower=12,
        notes="Upper and lower arches; attachments on 13 and 23.",
        preview=preview,
    )

    tab = Portal(browser, live_server.url, device_scale_factor=3).sign_in(doctor.user.username)
    try:
        tab.page.wait_for_url("**/provider/")
        tab.open(f"/provider/cases/{case.pk}/")
        assert tab.page.evaluate("window.devicePixelRatio") == 3
        native_width, native_length = tab.page.evaluate("""() => html2canvas(
            document.getElementById('acceptance-block'), {scale: 3, backgroundColor: '#ffffff', logging: false})
            .then(c => { const u = c.toDataURL('image/jpeg', 0.9); return [c.width, u.length - u.indexOf(',') - 1]; })""")
        settings.ALIGN_SCREENSHOT_MAX_BYTES = native_length // 2
        tab.open(f"/provider/cases/{case.pk}/")

        tab.page.click("#approve-button")
        _confirm(tab, "approve")

        expect(_state(tab)).to_have_text(wf.state_label(wf.PROVIDER_APPROVED))
        expect(tab.page.locator("#approved-on")).to_contain_text(f"Approved by {doctor.user.username}")
        tab.screenshot("provider-approved-ratio-3")
    finally:
        tab.close()
    shot = CaseAsset.objects.get(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN)
    image = Image.open(io.BytesIO(get_vault().get(shot.vault_id, shot.external_key)))
    assert 300 < image.width < native_width, (image.width, native_width)


ANALYTICS_CHARTS = ("chart-stays", "chart-weekly", "chart-funnel", "chart-revisions", "chart-stuck")


def test_support_analytics_charts_are_drawn_with_their_tables(portal):
    """Every chart is drawn (visible, with bars) and followed by its table; Export CSV
    downloads the filtered list."""
    StaffFactory(username="support", password="pw")
    now = timezone.now()
    for days in (40, 20, 9, 3):
        with_history(
            now - timedelta(days=days),
            [(wf.PATIENT_CREATED, 3600 * days), (wf.ORDER_CREATED, 600), (wf.ASSETS_UPLOADED, 600)]
            + [(wf.PLAN_RECEIVED, 7200 * days), (wf.REVISION_REQUESTED, 1800), (wf.PLAN_RECEIVED, 3600)],
        )
    tab = portal("support")
    tab.open("/support/workflow/")
    for chart in ANALYTICS_CHARTS:
        svg = tab.page.locator(f"svg#{chart}")
        box = svg.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 40, chart
        assert svg.locator("rect").count() > 1, chart
        assert svg.get_attribute("role") == "img"
        assert tab.page.locator(f"#{chart}-table tbody tr").count() > 0, chart
    tab.page.locator("#analytics").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / "support-analytics.png"), full_page=True)

    tab.open("/staff/?state=plan_received")
    with tab.page.expect_download() as download:
        tab.page.click("#export-csv")
    assert download.value.suggested_filename.startswith("cases-")
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and lines[0].startswith("case number,")
