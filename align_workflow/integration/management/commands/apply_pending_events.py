"""Try every pending event from Align once more, oldest first per case.

Pending events are normally retried as soon as their case changes state. This sweep
is for the rest, e.g. an event that arrived while an outbound call held the case and
that call then failed (so the case did not move). Safe to run at any time, e.g. from cron.
"""

from collections import Counter

from django.core.management.base import BaseCommand

from align_workflow.integration.events import apply_pending
from align_workflow.integration.models import InboundEvent


class Command(BaseCommand):
    help = "Try every pending event from Align once more (oldest first per case)."

    def handle(self, *args, **options):
        case_ids = (
            InboundEvent.objects.filter(status=InboundEvent.Status.PENDING, case__isnull=False)
            .order_by()
            .values_list("case_id", flat=True)
            .distinct()
        )
        outcome = Counter()
        for case_id in list(case_ids):
            for event in apply_pending(case_id):
                outcome[event.status] += 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(outcome.items())) or "nothing pending"
        attention = InboundEvent.objects.needing_attention().count()
        self.stdout.write(f"Pending events tried: {summary}. Needing attention now: {attention}.")
