"""The admin in a real browser at a laptop's width: support sees what it looks for without
scrolling sideways."""

import uuid

import pytest
from django.utils import timezone

from align_workflow.integration.models import InboundEvent
from tests.support.browser import Portal
from tests.support.factories import StaffFactory, make_case

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_events_list_shows_status_and_times_without_horizontal_scroll_at_1366(browser, live_server):
    support = StaffFactory(is_superuser=True)
    case = make_case()
    for n in range(5):
        InboundEvent.objects.create(
            event_id=f"evt-{uuid.uuid4()}-{uuid.uuid4()}",
            type="treatment_plan.submitted",
            case=case,
            summary=f"plan TP-{n} version {n + 1} with upper and lower stages and attachments, IPR and notes",
            payload={},
            raw_body="{}",
            occurred_at=timezone.now(),
            status="failed" if n % 2 else "applied",
        )
    tab = Portal(browser, live_server.url).sign_in(support.username)
    try:
        tab.page.wait_for_url("**/staff/")
        tab.open("/admin/integration/inboundevent/")
        assert tab.page.locator("#site-name").inner_text() == "Align workflow administration"
        width = tab.page.evaluate("window.innerWidth")
        table_right = tab.page.evaluate("document.querySelector('#result_list').getBoundingClientRect().right")
        assert table_right <= width, f"the events table is {table_right:.0f} px wide in a {width} px window"
        for column in ("received_at", "status_badge", "occurred_at"):
            header = tab.page.locator(f"#result_list th.column-{column}")
            assert header.is_visible()
            assert header.bounding_box()["x"] + header.bounding_box()["width"] <= width
        assert tab.page.locator(".event-status-failed").count() == 2
    finally:
        tab.close()
