"""Settings of the app server that figure 7 starts (gunicorn): bench.settings, the bench-only
bare endpoint's URL, persistent database connections, and secrets of this run instead of
the demo values (DEBUG is off, so the demo values would stop the server)."""

import os

from bench.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405 - as a production deployment has them
for _name in DEMO_SECRETS:  # noqa: F405
    globals()[_name] = f"bench-only-{_name.lower()}-{os.getpid()}"
ALIGN_EVENTS_SECRET = os.environ["BENCH_EVENTS_SECRET"]
