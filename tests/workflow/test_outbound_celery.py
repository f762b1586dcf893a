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

import pytest
import redis
from django.conf import settings as django_settings
from django.urls import reverse

from align_workflow.align import vault
from align_workflow.cases.models import Case, CaseAsset
from align_workflow.workflow import TransitionNotAllowed, fire, purchases, send_to_align
from align_workflow.workflow.models import OutboundAttempt, StagedScreenshot
from align_workflow.workflow.outbound import fire_step, retry_case, run_attempt
from states import align_case as wf
from tests.plugins.celery import database_url
from tests.support.factories import make_case
from tests.support.images import png_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


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
        ALIGN_VAULT_URL=simulator.url,
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


# --- single steps in the background: the revision request and the acceptance ----------


def _to_plan_received(sim, case, staff, settings):
    """Set up inline (the worker is not part of this): sent, then plan version 1 received."""
    settings.ALIGN_EXECUTION = "inline"
    send_to_align(case, by=staff)
    assert case.state == wf.ASSETS_UPLOADED
    sim.emit(case.pk, "treatment_plan.submitted")
    plan = next(c for c in sim.state()["orders"] if c["caseId"] == case.pk)["plans"][-1]
    fire(case, "receive_plan", by=None, plan={"plan_id": plan["treatmentPlanId"], "version": plan["version"]})
    assert case.state == wf.PLAN_RECEIVED


def _approved(sim, case, staff, settings):
    settings.ALIGN_VAULT_URL = sim.url
    _to_plan_received(sim, case, staff, settings)
    fire(case, "approve_plan", by=case.prescription.provider.user, acceptance_screenshot=png_url())
    assert case.state == wf.PROVIDER_APPROVED


def _wait_for(case, state, process, log):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Case.objects.filter(pk=case.pk, state=state).exists():
            return
        assert process.poll() is None, Path(log).read_text()
        time.sleep(0.2)
    pytest.fail(f"the worker did not move the case to {state}:\n" + Path(log).read_text()[-4000:])


def _messages(response):
    return [str(m) for m in response.context["messages"]]


def test_a_revision_request_is_queued_and_the_worker_sends_it(worker, simulator, staff, flags_on, settings, client):
    process, log = worker
    case = make_case()
    _to_plan_received(simulator, case, staff, settings)
    settings.ALIGN_EXECUTION = "celery"
    client.force_login(case.prescription.provider.user)

    response = client.post(
        reverse("portals:provider_request_revision", args=[case.pk]), {"comments": "Less IPR on 32-42."}, follow=True
    )

    assert any("queued" in m for m in _messages(response)), _messages(response)
    attempt = OutboundAttempt.objects.get(case=case, step="request_revision")
    assert attempt.params["comments"] == "Less IPR on 32-42."
    assert attempt.idempotency_key.startswith(f"align-workflow:case-{case.pk}:request_revision:plan-v1:")
    _wait_for(case, wf.REVISION_REQUESTED, process, log)
    attempt.refresh_from_db()
    assert attempt.status == OutboundAttempt.Status.SUCCEEDED
    assert simulator.state()["effects"]["modifies"] == 1
    assert Path(log).read_text().count("align.run_attempt") >= 1


def test_a_queued_step_is_refused_before_anything_is_recorded(celery_broker, simulator, staff, flags_on, settings):
    case = make_case()
    settings.ALIGN_EXECUTION = "celery"
    with pytest.raises(TransitionNotAllowed) as refused:
        fire_step(case, "request_revision", by=case.prescription.provider.user, comments="Less IPR.")
    assert refused.value.code == "wrong_state"
    assert not OutboundAttempt.objects.filter(case=case).exists()


def test_the_acceptance_is_queued_and_the_worker_sends_it(worker, simulator, staff, flags_on, settings, client):
    process, log = worker
    case = make_case()
    _approved(simulator, case, staff, settings)
    settings.ALIGN_EXECUTION = "celery"
    client.force_login(staff)

    response = client.post(reverse("portals:staff_aligners_purchased", args=[case.pk]), {"confirm": "1"}, follow=True)

    assert any("queued" in m for m in _messages(response)), _messages(response)
    attempt = OutboundAttempt.objects.get(case=case, step="accept_clincheck")
    screenshot = CaseAsset.objects.get(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN)
    assert attempt.params == {"screenshot_asset_id": screenshot.pk}  # stored before it was queued
    _wait_for(case, wf.ACCEPTED, process, log)
    assert simulator.state()["effects"]["accepts"] == 1
    plan = next(c for c in simulator.state()["orders"] if c["caseId"] == case.pk)["plans"][-1]
    assert plan["screenshot"]["external_key"] == screenshot.external_key


def test_the_shops_report_queues_the_acceptance(worker, simulator, staff, flags_on, settings):
    process, log = worker
    case = make_case()
    _approved(simulator, case, staff, settings)
    settings.ALIGN_EXECUTION = "celery"

    outcome = purchases.report_purchase(case.pk, source="shop", order_reference="A-1")

    assert (outcome.recorded, outcome.acceptance) == (True, purchases.QUEUED)
    _wait_for(case, wf.ACCEPTED, process, log)
    assert simulator.state()["effects"]["accepts"] == 1


# --- the approval: the screenshot stored here before it is queued -----------------------


