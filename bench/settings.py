"""The project's settings plus the bench-only models (tables made with --run-syncdb)."""

import os
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG keeps every query in memory

from align_workflow.settings import *  # noqa: E402,F401,F403

INSTALLED_APPS = INSTALLED_APPS + ["bench"]  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False}


def _database_name():
    """A database of its own, so a benchmark never touches the test suite's or the app's:
    BENCH_DB_NAME, else `bench_` + DATABASE_URL's database name, so that runs against two
    databases on one server (two clones, two people) do not drop each other's."""
    return os.environ.get("BENCH_DB_NAME") or f"bench_{DATABASES['default']['NAME']}"  # noqa: F405


def _redis_db(variable, db):
    """`variable` if set, else database `db` on REDIS_URL's server (a local Redis when
    REDIS_URL is unset): a run uses the Redis its environment points at."""
    if os.environ.get(variable):
        return os.environ[variable]
    parts = urlsplit(REDIS_URL or "redis://127.0.0.1:6379/0")  # noqa: F405
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


DATABASES["default"]["TEST"] = {"NAME": _database_name()}  # noqa: F405
# Figure 6's cache (the token and its lock) and figure 3's Celery broker, each flushed by its run.
BENCH_REDIS_URL = _redis_db("BENCH_REDIS_URL", 11)
BENCH_CELERY_BROKER_URL = _redis_db("BENCH_CELERY_BROKER_URL", 9)
# The app is served over plain HTTP on the loopback to the simulator (figures 2-4).
SECURE_SSL_REDIRECT = False
# No static files are served by the benchmarks (and collectstatic has not run).
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405

# No mail leaves a benchmark: the notifications are still recorded and "sent" (to memory),
# so their cost is measured, but no SMTP connection is tried (there is no server here).
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
