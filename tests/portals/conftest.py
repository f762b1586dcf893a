import pytest
from django.test import Client

# One Chromium for every browser test module: a session fixture imported into two modules
# would be two fixtures, and Playwright refuses a second sync session in the same thread.
from tests.support.browser import browser, portal  # noqa: F401  (fixtures)


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
