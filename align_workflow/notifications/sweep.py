"""The periodic pass (`send_notifications`, Celery beat's `notifications.sweep`): events
from Align waiting too long become notifications, and the sends that are due (the one
retry of a failed send, a send whose process died, a pending one whose queued message was
lost) are made."""

from dataclasses import dataclass, field

from django.utils import timezone

from .listeners import waiting_events
from .services import deliver, due_ids, give_up_stale


@dataclass
class SweepResult:
    waiting_events: int = 0
    given_up: int = 0
    delivered: list = field(default_factory=list)  # the rows as they ended

    @property
    def sent(self):
        return sum(1 for row in self.delivered if row.status == row.Status.SENT)

    @property
    def failed(self):
        return len(self.delivered) - self.sent


def sweep(now=None) -> SweepResult:
    now = now or timezone.now()
    result = SweepResult()
    result.given_up = give_up_stale(now)
    result.waiting_events = sum(1 for row in waiting_events(now) if row is not None)
    for notification_id in due_ids(now):
        row = deliver(notification_id, now=now)
        if row is not None:
            result.delivered.append(row)
    return result