def test_an_approval_is_queued_and_the_worker_stores_the_screenshot_and_approves(
    worker, simulator, staff, flags_on, settings, client
):
    process, log = worker
    case = make_case()
    _to_plan_received(simulator, case, staff, settings)
    settings.ALIGN_EXECUTION = "celery"
    client.force_login(case.prescription.provider.user)

    response = client.post(
        reverse("portals:provider_approve", args=[case.pk]), {"acceptance_screenshot": png_url()}, follow=True
    )

    assert any("queued" in m for m in _messages(response)), _messages(response)
    attempt = OutboundAttempt.objects.get(case=case, step="approve_plan")
    assert list(attempt.params) == ["staged_screenshot_id"]  # the picture is not in the attempt
    _wait_for(case, wf.PROVIDER_APPROVED, process, log)
    attempt.refresh_from_db()
    assert attempt.status == OutboundAttempt.Status.SUCCEEDED
    asset = CaseAsset.objects.get(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN)
    stored = vault.HttpVault(simulator.url).get(asset.vault_id, asset.external_key)
    assert stored[:3] == b"\xff\xd8\xff"  # the JPEG the request decoded, now in the vault
    assert not StagedScreenshot.objects.filter(case=case).exists()


def _queued_approval(case, settings, screenshot=None):
    settings.ALIGN_EXECUTION = "celery"
    result = fire_step(case, "approve_plan", by=case.prescription.provider.user, acceptance_screenshot=screenshot)
    assert result.queued and case.state == wf.PLAN_RECEIVED
    return OutboundAttempt.objects.get(case=case, step="approve_plan")


def test_the_screenshot_is_stored_before_the_approval_is_queued(celery_broker, flags_on, settings, tmp_path):
    settings.ALIGN_VAULT_URL, settings.MEDIA_ROOT = "local", tmp_path
    case = make_case(state=wf.PLAN_RECEIVED)

    attempt = _queued_approval(case, settings, png_url(size=(320, 200)))

    assert attempt.status == OutboundAttempt.Status.PENDING
    staged = StagedScreenshot.objects.get(pk=attempt.params["staged_screenshot_id"], case=case)
    assert (staged.width, staged.height, staged.source_format) == (320, 200, "PNG")
    assert bytes(staged.jpeg)[:3] == b"\xff\xd8\xff"
    assert (
        redis.Redis.from_url(celery_broker).llen(django_settings.CELERY_TASK_DEFAULT_QUEUE) == 1
    )  # handed to the broker after the commit
    assert not CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN).exists()

    run_attempt(attempt.pk)  # what the worker runs

    case.refresh_from_db()
    assert case.state == wf.PROVIDER_APPROVED
    asset = CaseAsset.objects.get(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN)
    assert asset.sha256 == staged.sha256
    assert vault.get_vault().get(asset.vault_id, asset.external_key) == bytes(staged.jpeg)
    assert not StagedScreenshot.objects.exists()
    assert OutboundAttempt.objects.get(pk=attempt.pk).status == OutboundAttempt.Status.SUCCEEDED


def test_an_unusable_screenshot_is_refused_before_anything_is_stored_or_queued(celery_broker, flags_on, settings):
    case = make_case(state=wf.PLAN_RECEIVED)
    settings.ALIGN_EXECUTION = "celery"
    with pytest.raises(TransitionNotAllowed, match="not valid base64") as refused:
        fire_step(
            case, "approve_plan", by=case.prescription.provider.user, acceptance_screenshot="data:image/png;base64,@@"
        )
    assert refused.value.code == "invalid_input"
    assert not OutboundAttempt.objects.exists() and not StagedScreenshot.objects.exists()
    assert redis.Redis.from_url(celery_broker).llen(django_settings.CELERY_TASK_DEFAULT_QUEUE) == 0


def test_a_failed_vault_write_keeps_the_screenshot_for_the_retry(
    celery_broker, flags_on, settings, staff, tmp_path, monkeypatch
):
    settings.ALIGN_VAULT_URL, settings.MEDIA_ROOT = "local", tmp_path
    case = make_case(state=wf.PLAN_RECEIVED)
    attempt = _queued_approval(case, settings, png_url())
    real_get_vault = vault.get_vault

    class DownVault:
        def put(self, data, *, filename, content_type):
            raise vault.VaultError("vault unavailable", status=503, retryable=True)

    monkeypatch.setattr(vault, "get_vault", DownVault)
    result = run_attempt(attempt.pk)

    assert result.failed_step == "approve_plan" and result.retry_at is not None
    case.refresh_from_db()
    assert case.state == wf.PLAN_RECEIVED and case.busy_with == ""
    assert OutboundAttempt.objects.get(pk=attempt.pk).status == OutboundAttempt.Status.FAILED_RETRYABLE
    assert StagedScreenshot.objects.filter(pk=attempt.params["staged_screenshot_id"]).exists()

    monkeypatch.setattr(vault, "get_vault", real_get_vault)
    settings.ALIGN_EXECUTION = "inline"  # the staff's Retry, run here
    retried = retry_case(case, by=staff)

    assert retried.ok and case.state == wf.PROVIDER_APPROVED
    assert CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN).count() == 1
    assert not StagedScreenshot.objects.exists()
