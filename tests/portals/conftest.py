import pytest
from django.test import Client


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
