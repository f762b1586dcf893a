"""ALIGN_EXECUTION=celery: cases sent through a real Celery worker process on Redis.

The worker is another process sharing the test database, so this needs PostgreSQL
(and Redis for the broker). The broker uses a Redis database of its own (db 7 on
REDIS_URL's server unless ALIGN_TEST_CELERY_BROKER_URL says otherwise), flushed first:
the cache's database is flushed between tests.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from align_workflow.cases.models import Case
from align_workflow.workflow import send_to_align
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def broker_url():
    explicit = os.environ.get("ALIGN_TEST_CELERY_BROKER_URL")
    if explicit:
        return explicit
    parts = urlsplit(django_settings.REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/7", "", ""))


def database_url():
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_broker(require_postgres, require_redis, settings):
    from align_workflow.celery import app

    url = broker_url()
    redis.Redis.from_url(url).flushdb()
    saved = app.conf.broker_url
    app.conf.broker_url = url
    app._pool = None  # producers are pooled per broker URL: start a pool for this one
    settings.ALIGN_EXECUTION = "celery"
    yield url
    app.conf.broker_url = saved
    app._pool = None


@pytest.fixture
def worker(celery_broker, simulator, app_for_align):
    simulator.config(app_url=app_for_align.url)
    # Not a `with`: the worker process writes to it until the fixture's teardown.
    log = tempfile.NamedTemporaryFile(prefix="align-celery-", suffix=".log", delete=False)  # noqa: SIM115
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=celery_broker,
        ALIGN_EXECUTION="celery",
        ALIGN_SERVICE_URL=simulator.url,
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "align_workflow",
            "worker",
            "--pool=threads",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process, log.name
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    Path(log.name).unlink(missing_ok=True)


def test_cases_reach_assets_uploaded_through_a_real_worker(worker, simulator, staff, flags_on):
    process, log = worker
    cases = [make_case() for _ in range(3)]
    results = [send_to_align(case, by=staff) for case in cases]
    assert all(r.queued for r in results)
    assert set(OutboundAttempt.objects.values_list("status", flat=True)) == {OutboundAttempt.Status.PENDING}

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Case.objects.filter(pk__in=[c.pk for c in cases], state=wf.ASSETS_UPLOADED).count() == len(cases):
            break
        assert process.poll() is None, Path(log).read_text()
        time.sleep(0.2)
    else:
        pytest.fail("the worker did not finish the cases:\n" + Path(log).read_text()[-4000:])

    effects = simulator.state()["effects"]
    assert (effects["patients"], effects["orders"], effects["uploads"]) == (3, 3, 3)
    assert "align.run_attempt" in Path(log).read_text()
