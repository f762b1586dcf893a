"""The staff search keeps patient details out of addresses and access logs: it is a POST
answered with a redirect to an opaque search id. Invalid filters are reported, not dropped."""

import logging
import re
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

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
