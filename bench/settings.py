"""The project's settings plus the bench-only models (tables made with --run-syncdb)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG keeps every query in memory

from align_workflow.settings import *  # noqa: E402,F401,F403

INSTALLED_APPS = INSTALLED_APPS + ["bench"]  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False}
# A database of its own, so a benchmark never touches the test suite's or the app's.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("BENCH_DB_NAME", "align_bench")}  # noqa: F405
# The app is served over plain HTTP on the loopback to the simulator (figures 2-4).
SECURE_SSL_REDIRECT = False
# No static files are served by the benchmarks (and collectstatic has not run).
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405
