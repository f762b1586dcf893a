"""Headless Chromium for the browser tests: Debian's `chromium`, driven by Playwright.

One browser for the whole session; each test gets a fresh context (cookies) per user.
Never `playwright install`: the browser is the system package, which `make system-deps`
installs (`make test` and `.ci/run` run it first).
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 900}


def require_chromium():
    """Debian's chromium, or the test fails saying how to get it: never a silent skip
    (`-m "not browser"` leaves the browser tests out on purpose)."""
    path = shutil.which("chromium")
    if path:
        return path
    pytest.fail(
        "needs Debian's chromium: run `make system-deps` (make test does), "
        "or leave the browser tests out with -m 'not browser'"
    )


@pytest.fixture(scope="session")
def browser():
    executable = require_chromium()
    from django.contrib.staticfiles import finders

    # Without it the Approve button can only say "reload the page": fail here, saying why.
    assert finders.find("html2canvas/dist/html2canvas.min.js"), (
        "html2canvas is not installed: run `make test` (it runs npm ci) or `npm ci` first"
    )
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # between browser steps are ordinary synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Portal:
    """A signed-in person's browser tab on the live server."""

    def __init__(self, browser, base_url, *, device_scale_factor=1):
        self.base_url = base_url
        self.context = browser.new_context(viewport=VIEWPORT, device_scale_factor=device_scale_factor)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()

    def sign_in(self, username, password="pw"):
        self.page.goto(self.base_url + "/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("button[type=submit]")
        return self

    def open(self, path):
        """Go to `path`. A case page reloads itself when its case moves; if that reload
        starts while we navigate away, Chromium drops our navigation, so go again."""
        from playwright.sync_api import Error

        try:
            return self.page.goto(self.base_url + path)
        except Error as exc:
            if "interrupted by another navigation" not in str(exc):
                raise
            self.page.wait_for_load_state()
            return self.page.goto(self.base_url + path)

    def screenshot(self, name):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self):
        self.context.close()


@pytest.fixture
def portal(browser, live_server):
    opened = []

    def open_portal(username, password="pw"):
        tab = Portal(browser, live_server.url).sign_in(username, password)
        opened.append(tab)
        return tab

    yield open_portal
    for tab in opened:
        tab.close()
