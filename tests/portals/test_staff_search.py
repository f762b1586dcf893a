"""The staff search keeps patient details out of addresses and access logs: it is a POST
answered with a redirect to an opaque search id. Invalid filters are reported, not dropped."""

import logging
import re
from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.support.factories import PatientFactory, make_case
from tests.support.pages import messages_of


def case_numbers(response):
    return [c.case_number for c in response.context["page"].object_list]


@pytest.mark.django_db
def test_search_is_a_post_redirected_to_an_opaque_search_id(staff_client):
    make_case(case_number="FIND-9", patient=PatientFactory(first_name="Zebediah", last_name="Quill", mrn="MRN-4711"))
    make_case(case_number="OTHER-1")
    response = staff_client.post("/staff/", {"q": "zebediah quill"})
    assert response.status_code == 302
    location = response["Location"]
    assert re.fullmatch(r"/staff/\?s=[A-Za-z0-9_-]{8,}", location), location
    assert "zebediah" not in location.lower() and "quill" not in location.lower()
    page = staff_client.get(location)
    assert page.status_code == 200
    assert case_numbers(page) == ["FIND-9"]
    assert 'value="zebediah quill"' in page.content.decode()  # the box keeps what was searched
    # MRN and case number too, and the filters go with the search.
    assert case_numbers(staff_client.get(staff_client.post("/staff/", {"q": "mrn-4711"})["Location"])) == ["FIND-9"]
    assert (
        case_numbers(staff_client.get(staff_client.post("/staff/", {"q": "FIND", "state": "shipping"})["Location"]))
        == []
    )


@pytest.mark.django_db
def test_a_search_id_is_only_good_in_the_session_that_made_it(staff_client, staff):
    make_case(case_number="FIND-9", patient=PatientFactory(last_name="Quill"))
    location = staff_client.post("/staff/", {"q": "Quill"})["Location"]
    other = Client()
    other.force_login(type(staff).objects.create(username="colleague", is_staff=True))
    response = other.get(location)
    assert response.status_code == 404
    assert "search again" in " ".join(messages_of(response)).lower()


@pytest.mark.django_db
def test_search_terms_in_the_address_are_refused_not_used(staff_client):
    make_case(case_number="FIND-9", patient=PatientFactory(last_name="Quill"))
    response = staff_client.get("/staff/", {"q": "Quill"})
    assert response.status_code == 400
    assert case_numbers(response) == []
    assert "search box" in response.content.decode()


