"""Run the calls to Align that are due: planned retries, and attempts whose process died.

python manage.py align_retry_due            # once: every retry whose time has come
python manage.py align_retry_due --all      # every planned retry now, whatever its time
python manage.py align_retry_due --loop     # keep going (make run; small deployments)
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from align_workflow.workflow import outbound
from align_workflow.workflow.terminal import terminal_safe


class Command(BaseCommand):
    help = "Send the calls to Align whose retry is due, and take over attempts whose lease expired."

    def add_arguments(self, parser):
        parser.add_argument(
            "--all",
            action="store_true",
            dest="everything",
            help="run every planned retry now, not only those whose time has come",
        )
        parser.add_argument("--loop", action="store_true", help="keep running, looking again every --interval seconds")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between two looks with --loop (default: ALIGN_SWEEP_SECONDS, at most 5)",
        )
        parser.add_argument("--workers", type=int, default=1, help="send this many attempts at once (threads)")

    def handle(self, *args, everything=False, loop=False, interval=None, workers=1, verbosity=1, **options):
        interval = interval if interval is not None else min(settings.ALIGN_SWEEP_SECONDS, 5)
        if not loop:
            self._once(everything, workers, verbosity, quiet_when_idle=False)
            return
        self.stdout.write(f"Retrying due calls to Align every {interval:g}s (Ctrl-C stops).")
        try:
            while True:
                close_old_connections()
                try:
                    self._once(everything, workers, verbosity, quiet_when_idle=True)
                except Exception as exc:  # keep the loop alive: a bad pass is logged, the next one tries again
                    self.stderr.write(terminal_safe(f"align_retry_due: {type(exc).__name__}: {exc}"))
                time.sleep(interval)
        except KeyboardInterrupt:
            pass

    def _once(self, everything, workers, verbosity, quiet_when_idle):
        run = outbound.run_due(everything=everything, workers=max(1, workers))
        if quiet_when_idle and not (run.expired or run.started or run.acceptances):
            return
        failed = [r for r in run.results if not r.ok]
        if verbosity:
            self.stdout.write(
                f"{run.started} attempt(s) run ({run.retried} retries, {run.restarted} never started), "
                f"{run.expired} taken over after their lease expired; {len(failed)} failed again."
            )
            if run.acceptances:
                sent = sum(outcome == "sent" for _, outcome, _ in run.acceptances)
                self.stdout.write(
                    f"{sent} waiting acceptance(s) of bought aligners sent ({len(run.acceptances)} case(s) looked at)."
                )
                for case_id, outcome, detail in run.acceptances:
                    if outcome != "sent":
                        self.stdout.write(f"  case {case_id}: {detail}")
            if verbosity > 1:
                for r in failed:
                    self.stdout.write(terminal_safe(f"  case {r.case_id}: {r.failed_step}: {r.error}"))
