"""A real Celery broker for the tests that start a worker process: a Redis database on
REDIS_URL's server (db 7, or ALIGN_TEST_CELERY_BROKER_URL), flushed first, and the app's
execution switched to Celery for the test."""

import os
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection


def broker_url():
    explicit = os.environ.get("ALIGN_TEST_CELERY_BROKER_URL")
    if explicit:
        return explicit
    parts = urlsplit(django_settings.REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/7", "", ""))


def database_url():
    """The test database as a URL, for the worker process's DATABASE_URL."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_broker(require_postgres, require_redis, settings):
    from align_workflow.celery import app  # why: the Celery app loads Django's settings; fixtures run after setup

    url = broker_url()
    redis.Redis.from_url(url).flushdb()
    saved = app.conf.broker_url
    app.conf.broker_url = url
    app._pool = None  # producers are pooled per broker URL: start a pool for this one
    settings.ALIGN_EXECUTION = "celery"
    yield url
    app.conf.broker_url = saved
    app._pool = None
