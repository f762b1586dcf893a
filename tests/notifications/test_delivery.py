"""Sending: after commit, never blocking the workflow; a mail server that is down is
recorded and retried once; a change announced twice (duplicated or shuffled events) is
sent once."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from align_workflow.cases.models import Case
from align_workflow.integration.models import InboundEvent
from align_workflow.notifications import services
from align_workflow.notifications.models import Kind, Notification
from align_workflow.notifications.sweep import sweep
from align_workflow.workflow import fire
from align_workflow.workflow.engine import transition_applied
from states import align_case as wf
from tests.support.deliveries import deliver, iso, make_event
from tests.support.mail import assert_no_phi

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOWN = "tests.support.mail.DownBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
Status = Notification.Status


def plan_event(case, version=1, minute=0):
    return make_event(
        "treatment_plan.submitted",
        case,
        occurred_at=T0 + timedelta(minutes=minute),
        version=version,
        treatmentPlanId=f"TP-{case.pk}-{version}",
    )


def status_event(case, status, minute):
    shipment = None
    if status == "SHIPPED":
        shipment = {"carrier": "UPS", "trackingNumber": f"1Z{case.pk:08d}", "shippedAt": iso(T0), "alignerCount": 20}
    return make_event(
        "case.status_changed", case, occurred_at=T0 + timedelta(minutes=minute), status=status, shipment=shipment
    )


def test_nothing_is_sent_before_the_transaction_commits(phi_case, local_effects_only):
    case = phi_case(wf.ASSETS_UPLOADED)
    fire(case, "receive_plan", by=None, plan={"plan_id": "TP-1", "version": 1})
    # The test's transaction never commits: the change is not final, so nobody is told.
    assert mail.outbox == [] and not Notification.objects.exists()


def test_a_mail_server_that_is_down_leaves_the_transition_applied_records_the_failure_and_retries_once(
    client, phi_case, settings, commit_hooks
):
    settings.EMAIL_BACKEND = DOWN
    settings.ALIGN_NOTIFICATION_RETRY_SECONDS = 300
    case = phi_case(wf.ASSETS_UPLOADED)
    payload = plan_event(case)
    with commit_hooks():
        response = deliver(client, payload)

    assert response.status_code == 200 and response.json()["status"] == "applied"
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    assert InboundEvent.objects.get(event_id=payload["event_id"]).status == "applied"
    row = Notification.objects.get()
    assert (row.status, row.attempts) == (Status.FAILED, 1)
    assert row.error.startswith("SMTPConnectError: (421")
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=290)

    settings.EMAIL_BACKEND = LOCMEM  # the server is back
    assert sweep().delivered == []  # not due yet
    assert mail.outbox == []
    result = sweep(timezone.now() + timedelta(seconds=301))
    assert result.sent == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENT, 2)
    assert row.error.startswith("SMTPConnectError")  # the failure stays on record
    assert len(mail.outbox) == 1 and mail.outbox[0].subject.startswith(f"Case {case.case_number}:")
    assert sweep(timezone.now() + timedelta(days=1)).delivered == []
    assert len(mail.outbox) == 1
    assert_no_phi(mail.outbox)


def test_a_notification_is_retried_at_most_once(client, phi_case, settings, commit_hooks):
    settings.EMAIL_BACKEND = DOWN
    case = phi_case(wf.ACCEPTED)
    with commit_hooks():
        deliver(client, status_event(case, "SHIPPED", 1))
    assert Case.objects.get(pk=case.pk).state == wf.SHIPPING

    later = timezone.now() + timedelta(seconds=settings.ALIGN_NOTIFICATION_RETRY_SECONDS + 1)
    assert sweep(later).failed == 1
    row = Notification.objects.get()
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.GAVE_UP, 2, None)

    settings.EMAIL_BACKEND = LOCMEM
    assert sweep(later + timedelta(days=1)).delivered == []
    assert services.deliver(row.pk, now=later + timedelta(days=1)) is None
    assert mail.outbox == []


def test_a_send_whose_process_died_is_taken_over_once_its_lease_ends(phi_case, provider):
    case = phi_case(wf.PLAN_RECEIVED)
    row = Notification.objects.create(
        key="plan:test",
        kind=Kind.PLAN,
        case=case,
        provider=provider,
        recipients="dr.notify@practice.example",
        subject="s",
        body="b",
        status=Status.SENDING,
        attempts=1,
        next_attempt_at=timezone.now() + services.SENDING_LEASE,
    )
    assert sweep().delivered == []  # still within its lease
    assert sweep(timezone.now() + services.SENDING_LEASE + timedelta(seconds=1)).sent == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENT, 2)
    assert len(mail.outbox) == 1


def test_the_key_is_unique_in_the_database(phi_case, provider):
    case = phi_case(wf.PLAN_RECEIVED)
    fields = dict(key="shipped:1", kind=Kind.SHIPPED, case=case, recipients="a@b.example", subject="s", body="b")
    Notification.objects.create(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(**fields)


SCENARIOS = {
    # start state, events (each delivered twice, in a shuffled order), what the provider is told
    "first plan": (
        wf.ASSETS_UPLOADED,
        lambda c: [status_event(c, "SETUP_IN_PROGRESS", 1), status_event(c, "CLINCHECK_READY", 2), plan_event(c, 1, 3)],
        ["a treatment plan waits for your review"],
    ),
    "shipping": (
        wf.ACCEPTED,
        lambda c: [
            status_event(c, "APPROVED", 1),
            status_event(c, "IN_MANUFACTURING", 2),
            status_event(c, "SHIPPED", 3),
        ],
        ["aligners shipped"],
    ),
    "plans before the case is ready": (
        wf.ORDER_CREATED,
        lambda c: [plan_event(c, 1, 1), plan_event(c, 2, 2)],
        [],  # nothing applies until the assets are uploaded
    ),
}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_duplicated_and_shuffled_events_send_one_email_per_change(client, phi_case, commit_hooks, scenario, seed):
    state, events, told = SCENARIOS[scenario]
    case = phi_case(state)
    payloads = events(case) * 2
    random.Random(seed).shuffle(payloads)
    with commit_hooks():
        for payload in payloads:
            assert deliver(client, payload).status_code == 200
    assert [m.subject for m in mail.outbox] == [f"Case {case.case_number}: {what}" for what in told]
    assert Notification.objects.count() == len(told)


def test_plans_that_waited_for_the_case_send_one_email_for_the_newest(
    client, phi_case, staff, flags_on, local_effects_only, commit_hooks
):
    case = phi_case(wf.ORDER_CREATED)
    payloads = [plan_event(case, 2, 2), plan_event(case, 1, 1)] * 2
    random.Random(3).shuffle(payloads)
    for payload in payloads:
        deliver(client, payload)
    with commit_hooks():
        fire(case, "upload_assets", by=staff)
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    assert [m.subject for m in mail.outbox] == [
        f"Case {case.case_number}: a revised treatment plan (version 2) waits for your review"
    ]


def test_the_same_change_heard_twice_is_sent_once(phi_case, local_effects_only, commit_hooks):
    """Two processes (or a repeated signal) announcing one change: the key in the database decides."""
    case = phi_case(wf.ASSETS_UPLOADED)
    with commit_hooks():
        fire(case, "receive_plan", by=None, plan={"plan_id": "TP-1", "version": 1})
    for _ in range(2):
        transition_applied.send(
            sender=Case, case_id=case.pk, trigger="receive_plan", source=wf.PLAN_RECEIVED, target=wf.PLAN_RECEIVED
        )
    assert len(mail.outbox) == 1
    assert Notification.objects.get().key == f"plan:{case.pk}:1"


def test_staff_see_a_failed_notification_and_its_error_in_the_admin(client, staff, phi_case, provider):
    staff.is_superuser = True
    staff.save()
    case = phi_case(wf.PLAN_RECEIVED)
    row = Notification.objects.create(
        key=f"plan:{case.pk}:1",
        kind=Kind.PLAN,
        case=case,
        provider=provider,
        recipients="dr.notify@practice.example",
        subject="s",
        body="b",
        status=Status.FAILED,
        attempts=1,
        error="SMTPConnectError: (421, b'Service not available')",
    )
    client.force_login(staff)
    listing = client.get("/admin/notifications/notification/?status__exact=failed")
    assert listing.status_code == 200 and case.case_number.encode() in listing.content
    detail = client.get(f"/admin/notifications/notification/{row.pk}/change/")
    assert b"SMTPConnectError" in detail.content
    assert client.post(f"/admin/notifications/notification/{row.pk}/delete/").status_code == 403
