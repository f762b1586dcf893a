"""A step recorded and waiting for a Celery worker shows as queued on the case pages,
and the provider is not offered a second decision meanwhile."""

import pytest
from django.db import transaction
from django.urls import reverse

from align_workflow.workflow.outbound import enqueue
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db


def _queued(case, step, by, params):
    with transaction.atomic():
        enqueue(case, step, by=by, params=params, chain=False)


def test_a_queued_revision_request_shows_on_the_provider_page_without_the_buttons(client, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    provider_user = case.prescription.provider.user
    client.force_login(provider_user)
    page = reverse("portals:provider_case", args=[case.pk])
    assert 'id="revision-button"' in client.get(page).content.decode()

    _queued(case, "request_revision", provider_user, {"comments": "Less IPR.", "plan_version": 1})

    html = client.get(page).content.decode()
    assert 'id="queued"' in html and "Request Revision" in html
    assert 'id="revision-button"' not in html and 'id="approve-button"' not in html
    assert "switched off" not in html


def test_a_queued_approval_shows_on_the_provider_page_without_the_buttons(client, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    provider_user = case.prescription.provider.user
    client.force_login(provider_user)
    page = reverse("portals:provider_case", args=[case.pk])
    assert 'id="approve-button"' in client.get(page).content.decode()

    _queued(case, "approve_plan", provider_user, {"staged_screenshot_id": 1})

    html = client.get(page).content.decode()
    assert 'id="queued"' in html and "Approve Plan" in html
    assert 'id="revision-button"' not in html and 'id="approve-button"' not in html


def test_a_queued_acceptance_shows_on_the_staff_page(client, staff, flags_on):
    case = make_case(state=wf.PROVIDER_APPROVED)
    client.force_login(staff)
    page = reverse("portals:staff_case", args=[case.pk])
    assert 'id="queued"' not in client.get(page).content.decode()

    _queued(case, "accept_clincheck", None, {})

    html = client.get(page).content.decode()
    assert 'id="queued"' in html and "Accept ClinCheck" in html
