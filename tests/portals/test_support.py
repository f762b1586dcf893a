"""/support/workflow/: counts per state and stuck cases on the diagram."""

from datetime import timedelta

import pytest
from django.utils import timezone

from states import align_case as wf
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db


def test_counts_stuck_and_links(staff_client, settings):
    settings.ALIGN_STUCK_AFTER_SECONDS = 3600
    old = timezone.now() - timedelta(hours=3)
    make_case(state=wf.ASSETS_UPLOADED, state_changed_at=old)
    make_case(state=wf.ASSETS_UPLOADED, state_changed_at=old)
    make_case(state=wf.ASSETS_UPLOADED)
    make_case(state=wf.SHIPPING, state_changed_at=old)  # terminal: not stuck
    response = staff_client.get("/support/workflow/")
    assert response.status_code == 200
    rows = {r["count"].state: r for r in response.context["rows"]}
    assert (rows[wf.ASSETS_UPLOADED]["count"].total, rows[wf.ASSETS_UPLOADED]["count"].stuck) == (3, 2)
    assert (rows[wf.SHIPPING]["count"].total, rows[wf.SHIPPING]["count"].stuck) == (1, 0)
    assert response.context["stuck_total"] == 2
    html = response.content.decode()
    assert "1 hour" in html
    assert 'href="/staff/?state=assets_uploaded" class="count-link">3<' in html
    assert 'href="/staff/?state=assets_uploaded&amp;stuck=on" class="stuck-link stuck">2<' in html
    # the diagram itself carries the numbers and links to the filtered list
    diagram = html[html.index('id="workflow-diagram"') :]
    assert "3 cases" in diagram and "2 stuck" in diagram
    assert 'xlink:href="/staff/?state=assets_uploaded"' in diagram


def test_the_links_lead_to_the_same_cases(staff_client, settings):
    settings.ALIGN_STUCK_AFTER_SECONDS = 3600
    old = timezone.now() - timedelta(hours=3)
    stuck = make_case(state=wf.PLAN_RECEIVED, state_changed_at=old)
    make_case(state=wf.PLAN_RECEIVED)
    listed = staff_client.get("/staff/?state=plan_received&stuck=on").context["page"].object_list
    assert [c.pk for c in listed] == [stuck.pk]
