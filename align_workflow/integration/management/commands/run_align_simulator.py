"""`python manage.py run_align_simulator`: the Align simulator, with the app's settings as defaults.

The credentials, events secret, inbound token and vault key default to this app's
settings (which default to the contract's section 6 values), so the app and the
simulator agree out of the box. Stops cleanly on Ctrl-C / SIGTERM. Touches no database.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from align_simulator import serve
from align_simulator.cli import add_arguments, serve_options


class Command(BaseCommand):
    help = "Run the Align integration service simulator (see README: The Align simulator)."
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        add_arguments(
            parser,
            {
                "app_url": settings.APP_BASE_URL,
                "callback_secret": settings.ALIGN_EVENTS_SECRET,
                "client_id": settings.ALIGN_CLIENT_ID,
                "client_secret": settings.ALIGN_CLIENT_SECRET,
                "inbound_token": settings.ALIGN_INBOUND_TOKEN,
                "vault_api_key": settings.ALIGN_VAULT_API_KEY,
            },
        )

    def handle(self, *args, **options):
        def announce(line):
            self.stdout.write(line)
            self.stdout.flush()

        serve(announce=announce, **serve_options(options))
        announce("Align simulator stopped.")
