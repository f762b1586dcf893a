"""What Align told us: every inbound event as it arrived, and Align's own status per case.

An InboundEvent is written (and committed) before anything is done with it, so that a
crash between receiving and applying loses nothing; the apply step then moves it from
`pending` to `applied`, `ignored` (with the reason) or `failed` (with the error).
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from align_workflow.align import payloads
from align_workflow.cases.models import Case
from align_workflow.cases.records import AppendOnlyModel, AppendOnlyQuerySet


class InboundEventQuerySet(AppendOnlyQuerySet):
    def needing_attention(self, now=None):
        """Events a person should look at: failed ones, and pending ones waiting too long."""
        now = now or timezone.now()
        cutoff = now - timedelta(seconds=settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS)
        return self.filter(
            Q(status=InboundEvent.Status.FAILED) | Q(status=InboundEvent.Status.PENDING, received_at__lt=cutoff)
        )


class InboundEvent(AppendOnlyModel):
    """An event from Align as it arrived. The record (event id, type, case, summary,
    payload, raw body, received and occurred times) never changes; the LIFECYCLE_FIELDS
    say how applying it went. Never deleted (cases/records.py)."""

    LIFECYCLE_FIELDS = ("status", "status_detail", "applied_at", "attempts", "last_attempt_at")

    class Type(models.TextChoices):  # the event types are defined in payloads.py
        SALES_ORDER_CREATED = payloads.SALES_ORDER_CREATED, "Sales order created"
        TREATMENT_PLAN_SUBMITTED = payloads.TREATMENT_PLAN_SUBMITTED, "Treatment plan submitted"
        CASE_STATUS_CHANGED = payloads.CASE_STATUS_CHANGED, "Case status changed"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (stored, not applied yet)"
        APPLIED = "applied", "Applied"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=40, choices=Type.choices, db_index=True)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="align_events")
    # A short description without PHI, e.g. "status SHIPPED" or "plan TP-1 v2".
    summary = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    raw_body = models.TextField()
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    occurred_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Why it is pending or ignored, what was done, or the error it failed with.
    status_detail = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    objects = InboundEventQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["case", "status", "occurred_at"], name="inbound_case_status_occurred")]

    def __str__(self):
        return f"{self.type} {self.event_id}"

    @property
    def needs_attention(self):
        if self.status == self.Status.FAILED:
            return True
        cutoff = timezone.now() - timedelta(seconds=settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS)
        return self.status == self.Status.PENDING and self.received_at < cutoff


class AlignCaseStatus(models.Model):
    """Align's own status for a case, as last reported by `case.status_changed`."""

    case = models.OneToOneField(Case, primary_key=True, on_delete=models.CASCADE, related_name="align_status")
    status = models.CharField(max_length=30)
    previous_status = models.CharField(max_length=30, blank=True)
    occurred_at = models.DateTimeField()
    # The furthest status along Align's order seen so far: an event behind it is stale.
    furthest_status = models.CharField(max_length=30, blank=True)
    event = models.ForeignKey(InboundEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Align case status"
        verbose_name_plural = "Align case statuses"

    def __str__(self):
        return f"{self.status} (case {self.case_id})"
