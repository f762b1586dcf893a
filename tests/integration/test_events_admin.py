"""The event log in the admin: read-only, filterable, and "re-apply"."""

from datetime import timedelta

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from align_workflow.cases.models import Case
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow import fire
from states import align_case as wf
from tests.support.deliveries import deliver, make_event
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db

URL = "/admin/integration/inboundevent/"


@pytest.fixture
def admin_client(client, staff):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


@pytest.fixture
def some_events(client, settings):
    settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS = 60
    applied = make_event("sales_order.created", make_case(state=wf.ASSETS_UPLOADED))
    old_pending_case = make_case(state=wf.ORDER_CREATED)
    old_pending = make_event("treatment_plan.submitted", old_pending_case)
    new_pending = make_event("case.status_changed", make_case(state=wf.PLAN_RECEIVED))
    for payload in (applied, old_pending, new_pending):
        deliver(client, payload)
    # Test setup: age the rows. The app never rewrites received_at (cases/records.py),
    # so the base QuerySet.update is called past the model's guard.
    QuerySet.update(
        InboundEvent.objects.filter(event_id=old_pending["event_id"]), received_at=timezone.now() - timedelta(minutes=5)
    )
    return {
        "applied": applied["event_id"],
        "old_pending": old_pending["event_id"],
        "new_pending": new_pending["event_id"],
        "old_pending_case": old_pending_case,
    }


def listed(response):
    return {e.event_id for e in response.context["cl"].result_list}


def test_the_log_is_filterable_by_status_type_and_attention(admin_client, some_events):
    assert listed(admin_client.get(URL)) == {
        some_events["applied"],
        some_events["old_pending"],
        some_events["new_pending"],
    }
    assert listed(admin_client.get(URL, {"status": "pending"})) == {
        some_events["old_pending"],
        some_events["new_pending"],
    }
    assert listed(admin_client.get(URL, {"type": "sales_order.created"})) == {some_events["applied"]}
    assert listed(admin_client.get(URL, {"attention": "yes"})) == {some_events["old_pending"]}


def test_the_log_is_read_only(admin_client, some_events):
    event = InboundEvent.objects.get(event_id=some_events["applied"])
    page = admin_client.get(f"{URL}{event.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    before = InboundEvent.objects.values().get(pk=event.pk)
    admin_client.post(f"{URL}{event.pk}/change/", {"status": "failed", "status_detail": "edited"})
    assert InboundEvent.objects.values().get(pk=event.pk) == before
    assert admin_client.get(f"{URL}add/").status_code == 403
    assert admin_client.post(f"{URL}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert InboundEvent.objects.filter(pk=event.pk).exists()


def test_re_apply_goes_through_the_same_apply(admin_client, some_events, staff, flags_on, local_effects_only):
    case = some_events["old_pending_case"]
    # The test transaction never commits, so the automatic retry after this transition
    # does not run: the event stays pending until someone re-applies it.
    fire(case, "upload_assets", by=staff)
    assert InboundEvent.objects.get(event_id=some_events["old_pending"]).status == "pending"
    event = InboundEvent.objects.get(event_id=some_events["old_pending"])
    response = admin_client.post(URL, {"action": "reapply", "_selected_action": [event.pk]}, follow=True)
    assert response.status_code == 200
    assert "1 event(s) now applied" in response.content.decode()
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("applied", 2)
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
