"""Every portal page in headless Chromium at a laptop's width and a phone's: axe-core finds
no critical or serious accessibility violation, and at 375 px nothing scrolls sideways.
Also the error pages in the browser, and a click after the session expired.

A new page is one line in PAGES: (name, who opens it, address, what it must show)."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Case, Prescription
from states import align_case as wf
from tests.support.browser import ARTIFACTS, Portal
from tests.support.factories import ProviderFactory, StaffFactory, make_case

from .test_provider_portal import plan

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 375, "height": 740}}
# axe-core's impact levels that fail the test.
BLOCKING = {"critical", "serious"}
# What Django's debug pages print and the styled error pages never do.
DEBUG_OUTPUT = ("URLconf", "Django tried these URL patterns", "DEBUG = True", "Traceback")

# (name, who: "staff" / "provider" / None for signed out, address with {case names}, text the page shows)
PAGES = [
    ("login", None, "/accounts/login/", "Sign in"),
    ("staff case list", "staff", "/staff/", "Cases"),
    ("staff case list, one state", "staff", "/staff/?state=plan_received", "Cases"),
    ("staff case, eligible", "staff", "/staff/cases/{eligible}/", "{eligible_number}"),
    ("staff case, plan received", "staff", "/staff/cases/{review}/", "{review_number}"),
    ("staff case, approved, needs attention", "staff", "/staff/cases/{approved}/", "{approved_number}"),
    ("staff case, shipping", "staff", "/staff/cases/{shipping}/", "{shipping_number}"),
    ("staff case, cancelled", "staff", "/staff/cases/{cancelled}/", "{cancelled_number}"),
    ("staff case, not prescribed to Align", "staff", "/staff/cases/{in_house}/", "Not prescribed to Align"),
    ("support workflow", "staff", "/support/workflow/", "Where the cases are"),
    ("staff case list, oldest waiting first", "staff", "/staff/?sort=waiting", "Cases"),
    ("provider case list", "provider", "/provider/", "Your cases"),
    ("provider case list, sorted by state", "provider", "/provider/?sort=state", "Your cases"),
    ("provider email settings", "provider", "/provider/notifications/", "Email"),
    ("provider case, plan to review", "provider", "/provider/cases/{review}/", "{review_number}"),
    ("provider case, approved", "provider", "/provider/cases/{approved}/", "{approved_number}"),
    ("404: another provider's case", "provider", "/provider/cases/{theirs}/", "Page not found"),
    ("403: a provider on the staff portal", "provider", "/staff/", "not open to your account"),
    ("405: an action opened as a page", "staff", "/staff/cases/{eligible}/cancel/", "nothing was done"),
    ("admin index", "staff", "/admin/", "Align workflow administration"),
    ("admin events from Align", "staff", "/admin/integration/inboundevent/", "event"),
]


@pytest.fixture
def site():
    """People and cases in the states the pages show."""
    for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
        get_waffle_flag_model().objects.update_or_create(name=name, defaults={"everyone": True})
    staff = StaffFactory(is_superuser=True)
    doctor, other = ProviderFactory(), ProviderFactory()
    cases = {
        "eligible": make_case(provider=doctor),
        "review": make_case(provider=doctor, state=wf.PLAN_RECEIVED),
        "approved": make_case(provider=doctor, state=wf.PROVIDER_APPROVED, needs_attention=True),
        "shipping": make_case(provider=doctor, state=wf.SHIPPING),
        "cancelled": make_case(provider=doctor, state=wf.CANCELLED, cancel_reason="Moved away"),
        "in_house": make_case(provider=doctor, lab=Prescription.Lab.IN_HOUSE),
        "theirs": make_case(provider=other, state=wf.PLAN_RECEIVED),
    }
    for case in (cases["review"], cases["approved"], cases["shipping"]):
        plan(case)
    values = {name: case.pk for name, case in cases.items()}
    values |= {f"{name}_number": case.case_number for name, case in cases.items()}
    return {"staff": staff.username, "provider": doctor.user.username, "values": values}


def axe_violations(page):
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:4])}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


# The outermost elements reaching past the window's right edge: what to fix.
STICKING_OUT = """() => {
  const out = [...document.querySelectorAll("body *")].filter(el =>
    el.getBoundingClientRect().right > innerWidth + 1 && !el.parentElement.closest("*[data-out]") &&
    (el.dataset.out = "1"));
  return out.slice(0, 4).map(el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "") +
    " " + Math.round(el.getBoundingClientRect().right) + "px");
}"""


def sideways_scroll(page):
    width, viewport = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    if width <= viewport:
        return None
    return f"the page is {width} px wide in a {viewport} px window: {', '.join(page.evaluate(STICKING_OUT))}"


# Keyboard focus: the first few Tab stops of each page show an outline at least this wide.
TAB_STOPS = 6
FOCUS_OUTLINE_PX = 2
FOCUSED = """() => { const el = document.activeElement, style = getComputedStyle(el);
  return [el === document.body ? null : el.tagName.toLowerCase() + (el.id ? "#" + el.id : ""),
          style.outlineStyle, parseFloat(style.outlineWidth) || 0]; }"""


def focus_hidden(page):
    """The Tab stops whose focus is not visible (no outline, or a thin one)."""
    hidden = []
    for _ in range(TAB_STOPS):
        page.keyboard.press("Tab")
        element, style, width = page.evaluate(FOCUSED)
        if element and (style == "none" or width < FOCUS_OUTLINE_PX):
            hidden.append(f"{element} ({style} {width}px)")
    return hidden


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_passes_axe_and_fits_the_screen(browser, live_server, site, width):
    tabs = {None: Portal(browser, live_server.url)}
    tabs["staff"] = Portal(browser, live_server.url).sign_in(site["staff"])
    tabs["provider"] = Portal(browser, live_server.url).sign_in(site["provider"])
    problems = []
    try:
        for tab in tabs.values():
            tab.page.set_viewport_size(WIDTHS[width])
        for name, who, address, shows in PAGES:
            tab = tabs[who]
            tab.open(address.format(**site["values"]))
            text = tab.page.inner_text("body")
            if shows.format(**site["values"]) not in text:
                problems.append(f"{name}: does not show {shows!r} (is it the right page?)")
            problems += [f"{name}: debug output {marker!r}" for marker in DEBUG_OUTPUT if marker in text]
            problems += [f"{name}: {violation}" for violation in axe_violations(tab.page)]
            if width == "phone" and (wide := sideways_scroll(tab.page)):
                problems.append(f"{name}: {wide}")
            # The admin has Django's own stylesheet and focus ring: the portals' pages only.
            if width == "desktop" and not address.startswith("/admin/") and (unseen := focus_hidden(tab.page)):
                problems.append(f"{name}: keyboard focus not visible on {', '.join(unseen)}")
            tab.screenshot(f"page-{width}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}")
    finally:
        for tab in tabs.values():
            tab.close()
    assert not problems, f"{len(problems)} problem(s) at {width} width:\n" + "\n".join(problems)


def test_a_click_after_the_session_expired_ends_on_the_case_with_the_text_kept(portal, site):
    """Staff types a cancel reason, the provider revision comments; both sessions expire
    before the click. Each signs in again and is back on the case, told the action was
    not done, with the typed text in the field again."""
    review = Case.objects.get(pk=site["values"]["review"])
    eligible = Case.objects.get(pk=site["values"]["eligible"])
    staff = portal(site["staff"])
    staff.page.wait_for_url("**/staff/")
    staff.open(f"/staff/cases/{eligible.pk}/")
    staff.page.click("details.cancel summary")
    staff.page.fill("#id_reason", "The patient chose another clinic")
    provider = portal(site["provider"])
    provider.page.wait_for_url("**/provider/")
    provider.open(f"/provider/cases/{review.pk}/")
    provider.page.fill("#id_comments", "Please close the gap on the upper left")

    Session.objects.all().delete()  # both sessions expire

    for tab, button, field, typed, case in (
        (staff, "#cancel-button", "#id_reason", "The patient chose another clinic", eligible),
        (
            provider,
            "#revision-form button[type=submit]",
            "#id_comments",
            "Please close the gap on the upper left",
            review,
        ),
    ):
        page = tab.page
        state = case.state
        page.click(button)
        if tab is staff:  # cancelling asks first (the confirmation dialog)
            page.locator("dialog#confirm-cancel [data-confirm-yes]").click()
        page.wait_for_url("**/accounts/login/**")
        assert "was not done" in page.inner_text("main")
        assert typed.split()[1] not in page.url
        page.fill("#id_username", tab is staff and site["staff"] or site["provider"])
        page.fill("#id_password", "pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"**/cases/{case.pk}/")
        assert "405" not in page.title()
        told = page.locator(".msg-warning").inner_text()
        assert "was not done" in told and "again" in told
        assert page.input_value(field) == typed
        case.refresh_from_db()
        assert case.state == state
        tab.screenshot(f"expired-session-{'staff' if tab is staff else 'provider'}")
    assert ARTIFACTS.is_dir()
