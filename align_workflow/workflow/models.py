"""What the workflow records besides the state history: every call to Align.

An OutboundAttempt row is written and committed *before* its request goes out, and
updated with the outcome afterwards, so that a crash at any point leaves evidence and
can be recovered: a pending or in-flight attempt whose lease has run out is picked up
again by `align_retry_due` (or the Celery sweep) and re-sent with the same
idempotency key.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from align_workflow.cases.records import AppendOnlyModel
from states import align_case as wf


class OutboundAttempt(AppendOnlyModel):
    """A call to Align. The record (case, step, idempotency key, attempt number, chain,
    actor, parameters, created) never changes; the LIFECYCLE_FIELDS record its progress
    and outcome as it is sent and answered. Never deleted (cases/records.py)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # recorded, not sent yet
        IN_FLIGHT = "in_flight", "In flight"  # a process is sending it (see claimed_until)
        SUCCEEDED = "succeeded", "Succeeded"  # Align accepted it
        FAILED_RETRYABLE = "failed_retryable", "Failed, retryable"  # timeout, connection, 5xx, 429
        FAILED_PERMANENT = "failed_permanent", "Failed, needs a person"  # 4xx, credentials, our own error
        SKIPPED = "skipped", "Not sent"  # refused before sending (state moved on, flag off)

    OPEN = (Status.PENDING, Status.IN_FLIGHT)
    LIFECYCLE_FIELDS = (
        "status",
        "http_status",
        "error_code",
        "message",
        "request_id",
        "duration_ms",
        "started_at",
        "finished_at",
        "next_retry_at",
        "claimed_until",
    )

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="align_attempts")
    step = models.CharField(max_length=40, help_text="the workflow trigger this call belongs to")
    # Derived from the case and the step (and, for steps that may legitimately be done
    # again, what they act on); every retry of the step reuses it.
    idempotency_key = models.CharField(max_length=120, db_index=True)
    attempt = models.PositiveSmallIntegerField(help_text="1 for the first request with this key, 2 for its retry, ...")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Part of "Send to Align": on success the next step of the sequence follows.
    chain = models.BooleanField(default=False)
    # The transition fires as this user (None: automation); a retry fires as the same actor.
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What is needed to send the step again (e.g. the provider's comments). Never PHI:
    # patient details are read from the patient record at send time.
    params = models.JSONField(default=dict, blank=True)

    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=80, blank=True)
    message = models.TextField(blank=True)
    request_id = models.CharField(max_length=120, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    created = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When an automatic retry of this failed attempt is due (None: none is planned).
    next_retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Lease: a pending attempt must be started, an in-flight one finished, by then;
    # after that another process may take it over.
    claimed_until = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["case", "step", "-id"], name="attempt_case_step")]

    def __str__(self):
        return f"{self.step} #{self.attempt} for case {self.case_id}: {self.status}"

    @property
    def label(self):
        return wf.trigger_label(self.step)

    @property
    def failed(self):
        return self.status in (self.Status.FAILED_RETRYABLE, self.Status.FAILED_PERMANENT)

    @property
    def error(self):
        """What went wrong, for a timeline ("" when nothing did)."""
        if not (self.failed or self.status == self.Status.SKIPPED or self.error_code):
            return ""
        return ": ".join(part for part in (self.error_code, self.message) if part)

    @property
    def is_open(self):
        return self.status in self.OPEN and self.claimed_until is not None and self.claimed_until > timezone.now()


class StagedScreenshot(models.Model):
    """An approval's acceptance screenshot waiting for a worker (ALIGN_EXECUTION=celery).

    The provider's request decodes the picture and stores it here, re-encoded as JPEG,
    in the transaction that records the approval's attempt; the worker puts it in the
    vault and, in the transaction that approves the plan, turns it into the case's
    acceptance screenshot asset and deletes this row. A retry of a failed approval
    sends the same row again. Never logged (a picture of the plan page)."""

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="+")
    jpeg = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    source_format = models.CharField(max_length=10)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"staged acceptance screenshot {self.pk} of case {self.case_id}"
