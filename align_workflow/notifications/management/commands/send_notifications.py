"""Send the notifications that are due: the one retry of a failed send, and the emails
about events from Align waiting too long.

python manage.py send_notifications          # once (cron; Celery beat does it as notifications.sweep)
python manage.py send_notifications --loop   # keep going (make run)
"""

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from align_workflow.notifications.sweep import sweep


class Command(BaseCommand):
    help = "Send due notification retries and tell staff about events from Align waiting too long."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running, looking again every --interval seconds")
        parser.add_argument("--interval", type=float, default=30, help="seconds between two looks with --loop")

    def handle(self, *args, loop=False, interval=30, **options):
        if not loop:
            self._once(quiet_when_idle=False)
            return
        try:
            while True:
                close_old_connections()
                try:
                    self._once(quiet_when_idle=True)
                except Exception as exc:  # keep the loop alive: the next pass tries again
                    self.stderr.write(f"send_notifications: {type(exc).__name__}")
                time.sleep(interval)
        except KeyboardInterrupt:
            pass

    def _once(self, quiet_when_idle):
        result = sweep()
        if quiet_when_idle and not (result.delivered or result.waiting_events or result.given_up):
            return
        self.stdout.write(
            f"{result.sent} sent, {result.failed} failed, {result.waiting_events} new about waiting events, "
            f"{result.given_up} given up."
        )
