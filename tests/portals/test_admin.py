"""The admin shows a case's history but never edits its state; its action uses the engine."""

import re

import pytest
from django.test import Client
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(staff):
    staff.is_superuser = True
    staff.save()
    client = Client()
    client.force_login(staff)
    return client


def test_case_change_page_shows_history_and_state_read_only(admin_client_, local_effects_only):
    from align_workflow.workflow import fire

    case = make_case(state=wf.ACCEPTED)
    fire(case, "ship", by=None, carrier="UPS", tracking_number="1Z")
    response = admin_client_.get(f"/admin/cases/case/{case.pk}/change/")
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "state" not in form.fields
    html = response.content.decode()
    assert "accepted" in html and "shipping" in html  # the StateLog inline


def test_posting_a_state_to_the_admin_changes_nothing(admin_client_):
    case = make_case()
    admin_client_.post(f"/admin/cases/case/{case.pk}/change/", {"state": wf.SHIPPING, "case_number": case.case_number})
    assert Case.objects.get(pk=case.pk).state == wf.ELIGIBLE
    assert not StateLog.objects.for_(case).exists()


def test_admin_cancel_action_goes_through_the_engine(admin_client_, staff):
    case = make_case(state=wf.ORDER_CREATED)
    finished = make_case(state=wf.SHIPPING)
    response = admin_client_.post(
        "/admin/cases/case/",
        {"action": "cancel_cases", "_selected_action": [case.pk, finished.pk], "apply": "1", "reason": "Clinic closed"},
        follow=True,
    )
    assert Case.objects.get(pk=case.pk).state == wf.CANCELLED
    assert StateLog.objects.for_(case).get().by == staff
    assert Case.objects.get(pk=finished.pk).state == wf.SHIPPING
    assert any("Cannot cancel" in str(m) for m in response.context["messages"])


def test_case_change_page_lists_calls_to_align_and_events(admin_client_):
    from django.utils import timezone

    from align_workflow.integration.models import InboundEvent
    from align_workflow.workflow.models import OutboundAttempt

    case = make_case()
    OutboundAttempt.objects.create(
        case=case,
        step="create_patient",
        idempotency_key="k1",
        attempt=1,
        status=OutboundAttempt.Status.FAILED_PERMANENT,
        http_status=422,
        error_code="PATIENT.INVALID",
        message="zip code is not valid",
    )
    InboundEvent.objects.create(
        event_id="evt-1",
        type="case.status_changed",
        case=case,
        summary="status SHIPPED",
        payload={},
        raw_body="{}",
        occurred_at=timezone.now(),
        status="failed",
        status_detail="case is eligible",
    )
    html = admin_client_.get(f"/admin/cases/case/{case.pk}/change/").content.decode()
    assert "zip code is not valid" in html and "PATIENT.INVALID" in html
    assert "status SHIPPED" in html and "case is eligible" in html


# --- Readable for support: every row has a name, the site says whose it is ---------

PROJECT_APPS = {"cases", "workflow", "integration", "portals", "demo", "notifications"}


def _project_models():
    from django.apps import apps

    return [m for m in apps.get_models() if m._meta.app_label in PROJECT_APPS]


def test_every_model_of_the_project_names_its_rows():
    from django.db import models

    unnamed = [m.__name__ for m in _project_models() if m.__str__ is models.Model.__str__]
    assert _project_models() and not unnamed


def test_case_change_page_titles_every_inline_row(admin_client_, local_effects_only):
    from django.utils import timezone

    from align_workflow.cases.models import AlignOrder, TreatmentPlan

    case = make_case(state=wf.PLAN_RECEIVED)
    AlignOrder.objects.create(
        case=case, sales_order_number="SO-77", order_kind="PRIMARY", order_type="IAS", align_created_at=timezone.now()
    )
    TreatmentPlan.objects.create(case=case, plan_id="PLAN-9", version=2)
    html = admin_client_.get(f"/admin/cases/case/{case.pk}/change/").content.decode()
    assert "object (" not in html
    assert "Primary order SO-77" in html and "Plan PLAN-9, version 2" in html


def test_admin_times_carry_their_time_zone(admin_client_):
    case = make_case()
    html = admin_client_.get(f"/admin/cases/case/{case.pk}/change/").content.decode()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", html)


def test_admin_is_branded_and_links_back_to_the_portals(admin_client_):
    html = admin_client_.get("/admin/").content.decode()
    assert "Align workflow administration" in html
    assert "Django administration" not in html
    assert 'href="/staff/"' in html
    assert ".event-status-failed" in html  # the site's own styles are in the frame


def test_lists_put_what_support_looks_for_first():
    from django.contrib import admin

    from align_workflow.integration.models import InboundEvent
    from align_workflow.workflow.models import OutboundAttempt

    events = admin.site._registry[InboundEvent].list_display
    assert events[:3] == ("received_at", "status_badge", "case")
    attempts = admin.site._registry[OutboundAttempt].list_display
    assert attempts[:3] == ("created", "case", "step")
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label in PROJECT_APPS:
            assert model_admin.list_display != ("__str__",), f"{model.__name__} lists only its name"
