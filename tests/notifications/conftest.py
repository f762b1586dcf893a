import pytest
from django.test import Client

from tests.support.factories import PatientFactory, ProviderFactory, UserFactory, make_case
from tests.support.mail import PHI, STAFF_ADDRESSES


@pytest.fixture(autouse=True)
def _mail_settings(settings):
    settings.ALIGN_ATTENTION_EMAILS = STAFF_ADDRESSES
    settings.ALIGN_PUBLIC_URL = "https://align.clinic.example"
    settings.ALIGN_EXECUTION = "inline"


@pytest.fixture
def provider(db):
    return ProviderFactory(user=UserFactory(username="dr-notify", email="dr.notify@practice.example"))


@pytest.fixture
def phi_case(provider):
    """A case whose patient has distinctive details, at `state` (default: assets uploaded)."""

    def build(state, **fields):
        patient = PatientFactory(
            first_name=PHI["first_name"], last_name=PHI["last_name"], mrn=PHI["mrn"], date_of_birth=PHI["dob"]
        )
        return make_case(provider=provider, patient=patient, state=state, **fields)

    return build


@pytest.fixture
def commit_hooks(django_capture_on_commit_callbacks):
    """Run what runs after commit (the test's transaction never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def provider_client(provider):
    client = Client()
    client.force_login(provider.user)
    return client
