"""The work queues: the staff list and the provider's list, sorted, paged, filtered, with
when each case entered its state ("waiting since") and whose turn it is."""

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case
from align_workflow.portals.selectors import staff_cases
from align_workflow.portals.views import provider as provider_views
from align_workflow.portals.views import staff as staff_views
from align_workflow.workflow import fire
from states import align_case as wf
from states.next_steps import NEXT_STEPS, TURN_LABELS
from tests.support.factories import PatientFactory, make_case

pytestmark = pytest.mark.django_db


def case_numbers(response):
    return [c.case_number for c in response.context["page"].object_list]


def at(hours_ago):
    return timezone.now() - timedelta(hours=hours_ago)


@pytest.fixture
def queue():
    """Four cases whose case numbers, states and waiting times each sort differently."""
    make_case(case_number="Q-3", state=wf.PLAN_RECEIVED, state_changed_at=at(5))
    make_case(case_number="Q-1", state=wf.CANCELLED, state_changed_at=at(1))
    make_case(case_number="Q-4", state=wf.ELIGIBLE, state_changed_at=at(30))
    make_case(case_number="Q-2", state=wf.PLAN_RECEIVED, state_changed_at=at(50), needs_attention=True)


# --- sorting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sort,expected",
    [
        ("", ["Q-2", "Q-1", "Q-3", "Q-4"]),  # needs attention first, then the latest change
        ("waiting", ["Q-2", "Q-4", "Q-3", "Q-1"]),  # oldest waiting first
        ("-waiting", ["Q-1", "Q-3", "Q-4", "Q-2"]),
        ("state", ["Q-4", "Q-2", "Q-3", "Q-1"]),  # workflow order, oldest waiting first within a state
        ("-state", ["Q-1", "Q-3", "Q-2", "Q-4"]),
        ("case", ["Q-1", "Q-2", "Q-3", "Q-4"]),
        ("-case", ["Q-4", "Q-3", "Q-2", "Q-1"]),
    ],
)
def test_staff_list_sorts(staff_client, queue, sort, expected):
    response = staff_client.get("/staff/", {"sort": sort} if sort else {})
    assert response.status_code == 200
    assert case_numbers(response) == expected


def test_the_sorted_column_says_so_and_its_heading_reverses_it(staff_client, queue):
    html = staff_client.get("/staff/", {"sort": "waiting"}).content.decode()
    headings = re.findall(r"<th scope=\"col\"([^>]*)><a href=\"\?([^\"?][^\"]*)\"", html)
    by_sort = {parse_qs(query.replace("&amp;", "&"))["sort"][0]: attrs for attrs, query in headings}
    assert by_sort["-waiting"] == ' aria-sort="ascending"'  # sorted ascending; the link reverses it
    assert by_sort["case"] == "" and by_sort["state"] == ""
    html = staff_client.get("/staff/", {"sort": "-case"}).content.decode()
    assert re.search(r'<th scope="col" aria-sort="descending"><a href="\?sort=case"', html), html
    assert html.count("aria-sort=") == 1


def test_oldest_waiting_first_is_an_option_of_the_search_and_stays_with_it(staff_client, queue):
    response = staff_client.post("/staff/", {"q": "Q-", "sort": "waiting"})
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["sort"] == ["waiting"] and "q" not in query
    followed = staff_client.get(response["Location"])
    assert case_numbers(followed) == ["Q-2", "Q-4", "Q-3", "Q-1"]
    assert 'value="waiting" selected' in followed.content.decode()
    # Sorting a search by a heading keeps the search.
    resorted = staff_client.get(response["Location"].replace("sort=waiting", "sort=-case"))
    assert case_numbers(resorted) == ["Q-4", "Q-3", "Q-2", "Q-1"]


def test_filters_and_sort_are_kept_across_pages(staff_client, monkeypatch):
    monkeypatch.setattr(staff_views, "PAGE_SIZE", 2)
    for i in range(5):
        make_case(case_number=f"K-{i}", state=wf.ASSETS_UPLOADED, state_changed_at=at(i))
    make_case(case_number="OTHER", state=wf.SHIPPING)
    first = staff_client.get("/staff/", {"state": wf.ASSETS_UPLOADED, "sort": "waiting"})
    assert case_numbers(first) == ["K-4", "K-3"]
    links = [a.replace("&amp;", "&") for a in re.findall(r'<a href="\?([^"?][^"]*page=[^"]*)"', first.content.decode())]
    assert links and all("state=assets_uploaded" in a and "sort=waiting" in a for a in links), links
    second = staff_client.get("/staff/?" + next(a for a in links if "page=2" in a))
    assert case_numbers(second) == ["K-2", "K-1"]


