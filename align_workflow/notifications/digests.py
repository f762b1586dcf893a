"""The daily digest: one email per provider per day with what they chose to receive that way.

`send_notification_digests` runs it (from cron, once a day or more often): a provider's
digest for a day is a row of its own (unique per provider and day), claimed before it is
sent, so a second run the same day sends nothing twice. A digest whose send failed is sent
by the next run of the same day; what arrives after a day's digest waits for the next day's.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from . import texts
from .models import Digest, Notification

logger = logging.getLogger(__name__)

NotificationStatus = Notification.Status


@dataclass
class DigestRun:
    sent: list = field(default_factory=list)  # Digest rows
    failed: list = field(default_factory=list)
    already_sent: int = 0


def send_digests(day=None) -> DigestRun:
    day = day or timezone.localdate()
    run = DigestRun()
    providers = (
        Notification.objects.filter(status=NotificationStatus.DIGEST, provider__isnull=False)
        .values_list("provider_id", flat=True)
        .distinct()
    )
    for provider_id in sorted(set(providers)):
        digest, _ = Digest.objects.get_or_create(provider_id=provider_id, day=day)
        if digest.status == "sent":
            run.already_sent += 1
            continue
        outcome = _send(digest)
        if outcome is not None:
            (run.sent if outcome.status == "sent" else run.failed).append(outcome)
    return run


def _send(digest):
    with transaction.atomic():
        # Claim the day's digest and the items it will carry (this run owns them now).
        if not Digest.objects.filter(pk=digest.pk, status__in=["pending", "failed"]).update(status="sending"):
            return None  # another run has it
        Notification.objects.filter(
            status=NotificationStatus.DIGEST, provider_id=digest.provider_id, digest__isnull=True
        ).update(digest=digest)
    items = list(digest.items.filter(status=NotificationStatus.DIGEST).order_by("created", "id"))
    address = digest.provider.user.email
    if not items or not address:
        Digest.objects.filter(pk=digest.pk).update(status="sent", sent_at=timezone.now())
        digest.items.filter(status=NotificationStatus.DIGEST).update(status=NotificationStatus.IN_DIGEST)
        digest.refresh_from_db()
        return digest
    subject, body = texts.digest(items)
    try:
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [address]).send()
    except Exception as exc:  # recorded; the next run of the day sends it again
        Digest.objects.filter(pk=digest.pk).update(status="failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        logger.warning("digest %s: sending failed: %s", digest.pk, type(exc).__name__)
        digest.refresh_from_db()
        return digest
    now = timezone.now()
    with transaction.atomic():
        digest.items.filter(status=NotificationStatus.DIGEST).update(status=NotificationStatus.IN_DIGEST, sent_at=now)
        Digest.objects.filter(pk=digest.pk).update(status="sent", sent_at=now, error="")
    digest.refresh_from_db()
    return digest
