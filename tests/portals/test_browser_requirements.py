"""Without Chromium the browser tests fail and say how to get it; they never skip quietly."""

import pytest

from tests.support import browser


def test_missing_chromium_fails_and_says_to_run_system_deps(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="make system-deps"):
        browser.require_chromium()


def test_chromium_is_found_on_path(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert browser.require_chromium() == "/usr/bin/chromium"
