"""Production fails closed: DEBUG is off unless asked for, and with DEBUG off a demo (or
unset) secret is a system-check error naming the setting; `check --deploy` exits non-zero
and the WSGI application refuses to start."""

import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

# The secrets production must set; each has a public demo value for `make run`.
SECRET_VARIABLES = {
    "SECRET_KEY": "DJANGO_SECRET_KEY",
    "ALIGN_EVENTS_SECRET": "ALIGN_EVENTS_SECRET",
    "ALIGN_INBOUND_TOKEN": "ALIGN_INBOUND_TOKEN",
    "ALIGN_CLIENT_SECRET": "ALIGN_CLIENT_SECRET",
}


def production_env(**overrides):
    """The environment of a production process: DEBUG off, every secret set to a real value."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DJANGO_")
        and k not in SECRET_VARIABLES.values()
        and k not in ("ALIGN_VAULT_URL", "ALIGN_VAULT_API_KEY")
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="example.com",
        DJANGO_SETTINGS_MODULE="align_workflow.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        ALIGN_EVENTS_SECRET="whsec_" + secrets.token_urlsafe(32),
        ALIGN_INBOUND_TOKEN=secrets.token_urlsafe(32),
        ALIGN_CLIENT_SECRET=secrets.token_urlsafe(32),
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(argv, env):
    return subprocess.run(
        [sys.executable, *argv], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_debug_is_off_unless_django_debug_is_1():
    code = "import align_workflow.settings as s; print(s.DEBUG)"
    env = production_env()
    env.pop("DJANGO_DEBUG")
    assert run(["-c", code], env).stdout.strip() == "False"
    assert run(["-c", code], dict(env, DJANGO_DEBUG="1")).stdout.strip() == "True"


def test_check_deploy_passes_with_real_secrets():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("setting", sorted(SECRET_VARIABLES))
@pytest.mark.parametrize("how", ["demo", "unset"])
def test_check_deploy_fails_on_a_demo_or_unset_secret(setting, how):
    variable = SECRET_VARIABLES[setting]
    # "demo": the variable says exactly the public demo value; "unset": the default applies.
    value = {"demo": getattr(settings, setting), "unset": None}[how]
    assert getattr(settings, setting)  # the test process runs with the demo values
    result = run(["manage.py", "check", "--deploy"], production_env(**{variable: value}))
    assert result.returncode != 0
    assert "align_workflow.E002" in result.stderr
    assert setting in result.stderr
    for other in set(SECRET_VARIABLES) - {setting}:
        assert f"{other} " not in result.stderr


def test_check_names_an_empty_secret():
    result = run(["manage.py", "check"], production_env(ALIGN_INBOUND_TOKEN=""))
    assert result.returncode != 0
    assert "ALIGN_INBOUND_TOKEN" in result.stderr


def test_the_vault_key_is_checked_when_the_vault_is_an_http_api():
    remote = run(
        ["manage.py", "check"], production_env(ALIGN_VAULT_URL="https://vault.example.com", ALIGN_VAULT_API_KEY=None)
    )
    assert remote.returncode != 0
    assert "ALIGN_VAULT_API_KEY" in remote.stderr
    keyed = run(
        ["manage.py", "check"],
        production_env(ALIGN_VAULT_URL="https://vault.example.com", ALIGN_VAULT_API_KEY=secrets.token_urlsafe(24)),
    )
    assert keyed.returncode == 0, keyed.stderr


def test_a_demo_secret_is_fine_with_debug_on():
    result = run(
        ["manage.py", "check"], production_env(DJANGO_DEBUG="1", ALIGN_CLIENT_SECRET=None, DJANGO_SECRET_KEY=None)
    )
    assert result.returncode == 0, result.stderr


def test_wsgi_application_refuses_to_start_with_a_demo_secret():
    code = "from align_workflow.wsgi import application; print('started')"
    refused = run(["-c", code], production_env(ALIGN_EVENTS_SECRET=None))
    assert refused.returncode != 0
    assert "started" not in refused.stdout
    assert "ALIGN_EVENTS_SECRET" in refused.stderr
    started = run(["-c", code], production_env())
    assert started.returncode == 0, started.stderr[-2000:]
    assert started.stdout.strip() == "started"


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
def test_an_oversize_unauthenticated_event_post_answers_the_json_envelope(settings, debug):
    """5 MB to /api/align/events: a JSON 413, never Django's debug page or an HTML error."""
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    response = client.post("/api/align/events", data=b"x" * (5 * 1024 * 1024), content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "REQUEST.TOO_LARGE"
    assert b"Traceback" not in response.content and b"<html" not in response.content.lower()
