import pytest
from django.test import Client

# The browser fixtures, defined once for every browser test module here: imported into two
# modules, the session's one Chromium would be started twice (Playwright's sync API then fails).
from tests.support.browser import browser, portal  # noqa: F401


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def provider_client(provider):
    client = Client()
    client.force_login(provider.user)
    return client