# --- waiting since and whose turn ------------------------------------------------------------


def test_waiting_since_is_when_the_case_entered_its_state(staff_client, staff):
    case = make_case(case_number="W-1", state_changed_at=at(72))
    fire(case, "cancel", by=staff, reason="Moved away")
    entered = StateLog.objects.get(object_id=case.pk, transition="cancel").timestamp
    CaseNote = case.notes.model
    CaseNote.objects.create(case=case, text="A later note does not restart the wait")
    Case.objects.filter(pk=case.pk).update(needs_attention=False)
    html = staff_client.get("/staff/").content.decode()
    shown = re.search(r'<time datetime="([^"]+)"', html).group(1)
    assert shown == timezone.localtime(entered).isoformat()


def test_waiting_since_of_an_untouched_case(staff_client):
    make_case(case_number="W-2", state_changed_at=at(26))
    html = staff_client.get("/staff/").content.decode()
    assert "1\xa0day, 2\xa0hours ago" in html


@pytest.mark.parametrize(
    "state,attention,turn,words",
    [
        (wf.ELIGIBLE, False, "Clinic staff", "Send to Align once the checklist passes"),
        (wf.ASSETS_UPLOADED, False, "Align", "Sends the treatment plan"),
        (wf.PLAN_RECEIVED, False, "Provider", "Reviews the plan"),
        (wf.PROVIDER_APPROVED, False, "Clinic staff", "Record the aligner purchase"),
        (wf.ORDER_CREATED, True, "Clinic staff", "Look at the failed call to Align and retry"),
        (wf.SHIPPING, False, "Nobody", "Finished: the aligners are shipped"),
    ],
)
def test_whose_turn_and_the_next_step(staff_client, state, attention, turn, words):
    make_case(state=state, needs_attention=attention)
    html = staff_client.get("/staff/").content.decode()
    cell = re.search(r'<td class="next-step">(.*?)</td>', html, re.S).group(1)
    assert f">{turn}</span> · {words}" in cell


def test_every_state_has_a_next_step():
    assert set(NEXT_STEPS) == set(wf.STATES)
    assert all(step.turn in TURN_LABELS for step in NEXT_STEPS.values())


# --- unknown filters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,message",
    [
        ({"status": "plan_received"}, "no filter named “status”"),
        ({"state": "plan_recieved"}, "Select a valid choice"),
        ({"sort": "oldest"}, "Select a valid choice"),
        ({"state": wf.PLAN_RECEIVED, "stuk": "on"}, "no filter named “stuk”"),
    ],
)
def test_unknown_filters_are_reported_not_ignored(staff_client, params, message):
    make_case(case_number="U-1")
    response = staff_client.get("/staff/", params)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'role="alert"' in html
    assert case_numbers(response) == []


def test_an_unknown_sort_or_filter_beside_a_saved_search_is_reported(staff_client):
    make_case(case_number="U-2")
    location = staff_client.post("/staff/", {"q": "U-2"})["Location"]
    assert case_numbers(staff_client.get(location)) == ["U-2"]
    for extra in ("&sort=nonsense", "&colour=red", "&q=U-2"):
        response = staff_client.get(location + extra)
        assert response.status_code == 400, extra
        assert case_numbers(response) == []


@pytest.mark.parametrize("page,shown,says", [("junk", 1, "the first page"), ("99", 2, "the last page, 2")])
def test_a_page_that_does_not_exist_is_said_so(staff_client, monkeypatch, page, shown, says):
    monkeypatch.setattr(staff_views, "PAGE_SIZE", 2)
    for i in range(3):
        make_case(case_number=f"PG-{i}")
    response = staff_client.get("/staff/", {"page": page})
    assert response.status_code == 200
    assert response.context["page"].number == shown
    assert f"There is no page “{page}” in this list: {says} is shown." in response.content.decode()


# --- numbered pages -------------------------------------------------------------------------


