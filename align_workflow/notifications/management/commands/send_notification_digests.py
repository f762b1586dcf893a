"""Send each provider's daily digest (what they chose to receive once a day).

python manage.py send_notification_digests                    # today's (UTC); run from cron, e.g. 17:00
python manage.py send_notification_digests --date 2026-12-01  # a given day's

Idempotent per day: a provider's digest for a day is sent once however often this runs;
a digest whose send failed is sent by the next run.
"""

import argparse
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from align_workflow.notifications.digests import send_digests


def _day(value):
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a day as YYYY-MM-DD") from None


class Command(BaseCommand):
    help = "Send each provider's daily notification digest (once per provider and day)."

    def add_arguments(self, parser):
        parser.add_argument("--date", type=_day, default=None, help="the day (YYYY-MM-DD; default: today, UTC)")

    def handle(self, *args, date=None, **options):
        run = send_digests(date)
        self.stdout.write(
            f"{len(run.sent)} digest(s) sent, {len(run.failed)} failed, {run.already_sent} already sent that day."
        )
        if run.failed:
            raise CommandError(f"{len(run.failed)} digest(s) could not be sent; run again to retry them.")
