"""Settings from the environment are typed and validated: a bad value stops start-up with
ImproperlyConfigured naming the variable and what is wrong with it, never echoing the value
(it may be a secret); good values and unset variables behave as before."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tests.support.environ import load_settings


@pytest.mark.parametrize(
    "variable, value, why",
    [
        ("ALIGN_RETRY_MAX_ATTEMPTS", "abc", "Not a valid integer"),
        ("ALIGN_RETRY_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
        ("ALIGN_RETRY_BASE_SECONDS", "thirty", "Not a valid number"),
        ("ALIGN_READ_TIMEOUT", "-1", "greater than 0"),
        ("ALIGN_CONNECT_TIMEOUT", "nan", "Special numeric values"),
        ("ALIGN_SWEEP_SECONDS", "0", "greater than 0"),
        ("ALIGN_SCREENSHOT_MAX_BYTES", "-5", "greater than or equal to 1"),
        ("ALIGN_EVENT_FUTURE_SKEW_SECONDS", "5m", "Not a valid integer"),
        ("DB_CONN_MAX_AGE", "forever", "Not a valid integer"),
        ("LOGIN_FAILURE_LIMIT", "0", "greater than or equal to 1"),
        ("LOGIN_LOCKOUT_MINUTES", "half an hour", "Not a valid integer"),
        ("DJANGO_DEBUG", "maybe", "Not a valid boolean"),
        ("ALIGN_EXECUTION", "celry", "Must be one of: inline, celery"),
        ("ALIGN_LOG_LEVEL", "LOUD", "Must be one of"),
        ("ALIGN_SERVICE_URL", "align.example.com", "Not a valid URL"),
        ("APP_BASE_URL", "ftp://clinic.example.com", "Not a valid URL"),
        ("ALIGN_VAULT_URL", "vault.example.com", "Not a valid URL"),
        ("REDIS_URL", "127.0.0.1:6379", "Not a valid URL"),
        ("CELERY_BROKER_URL", "broker", "Not a valid URL"),
        ("DATABASE_URL", "nosuchdb://db.example.com/cases", "Not a valid database URL"),
        ("CLINIC_TIME_ZONE", "Mars/Olympus_Mons", "Not a known time zone name"),
        ("CLINIC_TIME_ZONE", "../../etc/passwd", "Not a known time zone name"),
        ("CARRIER_TRACKING_URLS", "UPS=https://ups.example.com", "Not valid JSON"),
        ("CARRIER_TRACKING_URLS", '["https://ups.example.com/{number}"]', "Not a JSON object"),
        ("CARRIER_TRACKING_URLS", '{"UPS": "https://ups.example.com/track"}', "containing {number}"),
        ("CARRIER_TRACKING_URLS", '{"UPS": "javascript:alert({number})"}', "http(s) URL"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_wrong(monkeypatch, variable, value, why):
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings(monkeypatch, **{variable: value})
    message = str(refused.value)
    assert variable in message
    assert why in message
    if len(value) > 3:
        assert value not in message


def test_a_secret_in_a_bad_url_is_not_repeated(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL") as refused:
        load_settings(monkeypatch, DATABASE_URL="nosuchdb://cases:hunter2-secret@db.example.com/cases")
    assert "hunter2" not in str(refused.value)


def test_django_debug_in_production_checks_bools_too(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECURE_SSL_REDIRECT"):
        load_settings(monkeypatch, DJANGO_DEBUG="0", DJANGO_SECURE_SSL_REDIRECT="sometimes")


def test_good_values_parse(monkeypatch):
    loaded = load_settings(
        monkeypatch,
        ALIGN_RETRY_MAX_ATTEMPTS="7",
        ALIGN_READ_TIMEOUT="2.5",
        ALIGN_EXECUTION="celery",
        ALIGN_SERVICE_URL="http://align-service:8080",  # a host name without a dot (a container's)
        ALIGN_VAULT_URL="https://vault.example.com/v1",
        APP_BASE_URL="https://clinic.example.com",
        REDIS_URL="redis://cache:6379/2",
        DJANGO_ALLOWED_HOSTS="clinic.example.com,,admin.example.com",
        DJANGO_DEBUG="yes",
        ALIGN_LOG_LEVEL="debug",
    )
    assert loaded["ALIGN_RETRY_MAX_ATTEMPTS"] == 7
    assert loaded["ALIGN_READ_TIMEOUT"] == 2.5
    assert loaded["ALIGN_EXECUTION"] == "celery"
    assert loaded["ALIGN_SERVICE_URL"] == "http://align-service:8080"
    assert loaded["ALIGN_VAULT_URL"] == "https://vault.example.com/v1"
    assert loaded["APP_BASE_URL"] == "https://clinic.example.com"
    assert loaded["CACHES"]["default"]["LOCATION"] == "redis://cache:6379/2"
    assert loaded["CELERY_BROKER_URL"] == "redis://cache:6379/2"
    assert loaded["ALLOWED_HOSTS"] == ["clinic.example.com", "admin.example.com"]
    assert loaded["DEBUG"] is True
    assert loaded["LOGGING"]["loggers"]["align_workflow"]["level"] == "DEBUG"


def test_unset_variables_keep_their_defaults(monkeypatch):
    names = [
        "ALIGN_RETRY_MAX_ATTEMPTS",
        "ALIGN_READ_TIMEOUT",
        "ALIGN_CONNECT_TIMEOUT",
        "ALIGN_EXECUTION",
        "ALIGN_SERVICE_URL",
        "ALIGN_VAULT_URL",
        "APP_BASE_URL",
        "LOGIN_FAILURE_LIMIT",
        "ALIGN_LOG_LEVEL",
    ]
    loaded = load_settings(monkeypatch, **dict.fromkeys(names))
    assert loaded["ALIGN_RETRY_MAX_ATTEMPTS"] == 5
    assert loaded["ALIGN_READ_TIMEOUT"] == 10
    assert loaded["ALIGN_CONNECT_TIMEOUT"] == 3.05
    assert loaded["ALIGN_EXECUTION"] == "inline"
    assert loaded["ALIGN_SERVICE_URL"] == "http://127.0.0.1:8765"
    assert loaded["ALIGN_VAULT_URL"] == "local"
    assert loaded["APP_BASE_URL"] == "http://127.0.0.1:8000"
    assert loaded["AXES_FAILURE_LIMIT"] == 10
    assert loaded["LOGGING"]["loggers"]["align_workflow"]["level"] == "INFO"


def test_manage_py_stops_on_a_bad_value_with_the_variable_named():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "1", "ALIGN_RETRY_MAX_ATTEMPTS": "abc"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert 'Environment variable "ALIGN_RETRY_MAX_ATTEMPTS" invalid: Not a valid integer' in result.stderr


def test_the_clinic_time_zone_and_carrier_links_are_read(monkeypatch):
    names = load_settings(
        monkeypatch,
        CLINIC_TIME_ZONE="Europe/Berlin",
        CARRIER_TRACKING_URLS='{"Royal Mail": "https://track.example.com/rm/{number}", "DHL": ""}',
    )
    assert names["TIME_ZONE"] == "Europe/Berlin"
    links = names["CARRIER_TRACKING_URLS"]
    assert links["Royal Mail"] == "https://track.example.com/rm/{number}"
    assert "DHL" not in links and links["UPS"].startswith("https://www.ups.com/")
    defaults = load_settings(monkeypatch, CLINIC_TIME_ZONE=None, CARRIER_TRACKING_URLS=None)
    assert defaults["TIME_ZONE"] == "UTC" and set(defaults["CARRIER_TRACKING_URLS"]) == {"UPS", "FedEx", "USPS", "DHL"}
