"""Command-line options shared by `manage.py run_align_simulator` and `python -m ...simulator`."""

import argparse
import os

from .config import DEFAULTS, MAX_DELIVERY_CONCURRENCY


def delivery_concurrency(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_DELIVERY_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_DELIVERY_CONCURRENCY}, not {text!r}")
    return value


def add_arguments(parser, defaults=None):
    """Add the simulator's options; `defaults` overrides the contract's (section 6) values."""
    values = {**DEFAULTS, **(defaults or {})}
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    parser.add_argument(
        "--app-url", default=values["app_url"], help="the app's base URL: asset lists and events (default %(default)s)"
    )
    parser.add_argument(
        "--callback-url", default=None, help="where events go, if not to the app URL ('' keeps them undelivered)"
    )
    parser.add_argument("--public-url", default=None, help="the simulator's own URL as others reach it")
    parser.add_argument("--events-secret", default=values["callback_secret"], help="whsec_ secret that signs events")
    parser.add_argument("--client-id", default=values["client_id"])
    parser.add_argument("--client-secret", default=values["client_secret"])
    parser.add_argument(
        "--inbound-token",
        default=values["inbound_token"],
        help="token presented to the app when reading a case's assets",
    )
    parser.add_argument("--vault-api-key", default=values["vault_api_key"])
    parser.add_argument(
        "--no-auto-advance", action="store_true", help="send events only when asked through /_sim/cases/{id}/emit"
    )
    parser.add_argument(
        "--delay-ms", type=float, default=values["delay_ms"], help="time between Align's steps (default %(default)s)"
    )
    parser.add_argument(
        "--delivery-concurrency",
        type=delivery_concurrency,
        default=values["delivery_concurrency"],
        help="event deliveries in flight at once, 1 to 64 (default %(default)s)",
    )
    parser.add_argument("--token-ttl", type=float, default=values["token_ttl"])
    parser.add_argument("--seed", type=int, default=None, help="seed every random choice")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started this one exits (used by the tests)",
    )


def serve_options(options):
    """The keyword arguments of `server.serve()` for parsed options (a dict)."""
    app_url = options["app_url"].rstrip("/")
    callback = options["callback_url"]
    return {
        "host": options["host"],
        "port": options["port"],
        "public_url": options["public_url"],
        "parent_pid": os.getppid() if options["exit_with_parent"] else None,
        "app_url": app_url,
        "callback_base_url": app_url if callback is None else callback,
        "callback_secret": options["events_secret"],
        "client_id": options["client_id"],
        "client_secret": options["client_secret"],
        "inbound_token": options["inbound_token"],
        "vault_api_key": options["vault_api_key"],
        "auto_advance": not options["no_auto_advance"],
        "delay_ms": options["delay_ms"],
        "token_ttl": options["token_ttl"],
        "delivery_concurrency": options["delivery_concurrency"],
        "seed": options["seed"],
    }
