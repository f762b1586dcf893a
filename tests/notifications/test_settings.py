"""The email settings come from the environment through the typed readers."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tests.support.environ import load_settings


@pytest.mark.parametrize(
    "variable, value, why",
    [
        ("EMAIL_PORT", "smtp", "Not a valid integer"),
        ("EMAIL_PORT", "0", "greater than or equal to 1"),
        ("EMAIL_USE_TLS", "sometimes", "Not a valid boolean"),
        ("EMAIL_TIMEOUT", "-1", "greater than 0"),
        ("ALIGN_PUBLIC_URL", "align.clinic.example", "Not a valid URL"),
        ("ALIGN_NOTIFICATION_RETRY_SECONDS", "0", "greater than or equal to 1"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch, variable, value, why):
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings(monkeypatch, **{variable: value})
    assert variable in str(refused.value) and why in str(refused.value)


def test_good_values_parse(monkeypatch):
    loaded = load_settings(
        monkeypatch,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_HOST="smtp.clinic.example",
        EMAIL_PORT="587",
        EMAIL_HOST_USER="mailer",
        EMAIL_HOST_PASSWORD="pw",
        EMAIL_USE_TLS="yes",
        DEFAULT_FROM_EMAIL="Clinic <align@clinic.example>",
        EMAIL_FILE_PATH="/tmp/align-mail",
        ALIGN_ATTENTION_EMAILS="desk@clinic.example, ,lead@clinic.example",
        ALIGN_PUBLIC_URL="https://align.clinic.example",
    )
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert (loaded["EMAIL_HOST"], loaded["EMAIL_PORT"], loaded["EMAIL_USE_TLS"]) == ("smtp.clinic.example", 587, True)
    assert (loaded["EMAIL_HOST_USER"], loaded["EMAIL_HOST_PASSWORD"]) == ("mailer", "pw")
    assert loaded["DEFAULT_FROM_EMAIL"] == "Clinic <align@clinic.example>"
    assert str(loaded["EMAIL_FILE_PATH"]) == "/tmp/align-mail"
    assert loaded["ALIGN_ATTENTION_EMAILS"] == ["desk@clinic.example", "lead@clinic.example"]
    assert loaded["ALIGN_PUBLIC_URL"] == "https://align.clinic.example"


def test_defaults_print_emails_in_development_and_use_smtp_in_production(monkeypatch):
    unset = dict.fromkeys(["EMAIL_BACKEND", "ALIGN_PUBLIC_URL", "ALIGN_ATTENTION_EMAILS", "APP_BASE_URL"])
    development = load_settings(monkeypatch, DJANGO_DEBUG="1", **unset)
    assert development["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert development["ALIGN_PUBLIC_URL"] == development["APP_BASE_URL"] == "http://127.0.0.1:8000"
    assert development["ALIGN_ATTENTION_EMAILS"] == []
    production = load_settings(monkeypatch, DJANGO_DEBUG="0", **unset)
    assert production["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"


def test_an_email_backend_that_cannot_be_imported_stops_start_up(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtpp.EmailBackend"
    with pytest.raises(SystemCheckError, match="align_workflow.E020"):
        call_command("check")