def _links(response):
    nav = re.search(r'<nav class="pager".*?</nav>', response.content.decode(), re.S).group(0)
    return [
        None if item.strip() == "…" else int(re.sub(r"<[^>]+>", "", item).strip())
        for item in re.findall(r"<li[^>]*>(.*?)</li>", nav, re.S)
    ]


def test_numbered_pages_first_nearby_and_last(staff_client, monkeypatch):
    monkeypatch.setattr(staff_views, "PAGE_SIZE", 2)
    for i in range(24):  # 12 pages
        make_case(case_number=f"N-{i:02d}")
    assert _links(staff_client.get("/staff/")) == [1, 2, 3, None, 12]
    middle = staff_client.get("/staff/", {"page": 6})
    assert _links(middle) == [1, None, 4, 5, 6, 7, 8, None, 12]
    assert 'aria-current="page" class="current">6</a>' in middle.content.decode()
    assert _links(staff_client.get("/staff/", {"page": 12})) == [1, None, 10, 11, 12]


def test_numbered_pages_of_a_capped_count_do_not_invent_a_last_page(staff_client, monkeypatch):
    monkeypatch.setattr(staff_views, "PAGE_SIZE", 2)
    monkeypatch.setattr(staff_views, "COUNT_CAP", 6)
    for i in range(20):
        make_case(case_number=f"CAPPED-{i:02d}")
    location = staff_client.post("/staff/", {"q": "CAPPED"})["Location"]
    first = staff_client.get(location)
    assert "more than 6 cases" in first.content.decode()
    assert _links(first) == [1, 2, 3, None]  # pages 1-3 counted, and more
    fifth = staff_client.get(location + "&page=5")
    assert _links(fifth) == [1, None, 3, 4, 5, 6, None]
    assert len(case_numbers(fifth)) == 2


# --- the first page's cost ------------------------------------------------------------------


def _queries(client, params):
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/staff/", params).status_code == 200
    return len(queries)


@pytest.mark.parametrize("sort", ["state", "-state", "waiting", "-waiting", "case", "-case"])
def test_a_sorted_list_costs_the_same_queries_at_any_size(staff_client, sort):
    for i in range(3):
        make_case(state=wf.STATES[i], needs_attention=i == 1)
    few = _queries(staff_client, {"sort": sort})
    for i in range(40):
        make_case(state=wf.STATES[i % len(wf.STATES)])
    # 5: the list's 4 and the top bar's list of cases needing attention.
    assert few == _queries(staff_client, {"sort": sort}) == _queries(staff_client, {}) == 5


@pytest.mark.parametrize("sort", ["state", "-state", "waiting", "-waiting", "case", "-case"])
def test_every_sort_is_read_from_an_index(require_postgres, sort):
    """As the list's own order (figure 5): a page reads its index entries, never sorts every case."""
    make_case()
    sql, params = staff_cases(sort=sort)[:25].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_incremental_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Sort" not in plan, plan
    assert re.search(r"Index Scan (Backward )?using (case_state_order|case_waiting_order|\w+case_number\w*)", plan), (
        plan
    )


# --- the provider's list ----------------------------------------------------------------------


def _provider_rows(response):
    return [c.case_number for c in response.context["page"].object_list]


def test_provider_list_is_paged_with_a_bounded_page_and_constant_queries(provider_client, provider):
    def queries(params=None):
        with CaptureQueriesContext(connection) as captured:
            response = provider_client.get("/provider/", params or {})
        assert response.status_code == 200
        return len(captured), response

    for i in range(30):
        make_case(provider=provider, case_number=f"MANY-{i:03d}", state=wf.STATES[i % len(wf.STATES)])
    few, _ = queries()
    for i in range(30, 300):
        make_case(provider=provider, case_number=f"MANY-{i:03d}", state=wf.STATES[i % len(wf.STATES)])
    many, response = queries()
    assert few == many
    html = response.content.decode()
    assert len(_provider_rows(response)) == 25
    assert html.count('class="casenum"') <= 25 + 10  # the page, and the plans waiting for you
    assert "Page 1 of 12 · 300 cases" in html
    assert _links(response) == [1, 2, 3, None, 12]
    twelfth_queries, twelfth = queries({"page": 12})
    assert len(_provider_rows(twelfth)) == 0 or len(_provider_rows(twelfth)) <= 25
    assert set(_provider_rows(twelfth)).isdisjoint(_provider_rows(response))
    assert twelfth_queries <= many


