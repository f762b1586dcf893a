"""A provider turns each kind off, or takes it as a daily digest, from their portal."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from align_workflow.notifications.models import Delivery, Digest, Notification, Preference
from align_workflow.notifications.preferences import current
from states import align_case as wf
from tests.support.deliveries import deliver, make_event
from tests.support.factories import make_case
from tests.support.mail import assert_no_phi

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "/provider/notifications/"


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


def choose(provider_client, **choices):
    response = provider_client.post(URL, {"plan": "now", "shipped": "now", **choices})
    assert response.status_code == 302, response.content
    return response


def test_the_settings_page_shows_and_saves_the_choices(provider_client, provider):
    page = provider_client.get(URL)
    assert page.status_code == 200
    assert b"dr.notify@practice.example" in page.content
    assert b'name="plan" value="now" required id="id_plan_0" checked' in page.content

    choose(provider_client, plan="digest", shipped="off")
    assert dict(Preference.objects.filter(provider=provider).values_list("kind", "delivery")) == {
        "plan": "digest",
        "shipped": "off",
    }
    page = provider_client.get(URL)
    assert b"Your email settings are saved." in page.content
    assert b'name="plan" value="digest" required id="id_plan_1" checked' in page.content
    assert b'name="shipped" value="off" required id="id_shipped_2" checked' in page.content


def test_a_choice_that_does_not_exist_is_refused(provider_client, provider):
    response = provider_client.post(URL, {"plan": "hourly", "shipped": "now"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert not Preference.objects.exists()


def test_staff_cannot_open_a_provider_settings_page(client, staff):
    client.force_login(staff)
    assert client.get(URL).status_code == 403


def test_a_kind_turned_off_is_not_sent(client, provider_client, phi_case, commit_hooks):
    choose(provider_client, shipped="off")
    shipped_case = phi_case(wf.ACCEPTED)
    with commit_hooks():
        deliver(client, shipped_event(shipped_case))
    assert mail.outbox == [] and not Notification.objects.exists()

    plan_case = make_case(provider=shipped_case.prescription.provider, state=wf.ASSETS_UPLOADED)
    with commit_hooks():  # the other kind is still sent
        deliver(client, plan_event(plan_case))
    assert [m.subject for m in mail.outbox] == [f"Case {plan_case.case_number}: a treatment plan waits for your review"]


def test_the_daily_digest_sends_one_email_per_provider_per_day(
    client, provider_client, provider, phi_case, commit_hooks
):
    choose(provider_client, plan="digest", shipped="digest")
    first, second = phi_case(wf.ASSETS_UPLOADED), make_case(provider=provider, state=wf.ACCEPTED)
    with commit_hooks():
        deliver(client, plan_event(first))
        deliver(client, shipped_event(second))
    assert mail.outbox == []
    assert set(Notification.objects.values_list("status", flat=True)) == {Notification.Status.DIGEST}

    call_command("send_notification_digests", "--date", "2026-12-01")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dr.notify@practice.example"]
    assert message.subject == "Your daily summary: 2 updates"
    assert f"Case {first.case_number}: a treatment plan waits for your review" in message.body
    assert f"https://align.clinic.example/provider/cases/{first.pk}/" in message.body
    assert f"Case {second.case_number}: aligners shipped" in message.body
    assert_no_phi(mail.outbox)
    assert set(Notification.objects.values_list("status", flat=True)) == {Notification.Status.IN_DIGEST}

    # Again the same day: nothing more, even with something new (it waits for the next day's).
    third = make_case(provider=provider, state=wf.ASSETS_UPLOADED)
    with commit_hooks():
        deliver(client, plan_event(third))
    call_command("send_notification_digests", "--date", "2026-12-01")
    assert len(mail.outbox) == 1
    call_command("send_notification_digests", "--date", "2026-12-02")
    assert [m.subject for m in mail.outbox[1:]] == ["Your daily summary: 1 update"]
    assert f"Case {third.case_number}:" in mail.outbox[1].body
    assert Digest.objects.filter(provider=provider).count() == 2


def test_a_digest_that_failed_is_sent_by_the_next_run(
    client, provider_client, provider, phi_case, settings, commit_hooks
):
    choose(provider_client, plan="digest")
    case = phi_case(wf.ASSETS_UPLOADED)
    with commit_hooks():
        deliver(client, plan_event(case))
    settings.EMAIL_BACKEND = "tests.support.mail.DownBackend"
    with pytest.raises(CommandError, match="1 digest\\(s\\) could not be sent"):
        call_command("send_notification_digests", "--date", "2026-12-01")
    digest = Digest.objects.get()
    assert digest.status == "failed" and digest.error.startswith("SMTPConnectError")

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    call_command("send_notification_digests", "--date", "2026-12-01")
    assert [m.subject for m in mail.outbox] == ["Your daily summary: 1 update"]
    assert Digest.objects.get().status == "sent"


def test_the_digest_command_refuses_a_bad_date(db):
    with pytest.raises(CommandError, match="must be a day as YYYY-MM-DD"):
        call_command("send_notification_digests", "--date", "yesterday")


def test_preferences_default_to_each_email(provider):
    assert current(provider) == {"plan": Delivery.NOW, "shipped": Delivery.NOW}
