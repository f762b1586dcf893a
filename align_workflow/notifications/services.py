"""Recording a notification (once per key) and sending it (once, retried once on failure).

    notify(Kind.PLAN, f"plan:{case.pk}:{version}", case=case, provider=provider, text=texts.plan(case, version))

A notification is a row whose `key` is unique: the same change announced again (a
duplicated or reordered event, two workers) finds the row and sends nothing. Sending
claims the row with a conditional update first, so two processes never both send it.
A failure (the mail server is down) is recorded on the row and the send is due again
ALIGN_NOTIFICATION_RETRY_SECONDS later; the second failure is the last
(`NotificationStatus.GAVE_UP`). Nothing here runs inside the workflow's transactions: the callers
are signal listeners that run after commit.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import F, Q
from django.utils import timezone

from .models import PROVIDER_KINDS, Delivery, Notification, Preference

logger = logging.getLogger(__name__)

NotificationStatus = Notification.Status
MAX_ATTEMPTS = 2  # the first send and one retry
# How long a send may take before the sweep treats it as failed (its process died).
SENDING_LEASE = timedelta(minutes=5)


def delivery_for(provider, kind) -> str:
    if provider is None or kind not in PROVIDER_KINDS:
        return Delivery.NOW
    chosen = Preference.objects.filter(provider=provider, kind=kind).values_list("delivery", flat=True).first()
    return chosen or Delivery.NOW


def notify(kind, key, *, case, text, link, provider=None, recipients=None):
    """Record the notification `key` once and send it (or keep it for the digest).

    Provider kinds go to the provider's email address, as the provider chose (each,
    digest, off); staff kinds to `recipients` (ALIGN_ATTENTION_EMAILS). Returns the new
    row, or None when nobody is to be told or `key` was already recorded (told once)."""
    if provider is not None:
        recipients = [provider.user.email] if provider.user.email else []
    if not recipients:
        logger.info("notification %s: no address to send it to", key)
        return None
    delivery = delivery_for(provider, kind)
    if delivery == Delivery.OFF:
        return None
    subject, body = text
    row, created = Notification.objects.get_or_create(
        key=key,
        defaults=dict(
            kind=kind,
            case=case,
            provider=provider,
            recipients=",".join(recipients),
            subject=subject,
            body=body,
            link=link,
            status=NotificationStatus.DIGEST if delivery == Delivery.DIGEST else NotificationStatus.PENDING,
        ),
    )
    if not created:
        logger.info("notification %s: already recorded (%s)", key, row.status)
        return None
    if row.status == NotificationStatus.PENDING:
        dispatch(row.pk)
    return row


def dispatch(notification_id: int) -> None:
    """Send now (inline) or queue for a worker (celery); a broker that is down leaves the
    row pending for the sweep."""
    if settings.ALIGN_EXECUTION == "celery":
        from .tasks import deliver_task  # why: tasks imports this module

        try:
            deliver_task.delay(notification_id)
        except Exception:  # the broker is down: the sweep sends it later
            logger.exception("notification %s: could not be queued; the sweep will send it", notification_id)
        return
    deliver(notification_id)


def _claimable(now):
    return Q(status=NotificationStatus.PENDING) | Q(
        status__in=[NotificationStatus.FAILED, NotificationStatus.SENDING], next_attempt_at__lte=now
    )


def deliver(notification_id: int, *, now=None) -> Notification | None:
    """Send one notification if it is (still) due at `now`; returns the row as it ends, or
    None when another process has it or it is not due. Never raises for a mail failure."""
    now = now or timezone.now()
    claimed = Notification.objects.filter(_claimable(now), pk=notification_id, attempts__lt=MAX_ATTEMPTS).update(
        status=NotificationStatus.SENDING, attempts=F("attempts") + 1, next_attempt_at=now + SENDING_LEASE
    )
    if not claimed:
        return None
    row = Notification.objects.get(pk=notification_id)
    try:
        EmailMessage(row.subject, row.body, settings.DEFAULT_FROM_EMAIL, row.recipients.split(",")).send()
    except Exception as exc:  # any failure of the mail server or the backend is recorded, never raised
        return _failed(row, exc, now)
    Notification.objects.filter(pk=row.pk).update(
        status=NotificationStatus.SENT, sent_at=timezone.now(), next_attempt_at=None
    )
    row.refresh_from_db()
    logger.info("notification %s sent (attempt %s)", row.key, row.attempts)
    return row


def _failed(row, exc, now) -> Notification:
    last = row.attempts >= MAX_ATTEMPTS
    Notification.objects.filter(pk=row.pk).update(
        status=NotificationStatus.GAVE_UP if last else NotificationStatus.FAILED,
        error=f"{type(exc).__name__}: {exc}"[:1000],
        next_attempt_at=None if last else now + timedelta(seconds=settings.ALIGN_NOTIFICATION_RETRY_SECONDS),
    )
    row.refresh_from_db()
    logger.warning(
        "notification %s: sending failed (attempt %s of %s): %s",
        row.key,
        row.attempts,
        MAX_ATTEMPTS,
        type(exc).__name__,
    )
    return row


def due_ids(now=None) -> list[int]:
    """Notifications to send now: retries that are due, sends whose process died, and
    pending ones older than a minute (their queued message was lost)."""
    now = now or timezone.now()
    stale_pending = Q(status=NotificationStatus.PENDING, created__lt=now - timedelta(minutes=1))
    retry = Q(status__in=[NotificationStatus.FAILED, NotificationStatus.SENDING], next_attempt_at__lte=now)
    return list(
        Notification.objects.filter(stale_pending | retry, attempts__lt=MAX_ATTEMPTS)
        .order_by("id")
        .values_list("id", flat=True)
    )


def give_up_stale(now=None) -> int:
    """A send whose process died on the last attempt: recorded as given up."""
    now = now or timezone.now()
    return Notification.objects.filter(
        status=NotificationStatus.SENDING, next_attempt_at__lte=now, attempts__gte=MAX_ATTEMPTS
    ).update(status=NotificationStatus.GAVE_UP, error="The process sending it stopped.", next_attempt_at=None)
