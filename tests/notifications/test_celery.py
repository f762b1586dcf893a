"""ALIGN_EXECUTION=celery: the email is queued after commit and sent by a real Celery
worker process (sharing the test database, so PostgreSQL; the broker on Redis), here
with the file backend so that the test can read what the worker sent."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core import mail

from align_workflow.notifications.models import Notification
from align_workflow.workflow import fire
from states import align_case as wf
from tests.plugins.celery import database_url
from tests.support.mail import phi_strings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mail_worker(celery_broker, tmp_path):
    outbox = tmp_path / "mail"
    log = tmp_path / "worker.log"
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=celery_broker,
        ALIGN_EXECUTION="celery",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(outbox),
        ALIGN_PUBLIC_URL="https://align.clinic.example",
        PYTHONUNBUFFERED="1",
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "align_workflow", "worker", "--pool=solo", "--without-gossip"]
            + ["--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield process, outbox, log
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_a_worker_sends_the_email_after_commit(mail_worker, phi_case, local_effects_only):
    process, outbox, log = mail_worker
    case = phi_case(wf.ASSETS_UPLOADED)
    fire(case, "receive_plan", by=None, plan={"plan_id": "TP-1", "version": 1})  # commits: the listener queues it
    assert mail.outbox == []  # not sent by this process

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Notification.objects.filter(status=Notification.Status.SENT).exists():
            break
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)
    else:
        pytest.fail("the worker did not send it:\n" + log.read_text()[-4000:])

    sent = "".join(path.read_text() for path in outbox.iterdir())
    assert f"Subject: Case {case.case_number}: a treatment plan waits for your review" in sent
    assert "To: dr.notify@practice.example" in sent
    assert f"https://align.clinic.example/provider/cases/{case.pk}/" in sent
    assert [value for value in phi_strings() if value.lower() in sent.lower()] == []
    assert "notifications.deliver" in log.read_text()
