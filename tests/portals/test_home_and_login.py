"""The root URL, the login page and logout."""

import pytest
from django.test import Client

from tests.support.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_root_goes_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"


def test_staff_root_goes_to_staff_portal(staff_client):
    assert staff_client.get("/")["Location"] == "/staff/"


def test_provider_root_goes_to_provider_portal(provider_client):
    assert provider_client.get("/")["Location"] == "/provider/"


def test_user_without_a_portal_is_told_so(client):
    client.force_login(UserFactory())
    response = client.get("/", follow=True)
    assert response.request["PATH_INFO"] == "/accounts/login/"
    assert "no portal" in response.content.decode()


def test_login_page_is_the_portals_own(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert "portals/login.html" in [t.name for t in response.templates]
    assert b"csrfmiddlewaretoken" in response.content


def test_login_then_land_in_own_portal(client, staff):
    response = client.post("/accounts/login/", {"username": staff.username, "password": "pw"}, follow=True)
    assert response.request["PATH_INFO"] == "/staff/"


def test_wrong_password_shows_an_error(client, staff):
    response = client.post("/accounts/login/", {"username": staff.username, "password": "nope"})
    assert response.status_code == 200
    assert "correct" in response.content.decode()


def test_login_redirects_back_to_next(client, provider):
    response = client.post(
        "/accounts/login/?next=/provider/", {"username": provider.user.username, "password": "pw", "next": "/provider/"}
    )
    assert response["Location"] == "/provider/"


def test_logout_is_post_only(staff_client):
    assert staff_client.get("/accounts/logout/").status_code == 405
    response = staff_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert staff_client.get("/staff/").status_code == 302  # signed out


def test_logout_needs_csrf(staff):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post("/accounts/logout/").status_code == 403
