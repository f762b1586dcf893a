"""Due retries and expired leases (align_retry_due, the Celery sweep)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from align_workflow.cases.models import Case

from .. import purchases
from ..busy import open_attempt
from ..models import OutboundAttempt
from ..pool import run_each
from .outcomes import enqueue, expire
from .policy import lease_end
from .runner import run_logged

AttemptStatus = OutboundAttempt.Status


@dataclass
class DueRun:
    expired: int = 0  # in-flight attempts whose process had stopped
    restarted: int = 0  # pending attempts nobody had started
    retried: int = 0  # failed attempts whose retry was due
    results: list = field(default_factory=list)
    acceptances: list = field(default_factory=list)  # (case id, outcome, detail): purchases' waiting acceptances

    @property
    def started(self):
        return self.restarted + self.retried


def collect_due(*, everything=False) -> tuple[DueRun, list[int]]:
    """Claim the work that is due and record one pending attempt for each retry.

    `everything`: every planned retry now, whatever its time.
    """
    now = timezone.now()
    run = DueRun()
    for attempt in OutboundAttempt.objects.filter(status=AttemptStatus.IN_FLIGHT, claimed_until__lt=now):
        run.expired += expire(attempt)

    to_run = []
    for attempt in OutboundAttempt.objects.filter(status=AttemptStatus.PENDING, claimed_until__lt=now):
        if OutboundAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.PENDING, claimed_until__lt=now).update(
            claimed_until=lease_end()
        ):
            run.restarted += 1
            to_run.append(attempt.pk)

    due = OutboundAttempt.objects.filter(status=AttemptStatus.FAILED_RETRYABLE, next_retry_at__isnull=False)
    if not everything:
        due = due.filter(next_retry_at__lte=timezone.now())
    for failed_id, case_id in due.order_by("next_retry_at").values_list("pk", "case_id"):
        with transaction.atomic():
            locked = Case.objects.select_for_update().get(pk=case_id)
            failed = OutboundAttempt.objects.select_for_update().get(pk=failed_id)
            if failed.next_retry_at is None or failed.status != AttemptStatus.FAILED_RETRYABLE or open_attempt(case_id):
                continue
            failed.next_retry_at = None
            failed.save(update_fields=["next_retry_at"])
            attempt = enqueue(locked, failed.step, by=failed.by, params=failed.params, chain=failed.chain)
        run.retried += 1
        to_run.append(attempt.pk)
    return run, to_run


def run_due(*, everything=False, workers=1) -> DueRun:
    """Run, in this process, every retry that is due (and take over stale attempts)."""
    run, to_run = collect_due(everything=everything)
    run.results = [r for r in run_each(run_logged, to_run, workers=workers, name="align-retry") if r is not None]
    # Bought cases whose acceptance waited for the flag: sent now if the flag is on.
    run.acceptances = purchases.send_waiting()
    return run
