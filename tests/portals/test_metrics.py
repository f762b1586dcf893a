"""/support/metrics.json and the analytics on /support/workflow/, on a history with known
timestamps. Every expected number below is worked out by hand from the fixture."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from align_workflow.cases.models import Prescription
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.history import with_history

pytestmark = pytest.mark.django_db

HOUR, DAY = 3600, 86400


@pytest.fixture
def history():
    now = timezone.now()
    main = [wf.PATIENT_CREATED, wf.ORDER_CREATED, wf.ASSETS_UPLOADED, wf.PLAN_RECEIVED]
    a = with_history(
        now - timedelta(days=20),
        [*zip(main, [DAY, 1800, 1800, HOUR], strict=True)]
        + [(wf.PROVIDER_APPROVED, 2 * HOUR), (wf.ACCEPTED, DAY), (wf.SHIPPING, DAY)],
    )
    b = with_history(
        now - timedelta(days=15),
        [*zip(main, [2 * DAY, 1800, HOUR, 2 * HOUR], strict=True)]
        + [(wf.REVISION_REQUESTED, HOUR), (wf.PLAN_RECEIVED, 4 * HOUR), (wf.CANCELLED, HOUR)],
    )
    c = with_history(now - timedelta(days=10), [*zip(main, [3 * DAY, 1800, 5400, 3 * HOUR], strict=True)])
    d = with_history(
        now - timedelta(days=5),
        [*zip(main, [4 * HOUR, 600, 600, 4 * HOUR], strict=True)]
        + [(wf.REVISION_REQUESTED, 1800), (wf.PLAN_RECEIVED, 1800)] * 3
        + [(wf.PROVIDER_APPROVED, 2 * HOUR)],
    )
    g = [with_history(now - timedelta(days=2), [(wf.PATIENT_CREATED, 60 * i)]) for i in range(1, 8)]
    # Before the window: its stays ended more than 30 days ago; created before the 12 weeks.
    e_created = now - timedelta(days=100)
    e_planned = e_created + timedelta(seconds=10 * DAY + 1800 + 1800 + 10 * HOUR)
    e = with_history(
        e_created,
        [*zip(main, [10 * DAY, 1800, 1800, 10 * HOUR], strict=True)]
        + [(wf.CANCELLED, (now - timedelta(days=35) - e_planned).total_seconds())],
    )
    h = now - timedelta(days=70)
    make_case(created=h, state_changed_at=h)  # never moved: in the cohort, stuck
    make_case(created=now - timedelta(days=1), lab=Prescription.Lab.OTHER)  # outside the Align workflow
    return {"now": now, "a": a, "b": b, "c": c, "d": d, "e": e, "g": g, "h": h}


def iso(moment):
    year, week, _ = timezone.localtime(moment).isocalendar()
    return f"{year}-W{week:02d}"


def test_stays_nearest_rank_median_and_p90(staff_client, history):
    response = staff_client.get("/support/metrics.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert set(data) == {"window_days", "states", "weekly", "funnel"}
    assert data["window_days"] == 30
    states = data["states"]
    # eligible: 4 h, 1, 2, 3 days and the seven 1..7 minute stays; n = 11,
    # median rank ceil(5.5) = 6 -> 6 min, p90 rank ceil(9.9) = 10 -> 2 days. E's 10 days ended 90 days ago.
    assert states[wf.ELIGIBLE] == {"stays": 11, "median_seconds": 360, "p90_seconds": 2 * DAY}
    # patient_created: 600, 1800, 1800, 1800
    assert states[wf.PATIENT_CREATED] == {"stays": 4, "median_seconds": 1800, "p90_seconds": 1800}
    # order_created: 600, 1800, 3600, 5400 -> rank 2 and rank 4
    assert states[wf.ORDER_CREATED] == {"stays": 4, "median_seconds": 1800, "p90_seconds": 5400}
    # assets_uploaded: 1 h, 2 h, 3 h, 4 h (E's 10 h ended long ago)
    assert states[wf.ASSETS_UPLOADED] == {"stays": 4, "median_seconds": 2 * HOUR, "p90_seconds": 4 * HOUR}
    # plan_received: A 2 h; B 1 h, 1 h; D 30 min x 3, 2 h (C is still there; E's ended 35 days ago)
    # sorted 1800 1800 1800 3600 3600 7200 7200: median rank ceil(3.5) = 4 -> 3600, p90 rank ceil(6.3) = 7 -> 7200
    assert states[wf.PLAN_RECEIVED] == {"stays": 7, "median_seconds": 3600, "p90_seconds": 2 * HOUR}
    # revision_requested: B 4 h, D 30 min x 3
    assert states[wf.REVISION_REQUESTED] == {"stays": 4, "median_seconds": 1800, "p90_seconds": 4 * HOUR}
    assert states[wf.PROVIDER_APPROVED] == {"stays": 1, "median_seconds": DAY, "p90_seconds": DAY}
    assert states[wf.ACCEPTED] == {"stays": 1, "median_seconds": DAY, "p90_seconds": DAY}
    assert set(states) == set(wf.NON_TERMINAL)  # a stay in an end state never ends


def test_weekly_counts_by_iso_week(staff_client, history):
    weekly = staff_client.get("/support/metrics.json").json()["weekly"]
    now = history["now"]
    assert len(weekly) == 12
    assert weekly[-1]["week"] == iso(now)
    assert weekly[0]["week"] == iso(now - timedelta(weeks=11))
    expected = {row["week"]: {"entered": 0, "shipped": 0, "cancelled": 0} for row in weekly}
    for days in (20, 15, 10, 5, 2, 2, 2, 2, 2, 2, 2, 70):  # A B C D G*7 H; not E (100 days), not the other lab
        expected[iso(now - timedelta(days=days))]["entered"] += 1
    expected[iso(history["a"][wf.SHIPPING][0])]["shipped"] += 1
    expected[iso(history["b"][wf.CANCELLED][0])]["cancelled"] += 1
    expected[iso(history["e"][wf.CANCELLED][0])]["cancelled"] += 1  # E was created before, cancelled within
    assert {row["week"]: {k: row[k] for k in ("entered", "shipped", "cancelled")} for row in weekly} == expected
    assert sum(row["entered"] for row in weekly) == 12


def test_funnel_of_the_cases_created_in_the_twelve_weeks(staff_client, history):
    funnel = staff_client.get("/support/metrics.json").json()["funnel"]
    assert funnel == {
        wf.ELIGIBLE: 12,  # A B C D, the seven G, H
        wf.PATIENT_CREATED: 11,
        wf.ORDER_CREATED: 4,
        wf.ASSETS_UPLOADED: 4,
        wf.PLAN_RECEIVED: 4,
        wf.PROVIDER_APPROVED: 2,  # A and D
        wf.ACCEPTED: 1,
        wf.SHIPPING: 1,
    }


def test_support_page_draws_the_charts_with_tables(staff_client, history, settings):
    settings.ALIGN_STUCK_AFTER_SECONDS = 7 * DAY
    response = staff_client.get("/support/workflow/")
    assert response.status_code == 200
    analytics = response.context["analytics"]
    # Of the four cases that received a plan, A and C had no revision, B one, D three.
    assert analytics.cohort.revisions == {"0": 2, "1": 1, "2": 0, "3+": 1}
    assert analytics.cohort.cancelled == {wf.PLAN_RECEIVED: 1}
    # Now: H (70 days in eligible) and C (in plan_received since ~6.7 days ago: not yet) -> 1;
    # A week ago, C had been in eligible for 3 days, so only H.
    assert analytics.stuck[-1]["stuck"] == 1
    html = response.content.decode()
    for chart in ("chart-stays", "chart-weekly", "chart-funnel", "chart-revisions", "chart-stuck"):
        assert html.count(f'<svg class="chart" id="{chart}"') == 1
        assert html.count(f'id="{chart}-table"') == 1
    assert "<title>Workflow · Align workflow</title>" in html
    assert 'href="/support/metrics.json"' in html


def test_stuck_over_time_counts_ended_stays(staff_client, history, settings):
    settings.ALIGN_STUCK_AFTER_SECONDS = 2 * DAY
    stuck = staff_client.get("/support/workflow/").context["analytics"].stuck
    now, two = history["now"], timedelta(days=2)
    # The stays longer than two days, and from when to when each counts as stuck:
    spans = [
        (history["h"] + two, None),  # H: in eligible since 70 days ago, still
        (now - timedelta(days=10) + two, now - timedelta(days=7)),  # C in eligible for 3 days
        (history["e"][wf.PLAN_RECEIVED][0] + two, history["e"][wf.CANCELLED][0]),  # E's plan for ~55 days
        (history["c"][wf.PLAN_RECEIVED][0] + two, None),  # C in plan_received, still
        (history["d"][wf.PROVIDER_APPROVED][0] + two, None),  # D approved, still
    ]  # A's and B's stays, the G cases' and D's earlier ones are two days or shorter.
    assert len(stuck) == 12 and stuck[-1]["at"] >= now
    for point in stuck:
        t = point["at"]
        expected = sum(1 for since, until in spans if since <= t and (until is None or until > t))
        assert point["stuck"] == expected, (point, spans)
    assert stuck[-1]["stuck"] == 3


def test_metrics_use_a_fixed_number_of_queries(staff_client, history):
    with CaptureQueriesContext(connection) as few:
        staff_client.get("/support/metrics.json")
    for i in range(20):
        with_history(timezone.now() - timedelta(days=3), [(wf.PATIENT_CREATED, i + 1), (wf.ORDER_CREATED, 60)])
    with CaptureQueriesContext(connection) as more:
        staff_client.get("/support/metrics.json")
    assert len(more.captured_queries) == len(few.captured_queries)


def test_access(client, provider_client):
    signed_out = client.get("/support/metrics.json")
    assert signed_out.status_code == 401 and "Sign in" in signed_out.json()["error"]
    provider = provider_client.get("/support/metrics.json")
    assert provider.status_code == 403 and "staff" in provider.json()["error"]
    assert client.post("/support/metrics.json").status_code == 405
