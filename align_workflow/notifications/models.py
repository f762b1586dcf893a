"""One row per notification (its key unique), the providers' choices, and the digests sent."""

from django.db import models
from django.utils import timezone

from align_workflow.cases.models import Case, Provider


class Kind(models.TextChoices):
    PLAN = "plan", "A treatment plan waits for review"
    ATTENTION = "attention", "A case needs attention"
    SHIPPED = "shipped", "Aligners shipped"
    EVENTS_PENDING = "events_pending", "Events from Align waiting too long"


# The kinds a provider receives (and may turn off or take as a daily digest); the others go
# to the staff addresses in ALIGN_ATTENTION_EMAILS.
PROVIDER_KINDS = (Kind.PLAN, Kind.SHIPPED)
STAFF_KINDS = (Kind.ATTENTION, Kind.EVENTS_PENDING)


class Delivery(models.TextChoices):
    NOW = "now", "Email each one"
    DIGEST = "digest", "One email a day (digest)"
    OFF = "off", "No email"


class Notification(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed; retried once"
        GAVE_UP = "gave_up", "Failed twice; not retried"
        DIGEST = "digest", "Waiting for the daily digest"
        IN_DIGEST = "in_digest", "Sent in a digest"

    # What happened, once: "plan:<case>:<version>", "shipped:<case>", "attention:<attempt>", ...
    key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    # Comma-separated addresses (staff kinds: ALIGN_ATTENTION_EMAILS as it was then).
    recipients = models.TextField()
    subject = models.CharField(max_length=200)
    body = models.TextField()
    # The page the email points to (a digest lists it).
    link = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The last failure: the exception's class and message (never the email's text).
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    digest = models.ForeignKey("Digest", null=True, blank=True, on_delete=models.SET_NULL, related_name="items")

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return self.key


class Preference(models.Model):
    """How a provider wants one kind: each email, a daily digest, or none (no row: each email)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="notification_preferences")
    kind = models.CharField(max_length=20, choices=[(k.value, k.label) for k in PROVIDER_KINDS])
    delivery = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.NOW)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "kind"], name="one_preference_per_kind")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.get_delivery_display()}"


class Digest(models.Model):
    """The digest of one provider for one day: at most one (send_notification_digests is idempotent)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="digests")
    day = models.DateField()
    status = models.CharField(max_length=10, default="pending")  # pending, sent, failed
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "day"], name="one_digest_per_provider_per_day")]

    def __str__(self):
        return f"Digest of {self.day:%Y-%m-%d} ({self.status})"
