"""CSRF on every form, and static files with DEBUG off (tests/test_production_settings.py: the secrets)."""

import os
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

from states import align_case as wf
from tests.support.factories import make_case

from .test_provider_portal import plan


@pytest.mark.django_db
def test_every_post_form_carries_a_csrf_token(staff, provider, flags_on):
    eligible = make_case(provider=provider)
    approved = make_case(provider=provider, state=wf.PROVIDER_APPROVED, needs_attention=True)
    review = make_case(provider=provider, state=wf.PLAN_RECEIVED)
    plan(review)
    pages = []
    staff_client = Client()
    staff_client.force_login(staff)
    pages += [
        staff_client.get(u)
        for u in ["/staff/", f"/staff/cases/{eligible.pk}/", f"/staff/cases/{approved.pk}/", "/support/workflow/"]
    ]
    provider_client = Client()
    provider_client.force_login(provider.user)
    pages += [provider_client.get(u) for u in ["/provider/", f"/provider/cases/{review.pk}/"]]
    pages.append(Client().get("/accounts/login/"))
    forms = 0
    for page in pages:
        assert page.status_code == 200
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", page.content.decode(), re.S):
            forms += 1
            assert "csrfmiddlewaretoken" in form, form[:200]
    assert forms >= 10


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["cancel/", "gender/", "aligners-purchased/", "send/", "retry/"])
def test_staff_actions_without_csrf_token_are_refused(staff, path):
    case = make_case()
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(f"/staff/cases/{case.pk}/{path}", {"reason": "x", "gender": "F"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["approve/", "request-revision/"])
def test_provider_actions_without_csrf_token_are_refused(provider, path):
    case = make_case(provider=provider, state=wf.PLAN_RECEIVED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(provider.user)
    assert client.post(f"/provider/cases/{case.pk}/{path}", {"comments": "x"}).status_code == 403


SERVE_STATIC = """
import django
from django.core.management import call_command
django.setup()
call_command("collectstatic", "--noinput", verbosity=0)
from django.test import Client
client = Client(SERVER_NAME="example.com")
for path in ("/static/portals/portals.css", "/static/html2canvas/dist/html2canvas.min.js",
             "/static/html2canvas/package.json"):
    print(path, client.get(path, secure=True).status_code)
"""


def test_static_files_are_served_with_debug_off_after_collectstatic(tmp_path):
    """Production (DEBUG=0, e.g. under gunicorn) serves collectstatic's output through
    WhiteNoise; of node_modules only html2canvas's dist/ is published."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_ALLOWED_HOSTS="example.com",
        DJANGO_SETTINGS_MODULE="align_workflow.settings",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    result = subprocess.run(
        [sys.executable, "-c", SERVE_STATIC],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:3] == [
        "/static/portals/portals.css 200",
        "/static/html2canvas/dist/html2canvas.min.js 200",
        "/static/html2canvas/package.json 404",
    ]
    assert not (tmp_path / "static" / "html2canvas" / "package.json").exists()