INVALID = [
    ("state", "no_such_state", "Select a valid choice"),
    ("state", "plan_received\x00", "Select a valid choice"),
    ("q", "x" * 101, "at most 100 characters"),
    ("q", "Quill\x00", "Null characters are not allowed"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method,field,value,message",
    [("post", *bad) for bad in INVALID] + [("get", *bad) for bad in INVALID if bad[0] != "q"],
)
def test_invalid_filters_are_reported_not_dropped(staff_client, method, field, value, message):
    make_case(case_number="F-1")
    response = getattr(staff_client, method)("/staff/", {field: value})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert 'role="alert"' in html
    assert case_numbers(response) == []  # nothing is shown as if the filter had applied


@pytest.mark.django_db(transaction=True)
def test_patient_details_never_reach_the_access_log(staff, caplog):
    """The staff search over a real HTTP server whose access log is runserver's own
    (django.server): the log is grepped for the patient's name, MRN and date of birth."""
    from django.conf import settings
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import WSGIRequestHandler
    from django.db import connections
    from django.test.testcases import LiveServerThread

    patient = PatientFactory(
        first_name="Zebediah", last_name="Quillfeather", mrn="MRN-998877", date_of_birth="1987-03-14"
    )
    case = make_case(case_number="LOG-1", patient=patient)

    class LoggingServer(LiveServerThread):
        def _create_server(self, connections_override=None):
            server = self.server_class(
                (self.host, self.port),
                WSGIRequestHandler,
                allow_reuse_address=False,
                connections_override=connections_override,
            )
            if connections_override:  # SQLite in memory: the one shared connection stays open
                server._close_connections = lambda: None
            return server

    shared = {c.alias: c for c in connections.all() if c.vendor == "sqlite" and c.is_in_memory_db()}
    for connection in shared.values():
        connection.inc_thread_sharing()
    server = LoggingServer("127.0.0.1", StaticFilesHandler, connections_override=shared)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    assert server.error is None
    session = requests.Session()
    try:
        base = f"http://127.0.0.1:{server.port}"
        client = Client()
        client.force_login(staff)
        session.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
        caplog.set_level(logging.INFO, logger="django.server")
        page = session.get(f"{base}/staff/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        for query in ("Zebediah Quillfeather", "MRN-998877", "1987-03-14"):
            answer = session.post(
                f"{base}/staff/",
                data={"q": query, "csrfmiddlewaretoken": token},
                headers={"Referer": f"{base}/staff/"},
                timeout=10,
            )
            assert answer.status_code == 200
            assert urlsplit(answer.url).path == "/staff/"
        assert (
            "LOG-1"
            in session.post(
                f"{base}/staff/",
                data={"q": "quillfeather", "csrfmiddlewaretoken": token},
                headers={"Referer": f"{base}/staff/"},
                timeout=10,
            ).text
        )
        assert session.get(f"{base}/staff/cases/{case.pk}/", timeout=10).status_code == 200
    finally:
        session.close()  # no kept-alive connection outlives the server
        server.terminate()
        server.join()
        for connection in shared.values():
            connection.dec_thread_sharing()
    log = "\n".join(r.getMessage() for r in caplog.records if r.name == "django.server")
    assert "POST /staff/" in log and "GET /staff/?s=" in log  # the log was captured
    for detail in ("Zebediah", "Quillfeather", "quillfeather", "998877", "1987-03-14", "1987"):
        assert detail not in log


# --- the capped count (bench figure 5) ----------------------------------------------------
# A search counts its matches only up to a cap, so a search matching thousands of cases
# costs no more than one matching a few hundred; past the cap the pager says "more than N".


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of 2 and a cap of 6, so a few cases show what thousands would."""
    from align_workflow.portals.views import staff

    monkeypatch.setattr(staff, "PAGE_SIZE", 2)
    monkeypatch.setattr(staff, "COUNT_CAP", 6)


def _search(client, q, page=None):
    location = client.post("/staff/", {"q": q})["Location"]
    return client.get(f"{location}&page={page}" if page else location)


@pytest.mark.django_db
def test_a_search_past_the_cap_says_more_than_n_and_its_pages_still_work(staff_client, small_pages):
    for i in range(8):
        make_case(case_number=f"QZMANY-{i}")
    make_case(case_number="OTHER-1")
    first = _search(staff_client, "QZMANY")
    html = first.content.decode()
    assert "more than 6 cases" in html, html
    assert "Page 1 of more than 3" in html, html
    seen = []
    for page in (1, 2, 3):
        response = _search(staff_client, "QZMANY", page)
        assert response.status_code == 200
        assert len(case_numbers(response)) == 2
        seen += case_numbers(response)
    assert len(set(seen)) == 6 and all(n.startswith("QZMANY-") for n in seen)
    # The last page within the cap links on to the next one, which counts further.
    assert "page=4" in _search(staff_client, "QZMANY", 3).content.decode()
    fourth = _search(staff_client, "QZMANY", 4)
    assert len(case_numbers(fourth)) == 2 and not set(case_numbers(fourth)) & set(seen)
    assert "Page 4 of 4 · 8 cases" in fourth.content.decode()


@pytest.mark.django_db
def test_a_search_within_the_cap_shows_the_exact_count(staff_client, small_pages):
    for i in range(6):
        make_case(case_number=f"FEW-{i}")
    html = _search(staff_client, "FEW").content.decode()
    assert "Page 1 of 3 · 6 cases" in html, html
    assert "more than" not in html


@pytest.mark.django_db
def test_the_search_count_stops_at_the_cap(staff_client, small_pages):
    """The count is of a sliced subquery (LIMIT cap + 1), on every database."""
    for i in range(3):
        make_case(case_number=f"CAP-{i}")
    location = staff_client.post("/staff/", {"q": "CAP"})["Location"]
    with CaptureQueriesContext(db_connection) as queries:
        assert staff_client.get(location).status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"] and "LIKE" in q["sql"]]
    assert len(counts) == 1, counts
    assert re.search(r"LIMIT 7\b", counts[0]), counts[0]


def _search_queries(client, q):
    location = client.post("/staff/", {"q": q})["Location"]
    with CaptureQueriesContext(db_connection) as queries:
        assert client.get(location).status_code == 200
    return len(queries)


@pytest.mark.django_db
def test_search_query_count_is_pinned(staff_client):
    """Session, user, the counts (per state, needing attention, outside the workflow: one
    query), the capped count, the page, and the top bar's list of cases needing attention
    (one query): the same however many cases match."""
    for i in range(3):
        make_case(case_number=f"Q-{i}")
    few = _search_queries(staff_client, "Q-")
    for i in range(3, 40):
        make_case(case_number=f"Q-{i}")
    assert few == _search_queries(staff_client, "Q-") == 6


@pytest.mark.django_db
def test_the_list_counts_are_one_query_and_count_what_the_three_did(staff_client):
    """Counts per state, needing attention and outside the workflow (another lab, or no
    prescription at all) come from one scan of the cases."""
    from align_workflow.cases.models import Case, Prescription
    from align_workflow.portals import selectors
    from states import align_case as wf

    make_case(case_number="C-1", state=wf.PLAN_RECEIVED, needs_attention=True)
    make_case(case_number="C-2", state=wf.PLAN_RECEIVED)
    make_case(case_number="C-3", lab=Prescription.Lab.IN_HOUSE)
    Case.objects.create(case_number="C-4", patient=PatientFactory())  # no prescription yet
    with CaptureQueriesContext(db_connection) as queries:
        counts = selectors.list_counts()
    assert len(queries) == 1
    assert {c.state: c.total for c in counts.states}[wf.PLAN_RECEIVED] == 2
    assert sum(c.total for c in counts.states) == 2
    assert counts.attention == selectors.attention_count() == 1
    assert counts.outside == selectors.outside_workflow_count() == 2
    assert [(c.state, c.total, c.stuck) for c in counts.states] == [
        (c.state, c.total, c.stuck) for c in selectors.state_counts()
    ]
