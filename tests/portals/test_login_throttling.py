"""Login throttling (django-axes): repeated wrong passwords lock the sign-in, on the
portals' page and on the admin's, with a clear message, until an administrator lifts it."""

import pytest
from django.test import Client

from tests.support.factories import StaffFactory

pytestmark = pytest.mark.django_db

PORTAL_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


def attempt(client, url, username, password):
    return client.post(url, {"username": username, "password": password, "next": "/"})


@pytest.mark.parametrize("url", [PORTAL_LOGIN, ADMIN_LOGIN])
def test_thirty_wrong_passwords_then_the_right_one_is_refused(url):
    user = StaffFactory()
    client = Client()
    for _ in range(30):
        attempt(client, url, user.username, "wrong")
    response = attempt(client, url, user.username, "pw")
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many failed sign-ins" in text
    assert "administrator" in text
    assert "locked for 30 minutes" in " ".join(text.split())
    assert "_auth_user_id" not in client.session
    assert client.get("/staff/").status_code == 302  # still signed out


def test_a_lock_out_on_the_portal_also_holds_on_the_admin_login():
    user = StaffFactory()
    client = Client()
    for _ in range(10):
        attempt(client, PORTAL_LOGIN, user.username, "wrong")
    assert attempt(client, ADMIN_LOGIN, user.username, "pw").status_code == 429


def test_a_few_mistakes_do_not_lock_and_success_starts_the_count_again():
    user = StaffFactory()
    client = Client()
    for _ in range(3):
        for _ in range(9):
            assert attempt(client, PORTAL_LOGIN, user.username, "wrong").status_code == 200
        assert attempt(client, PORTAL_LOGIN, user.username, "pw").status_code == 302
        client.post("/accounts/logout/")


def test_another_user_is_not_locked_by_someone_elses_failures():
    victim, other = StaffFactory(), StaffFactory()
    client = Client()
    for _ in range(30):
        attempt(client, PORTAL_LOGIN, victim.username, "wrong")
    assert attempt(client, PORTAL_LOGIN, other.username, "pw").status_code == 302


def test_after_the_admin_lifts_the_lock_out_the_user_signs_in():
    from axes.models import AccessAttempt

    user = StaffFactory()
    client = Client()
    for _ in range(30):
        attempt(client, PORTAL_LOGIN, user.username, "wrong")
    assert attempt(client, PORTAL_LOGIN, user.username, "pw").status_code == 429

    admin = StaffFactory(is_superuser=True)
    admin_client = Client()
    admin_client.force_login(admin)
    changelist = admin_client.get("/admin/axes/accessattempt/")
    assert changelist.status_code == 200
    assert user.username in changelist.content.decode()
    locked = AccessAttempt.objects.filter(username=user.username)
    response = admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [a.pk for a in locked], "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username=user.username).exists()

    response = attempt(client, PORTAL_LOGIN, user.username, "pw")
    assert response.status_code == 302
    assert client.get("/staff/").status_code == 200
