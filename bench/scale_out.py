"""Figure 3: scale-out. The flow of figure 2 with 100 ms of simulator latency on every
call, run once by one inline process and once with ALIGN_EXECUTION=celery and a real
Celery worker (8 slots) sending the calls.

The people's actions are the same in both runs: one thread sends every case, then
approves and accepts each one (bench/flow.py). With Celery, `send_to_align` only
records and queues the first step, and the worker runs create patient -> create order
-> upload assets; approve_plan and accept_clincheck are single steps that `fire()`
always sends in the caller's thread, in both modes (the person sees the outcome at
once), so they stay one after another here. The table therefore has two rows: the
whole flow, and the part Celery takes over ("Send to Align" until the plan is received).

The worker is `celery -A align_workflow worker --pool=threads --concurrency=8`: the
work is waiting on the network, so eight threads in one process serve it on two cores
without eight copies of the app in memory (prefork would fork eight processes, each
with its own connections, for work that holds the GIL only between waits).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from django.conf import settings

from states import align_case as wf

from . import flow
from .report import Row

LATENCY_MS = 100
SLOTS = 8
TIMEOUT_S = 300
ROOT = Path(__file__).resolve().parents[1]


def broker_url():
    return os.environ.get("BENCH_CELERY_BROKER_URL", "redis://127.0.0.1:6379/9")


class Worker:
    """A real Celery worker process on the bench database and a broker database of its own."""

    def __init__(self, sim_url):
        self.sim_url = sim_url

    def __enter__(self):
        from align_workflow.celery import app

        self.url = broker_url()
        redis.Redis.from_url(self.url).flushdb()
        self.saved = app.conf.broker_url
        app.conf.broker_url = self.url
        app._pool = None  # producers are pooled per broker URL: start a pool for this one
        self.log = tempfile.NamedTemporaryFile(prefix="align-bench-celery-", suffix=".log", delete=False)
        env = flow.env_for_subprocess(
            DJANGO_SETTINGS_MODULE="bench.settings", DATABASE_URL=flow.database_url(), CELERY_BROKER_URL=self.url,
            ALIGN_EXECUTION="celery", ALIGN_SERVICE_URL=self.sim_url, ALIGN_VAULT_URL=self.sim_url,
            DB_CONN_MAX_AGE=str(flow.PERSISTENT_CONNECTIONS_S))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "align_workflow", "worker", "--pool=threads",
             f"--concurrency={SLOTS}", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel=WARNING"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        return self

    def check(self):
        if self.process.poll() is not None:
            raise RuntimeError("the Celery worker stopped:\n" + Path(self.log.name).read_text()[-3000:])

    def __exit__(self, *exc):
        from align_workflow.celery import app

        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        Path(self.log.name).unlink(missing_ok=True)
        app.conf.broker_url = self.saved
        app._pool = None


def _timed_flow(cases, staff, provider_user, screenshot):
    """(whole flow, the "Send to Align" part until every plan is received), in seconds."""
    ids = [c.pk for c in cases]
    start = time.perf_counter()
    flow.send_all(cases, staff)
    flow.wait_for_states(ids, wf.PLAN_RECEIVED, TIMEOUT_S)
    sent = time.perf_counter() - start
    flow.approve_and_accept(cases, staff, provider_user, screenshot)
    flow.wait_for_states(ids, wf.SHIPPING, TIMEOUT_S)
    return time.perf_counter() - start, sent


def run(scale=1.0):
    skipped = flow.needs_postgres("3 scale-out")
    if skipped:
        return [skipped]
    try:
        redis.Redis.from_url(broker_url()).ping()
    except redis.RedisError as exc:
        return [Row("3 scale-out", f"not measured: no Redis broker at {broker_url()} ({type(exc).__name__})", "-")]
    n = max(SLOTS // 4, int(48 * scale))
    flow.flags_on()
    staff, provider_user = flow.people("F3")
    screenshot = flow.screenshot_data_url()
    inline_cases = flow.make_cases(n, "F3I", provider_user)
    celery_cases = flow.make_cases(n, "F3C", provider_user)
    warm = flow.make_cases(4, "F3W", provider_user)
    saved_execution = settings.ALIGN_EXECUTION

    with flow.Simulator() as sim, flow.AppServer() as app:
        flow.use_simulator(sim)
        flow.point_simulator_at(sim, app.url, latency_ms=LATENCY_MS)
        try:
            settings.ALIGN_EXECUTION = "inline"
            flow.run_flow(warm[:2], staff, provider_user, screenshot, TIMEOUT_S)
            inline_total, inline_sent = _timed_flow(inline_cases, staff, provider_user, screenshot)

            with Worker(sim.url) as worker:
                settings.ALIGN_EXECUTION = "celery"
                flow.run_flow(warm[2:], staff, provider_user, screenshot, TIMEOUT_S)  # the worker is up
                worker.check()
                celery_total, celery_sent = _timed_flow(celery_cases, staff, provider_user, screenshot)
                worker.check()
        finally:
            settings.ALIGN_EXECUTION = saved_execution

    whole, part = inline_total / celery_total, inline_sent / celery_sent
    return [
        Row("3 scale-out", f"{n} cases eligible -> shipping, {LATENCY_MS} ms latency, Celery ({SLOTS} threads)",
            f"{celery_total:.1f} s", f"{inline_total:.1f} s inline", whole, ">= 6", whole >= 6),
        Row("3 scale-out", f"the same, \"Send to Align\" until every plan is received",
            f"{celery_sent:.1f} s", f"{inline_sent:.1f} s inline", part, "report"),
    ]
