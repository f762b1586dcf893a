"""The portals' 403, 404, 405 and 500 pages: styled like the portals, saying what to do,
never Django's debug pages (DEBUG on, as in development and the demo, and off, as in
production); and a click after the session expired keeps its intent."""

from unittest import mock

import pytest
from django.test import Client, RequestFactory, override_settings
from django.urls import get_callable

from align_workflow.urls import handler500
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.pages import messages_of

# What Django's debug pages print and a styled page never does.
DEBUG_OUTPUT = (
    "URLconf",
    "urlpatterns",
    "Django tried these URL patterns",
    "DEBUG = True",
    "Traceback",
    "Request Method",
)


def assert_styled(response, status, *phrases):
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'class="topbar"' in html and "portals/portals.css" in html, "not the portals' page"
    for text in DEBUG_OUTPUT:
        assert text not in html, f"debug output on the {status} page: {text!r}"
    for phrase in phrases:
        assert phrase in html
    return html


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.django_db
def test_another_providers_case_is_a_styled_404_without_url_patterns(debug, provider, other_provider):
    theirs = make_case(provider=other_provider, state=wf.PLAN_RECEIVED)
    client = Client()
    client.force_login(provider.user)
    html = assert_styled(client.get(f"/provider/cases/{theirs.pk}/"), 404, "Page not found", 'href="/"')
    assert theirs.case_number not in html and theirs.patient.mrn not in html and theirs.patient.last_name not in html


@pytest.mark.django_db
def test_an_unknown_address_is_a_styled_404(debug, staff):
    client = Client()
    client.force_login(staff)
    assert_styled(client.get("/no/such/page/"), 404, "Page not found")
    # The missing slash is still added first (CommonMiddleware), not answered with a 404.
    assert client.get("/staff").status_code == 301


@pytest.mark.django_db
def test_a_provider_on_the_staff_portal_gets_a_styled_403(debug, provider):
    client = Client()
    client.force_login(provider.user)
    html = assert_styled(client.get("/staff/"), 403, "not open to your account")
    assert 'href="/"' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "action", "case_page"),
    [
        ("staff", "/staff/cases/{pk}/cancel/", "/staff/cases/{pk}/"),
        ("staff", "/staff/cases/{pk}/send/", "/staff/cases/{pk}/"),
        ("provider", "/provider/cases/{pk}/request-revision/", "/provider/cases/{pk}/"),
        ("provider", "/provider/cases/{pk}/approve/", "/provider/cases/{pk}/"),
    ],
)
def test_get_on_an_action_is_a_styled_405_with_the_way_back_to_the_case(debug, staff, provider, who, action, case_page):
    case = make_case(provider=provider, state=wf.PLAN_RECEIVED)
    client = Client()
    client.force_login(staff if who == "staff" else provider.user)
    response = client.get(action.format(pk=case.pk))
    html = assert_styled(response, 405, "nothing was done", f'href="{case_page.format(pk=case.pk)}"')
    assert response["Allow"] == "POST"
    assert case.patient.last_name not in html


@pytest.mark.django_db
def test_the_apis_answer_in_json(debug):
    response = Client().get("/api/no-such-endpoint")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    # An endpoint's own 405 stays its JSON answer.
    refused = Client().get("/api/align/events")
    assert refused.status_code == 405 and refused.json()["error"]["code"]


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_the_500_page_needs_neither_the_database_nor_the_user(django_assert_num_queries):
    request = RequestFactory().get("/staff/")  # no session, no user: the middleware may not have run
    with django_assert_num_queries(0):
        response = get_callable(handler500)(request)
    assert_styled(response, 500, "Something went wrong")


@pytest.mark.django_db
def test_a_server_error_with_debug_off_is_the_styled_500(staff, settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    with mock.patch("align_workflow.portals.views.staff.render", side_effect=RuntimeError("boom")):
        response = client.get("/staff/")
    html = assert_styled(response, 500, "Something went wrong")
    assert "boom" not in html


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["staff", "provider"])
def test_a_click_after_the_session_expired_comes_back_to_the_case_with_a_message(staff, provider, flags_on, who):
    case = make_case(provider=provider, state=wf.PLAN_RECEIVED)
    user = staff if who == "staff" else provider.user
    action, data = (
        ("cancel/", {"reason": "Patient moved away"}) if who == "staff" else ("request-revision/", {"comments": "x"})
    )
    case_page = f"/{who}/cases/{case.pk}/"
    client = Client()  # signed out: the session expired
    response = client.post(case_page + action, data)
    assert response.status_code == 302
    login = response["Location"]
    assert login == f"/accounts/login/?next={case_page}"  # the case page, not the action
    assert "Patient moved away" not in login
    page = client.get(login)
    assert "was not done" in " ".join(messages_of(page))
    signed_in = client.post(login, {"username": user.username, "password": "pw", "next": case_page})
    assert signed_in.status_code == 302 and signed_in["Location"] == case_page
    case_response = client.get(case_page)
    assert case_response.status_code == 200
    told = " ".join(messages_of(case_response))
    assert "was not done" in told and "again" in told
    case.refresh_from_db()
    assert case.state == wf.PLAN_RECEIVED
    # Told once: the next page has no such message.
    assert "was not done" not in " ".join(messages_of(client.get(case_page)))


@pytest.mark.django_db
def test_a_form_from_an_out_of_date_page_is_a_styled_403_back_to_the_case(debug, staff, provider):
    case = make_case(provider=provider)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(f"/staff/cases/{case.pk}/cancel/", {"reason": "x", "csrfmiddlewaretoken": "stale"})
    assert_styled(response, 403, "nothing was done", f'href="/staff/cases/{case.pk}/"')