def test_provider_plans_waiting_for_you_come_first_in_the_second_person(provider_client, provider, other_provider):
    make_case(provider=provider, case_number="MINE-OLD", state=wf.ACCEPTED, state_changed_at=at(1))
    make_case(provider=provider, case_number="MINE-WAIT", state=wf.PLAN_RECEIVED, state_changed_at=at(9))
    make_case(provider=provider, case_number="MINE-WAIT2", state=wf.PLAN_RECEIVED, state_changed_at=at(3))
    make_case(provider=other_provider, case_number="THEIRS-1", state=wf.PLAN_RECEIVED)
    response = provider_client.get("/provider/")
    html = response.content.decode()
    assert [c.case_number for c, _ in response.context["waiting"]] == ["MINE-WAIT", "MINE-WAIT2"]
    assert html.index("Plans waiting for you") < html.index("All your cases") < html.index("MINE-OLD")
    assert ">You</span> · Review the plan: approve it or ask for a revision" in html
    assert ">Align</span> · Makes and ships the aligners" in html
    assert ">The clinic</span> · " not in html  # no case of theirs waits for the clinic
    assert "Your cases" in html and "My cases" not in html
    assert "THEIRS-1" not in html


def test_provider_search_finds_only_their_own_cases(provider_client, provider, other_provider):
    make_case(provider=provider, case_number="OWN-1", patient=PatientFactory(last_name="Quillfeather"))
    make_case(provider=provider, case_number="OWN-2", patient=PatientFactory(last_name="Other"))
    make_case(provider=other_provider, case_number="OWN-9", patient=PatientFactory(last_name="Quillfeather"))
    for q, expected in [("quillfeather", ["OWN-1"]), ("OWN-", ["OWN-2", "OWN-1"]), ("OWN-9", [])]:
        response = provider_client.post("/provider/", {"q": q})
        assert response.status_code == 302
        assert q.lower() not in response["Location"].lower()  # names never in an address
        found = provider_client.get(response["Location"])
        assert sorted(_provider_rows(found)) == sorted(expected), q
        assert 'class="casenum">OWN-9<' not in found.content.decode()
    assert provider_client.get("/provider/", {"q": "Quillfeather"}).status_code == 400


def test_provider_list_sorts_and_reports_unknown_filters(provider_client, provider):
    make_case(provider=provider, case_number="PS-2", state=wf.SHIPPING, state_changed_at=at(1))
    make_case(provider=provider, case_number="PS-1", state=wf.PLAN_RECEIVED, state_changed_at=at(8))
    make_case(provider=provider, case_number="PS-3", state=wf.ELIGIBLE, state_changed_at=at(4))
    assert _provider_rows(provider_client.get("/provider/")) == ["PS-2", "PS-3", "PS-1"]
    assert _provider_rows(provider_client.get("/provider/", {"sort": "waiting"})) == ["PS-1", "PS-3", "PS-2"]
    assert _provider_rows(provider_client.get("/provider/", {"sort": "state"})) == ["PS-3", "PS-1", "PS-2"]
    assert _provider_rows(provider_client.get("/provider/", {"sort": "case"})) == ["PS-1", "PS-2", "PS-3"]
    for params in ({"sort": "nonsense"}, {"attention": "on"}, {"provider": "7"}):
        response = provider_client.get("/provider/", params)
        assert response.status_code == 400, params
        assert _provider_rows(response) == [] and 'role="alert"' in response.content.decode()


def test_the_plans_waiting_section_is_bounded_and_links_to_all_of_them(provider_client, provider, monkeypatch):
    monkeypatch.setattr(provider_views, "WAITING_SHOWN", 2)
    for i in range(3):
        make_case(provider=provider, case_number=f"WAIT-{i}", state=wf.PLAN_RECEIVED, state_changed_at=at(i))
    response = provider_client.get("/provider/")
    assert [c.case_number for c, _ in response.context["waiting"]] == ["WAIT-2", "WAIT-1"]
    link = re.search(r'<a href="\?([^"]*)" id="all-waiting"', response.content.decode()).group(1)
    everything = provider_client.get("/provider/?" + link.replace("&amp;", "&"))
    assert _provider_rows(everything) == ["WAIT-2", "WAIT-1", "WAIT-0"]
    assert everything.context["waiting"] == []  # a filtered list is the list itself
