"""The support page's analytics in a real browser: every chart is drawn (visible, with
bars) and followed by its table, and the case list's export link downloads the list."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from states import align_case as wf
from tests.support.browser import ARTIFACTS, browser, portal  # noqa: F401  (fixtures)
from tests.support.factories import StaffFactory
from tests.support.history import with_history

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = ("chart-stays", "chart-weekly", "chart-funnel", "chart-revisions", "chart-stuck")


def test_charts_are_drawn_with_their_tables(portal):  # noqa: F811 (the fixture imported above)
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
    for chart in CHARTS:
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
