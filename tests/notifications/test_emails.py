"""Each kind of notification: sent once, to the right address, with a link to the case's
page and no patient data (the seeded name, MRN and date of birth appear in no message)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from align_workflow.cases.models import Case, TreatmentPlan
from align_workflow.integration.models import InboundEvent
from align_workflow.notifications.models import Notification
from align_workflow.notifications.sweep import sweep
from align_workflow.workflow import outbound
from states import align_case as wf
from tests.support.deliveries import deliver, make_event
from tests.support.fakes import FakeAlign, rejected
from tests.support.mail import STAFF_ADDRESSES, assert_no_phi

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE = "https://align.clinic.example"


def plan_event(case, version=1):
    return make_event(
        "treatment_plan.submitted",
        case,
        occurred_at=T0 + timedelta(minutes=version),
        version=version,
        treatmentPlanId=f"TP-{case.pk}-{version}",
    )


def shipped_event(case):
    return make_event("case.status_changed", case, occurred_at=T0 + timedelta(minutes=30))


def ok(response):
    assert response.status_code == 200, response.content
    return response.json()


def test_a_plan_emails_the_provider_once_with_a_link_and_no_patient_data(client, phi_case, commit_hooks):
    case = phi_case(wf.ASSETS_UPLOADED)
    with commit_hooks():
        assert ok(deliver(client, plan_event(case)))["status"] == "applied"

    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dr.notify@practice.example"]
    assert message.subject == f"Case {case.case_number}: a treatment plan waits for your review"
    assert f"{BASE}/provider/cases/{case.pk}/" in message.body
    assert f"{BASE}/provider/notifications/" in message.body
    assert_no_phi(mail.outbox)
    assert Notification.objects.get().status == Notification.Status.SENT


def test_a_revised_plan_emails_the_provider_again_and_says_it_is_revised(client, phi_case, commit_hooks):
    case = phi_case(wf.REVISION_REQUESTED)
    TreatmentPlan.objects.create(case=case, plan_id=f"TP-{case.pk}-1", version=1)
    with commit_hooks():
        ok(deliver(client, plan_event(case, 2)))

    assert [m.subject for m in mail.outbox] == [
        f"Case {case.case_number}: a revised treatment plan (version 2) waits for your review"
    ]
    assert mail.outbox[0].to == ["dr.notify@practice.example"]
    assert f"{BASE}/provider/cases/{case.pk}/" in mail.outbox[0].body
    assert_no_phi(mail.outbox)


def test_shipped_aligners_email_the_provider_once(client, phi_case, commit_hooks):
    case = phi_case(wf.ACCEPTED)
    with commit_hooks():
        ok(deliver(client, shipped_event(case)))

    assert Case.objects.get(pk=case.pk).state == wf.SHIPPING
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dr.notify@practice.example"]
    assert message.subject == f"Case {case.case_number}: aligners shipped"
    assert f"{BASE}/provider/cases/{case.pk}/" in message.body
    assert_no_phi(mail.outbox)


@pytest.fixture
def fake_align(monkeypatch):
    from align_workflow.workflow import align_effects

    fake = FakeAlign()
    monkeypatch.setattr(align_effects, "align_client", lambda: fake)
    return fake


def test_a_case_needing_attention_emails_the_staff_addresses_once(phi_case, staff, flags_on, fake_align, commit_hooks):
    case = phi_case(wf.ELIGIBLE)
    refusal = rejected(422, "PATIENT.INVALID", "patient record refused")
    fake_align.fail("create_patient", refusal, refusal)
    with commit_hooks():
        outbound.send_to_align(case, by=staff)

    case.refresh_from_db()
    assert case.needs_attention and case.state == wf.ELIGIBLE
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == STAFF_ADDRESSES
    assert message.subject == f"Case {case.case_number} needs attention"
    assert '"Create Patient"' in message.body
    assert f"{BASE}/staff/cases/{case.pk}/" in message.body

    with commit_hooks():  # a person retries and it is refused again: a new change, a new email
        outbound.retry_case(case, by=staff)
    assert [m.subject for m in mail.outbox] == [message.subject] * 2
    with commit_hooks():  # then it goes through: nothing more to tell
        outbound.retry_case(case, by=staff)
    assert Case.objects.get(pk=case.pk).state == wf.ASSETS_UPLOADED
    assert len(mail.outbox) == 2
    assert_no_phi(mail.outbox)


def test_events_waiting_too_long_email_the_staff_once(client, phi_case, settings, commit_hooks):
    settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS = 3600
    case = phi_case(wf.ORDER_CREATED)  # a plan cannot apply before the assets: it waits
    with commit_hooks():
        assert ok(deliver(client, plan_event(case)))["status"] == "pending"
        ok(deliver(client, plan_event(case, 2)))
    assert mail.outbox == []

    assert sweep().waiting_events == 0  # not waiting long enough yet
    later = timezone.now() + timedelta(hours=1, seconds=1)
    assert sweep(later).waiting_events == 1
    assert sweep(later + timedelta(hours=1)).waiting_events == 0  # the same wait is told once

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == STAFF_ADDRESSES
    assert message.subject == f"Case {case.case_number}: 2 events from Align waiting"
    assert "2 events from Align for case" in message.body and "waited more than 1 hour without" in message.body
    assert f"{BASE}/staff/cases/{case.pk}/" in message.body
    assert InboundEvent.objects.filter(status="pending").count() == 2
    assert_no_phi(mail.outbox)


def test_staff_kinds_are_not_sent_without_staff_addresses(client, phi_case, settings, commit_hooks):
    settings.ALIGN_ATTENTION_EMAILS = []
    settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS = 1
    case = phi_case(wf.ORDER_CREATED)
    ok(deliver(client, plan_event(case)))
    sweep(timezone.now() + timedelta(seconds=2))
    assert mail.outbox == [] and not Notification.objects.exists()


def test_waiting_events_for_no_known_case_point_to_the_admins_list(db, settings):
    settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS = 90 * 60
    old = timezone.now() - timedelta(hours=2)
    for n in range(3):
        InboundEvent.objects.create(
            event_id=f"evt_orphan_{n}",
            type="treatment_plan.submitted",
            case=None,
            payload={},
            raw_body="{}",
            received_at=old,
            occurred_at=old,
        )
    assert sweep().waiting_events == 1
    assert sweep().waiting_events == 0
    [message] = mail.outbox
    assert message.to == STAFF_ADDRESSES
    assert message.subject == "3 events from Align for no known case waiting"
    assert "waited more than 90 minutes" in message.body
    assert f"{BASE}/admin/integration/inboundevent/?status__exact=pending" in message.body
