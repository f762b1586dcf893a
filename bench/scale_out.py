"""Figure 3: scale-out. The flow of figure 2 with 100 ms of simulator latency on every
call, run once by one inline process and with ALIGN_EXECUTION=celery and real Celery
workers (8 slots): one worker process with 8 threads, then two worker processes with 4
threads each (the shape of two machines sharing PostgreSQL and Redis).

The people's actions are the same in every run: one thread sends every case, then
approves and accepts each one (bench/flow.py). With Celery, `send_to_align` only
records and queues the first step, and a worker runs create patient -> create order
-> upload assets; the approval and the acceptance (`fire_step`, as the provider's
button, the staff button and the shop's report send them) are recorded and queued the
same way: the approval's screenshot is decoded and stored in the database by the
person's request, and a worker puts it in the vault and approves the plan; each
acceptance is queued once its approval is done. The table has three rows
per Celery shape: the whole flow; until every plan is received ("Send to Align", then
Align's events); and until every upload is accepted (the three calls a worker makes
for each case).

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

from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf

from . import flow
from .report import Row

LATENCY_MS = 100
SLOTS = 8
TIMEOUT_S = 300
ROOT = Path(__file__).resolve().parents[1]


def pool():
    return os.environ.get("BENCH_CELERY_POOL", "threads")


def broker_url():
    return settings.BENCH_CELERY_BROKER_URL


class Worker:
    """Real Celery worker processes (`processes` of them, SLOTS slots between them) on the
    bench database and a broker database of their own."""

    def __init__(self, sim_url, processes=1):
        self.sim_url = sim_url
        self.processes = processes

    def __enter__(self):
        from align_workflow.celery import app

        self.url = broker_url()
        redis.Redis.from_url(self.url).flushdb()
        self.saved = app.conf.broker_url
        app.conf.broker_url = self.url
        app._pool = None  # producers are pooled per broker URL: start a pool for this one
        self.log = tempfile.NamedTemporaryFile(prefix="align-bench-celery-", suffix=".log", delete=False)
        env = flow.env_for_subprocess(
            DJANGO_SETTINGS_MODULE="bench.settings",
            DATABASE_URL=flow.database_url(),
            CELERY_BROKER_URL=self.url,
            ALIGN_EXECUTION="celery",
            ALIGN_SERVICE_URL=self.sim_url,
            ALIGN_VAULT_URL=self.sim_url,
            DB_CONN_MAX_AGE=str(flow.PERSISTENT_CONNECTIONS_S),
        )
        self.workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "align_workflow",
                    "worker",
                    f"--pool={pool()}",
                    f"--concurrency={SLOTS // self.processes}",
                    f"--hostname=bench{number}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel=WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            for number in range(self.processes)
        ]
        return self

    def check(self):
        if any(process.poll() is not None for process in self.workers):
            raise RuntimeError("a Celery worker stopped:\n" + Path(self.log.name).read_text()[-3000:])

    def cpu(self):
        """CPU seconds used so far by the worker processes (and their children)."""
        return sum(flow.cpu_now(process.pid) for process in self.workers)

    def __exit__(self, *exc):
        from align_workflow.celery import app

        for process in self.workers:
            process.terminate()
        for process in self.workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        Path(self.log.name).unlink(missing_ok=True)
        app.conf.broker_url = self.saved
        app._pool = None


def _uploads_accepted(ids):
    return OutboundAttempt.objects.filter(
        case_id__in=ids, step="upload_assets", status=OutboundAttempt.Status.SUCCEEDED
    ).count() == len(ids)


def _timed_flow(cases, staff, provider_user, screenshot):
    """Seconds until: every case is shipping, every plan is received, every case's three
    "Send to Align" calls are done; and the seconds the people's phase took (approve
    each plan, then accept it: queued with Celery)."""
    ids = [c.pk for c in cases]
    start = time.perf_counter()
    flow.send_all(cases, staff)
    flow.wait_until(lambda: _uploads_accepted(ids), "the uploads", TIMEOUT_S)
    calls = time.perf_counter() - start
    flow.wait_for_states(ids, wf.PLAN_RECEIVED, TIMEOUT_S)
    planned = time.perf_counter() - start
    people = time.perf_counter()
    flow.approve_and_accept(cases, staff, provider_user, screenshot)
    people = time.perf_counter() - people
    flow.wait_for_states(ids, wf.SHIPPING, TIMEOUT_S)
    return time.perf_counter() - start, planned, calls, people


def _with_workers(processes, sim, cases, warm, people):
    """The Celery flow with `processes` worker processes: (times, this process's CPU meter,
    the workers' CPU seconds)."""
    staff, provider_user, screenshot = people
    with Worker(sim.url, processes) as worker:
        settings.ALIGN_EXECUTION = "celery"
        flow.run_flow(warm, staff, provider_user, screenshot, TIMEOUT_S)  # the workers are up
        worker.check()
        meter, before = flow.CpuMeter().start(), worker.cpu()
        times = _timed_flow(cases, staff, provider_user, screenshot)
        worker_cpu = worker.cpu() - before
        meter.stop()
        worker.check()
    return times, meter, worker_cpu


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
    people = (staff, provider_user, screenshot)
    inline_cases = flow.make_cases(n, "F3I", provider_user)
    shapes = {
        1: (flow.make_cases(n, "F3C", provider_user), f"Celery ({SLOTS} {pool()})"),
        2: (flow.make_cases(n, "F3P", provider_user), f"Celery (2 processes x {SLOTS // 2} {pool()})"),
    }
    warm = flow.make_cases(6, "F3W", provider_user)
    saved_execution = settings.ALIGN_EXECUTION

    measured = {}
    with flow.Simulator() as sim, flow.AppServer() as app:
        flow.use_simulator(sim)
        flow.point_simulator_at(sim, app.url, latency_ms=LATENCY_MS)
        try:
            settings.ALIGN_EXECUTION = "inline"
            flow.run_flow(warm[:2], staff, provider_user, screenshot, TIMEOUT_S)
            inline_cpu = flow.CpuMeter().start()
            inline = _timed_flow(inline_cases, staff, provider_user, screenshot)
            inline_cpu.stop()
            for number, (processes, (cases, _)) in enumerate(shapes.items()):
                measured[processes] = _with_workers(
                    processes, sim, cases, warm[2 + 2 * number : 4 + 2 * number], people
                )
        finally:
            settings.ALIGN_EXECUTION = saved_execution

    rows = []
    for processes, (_, shape) in shapes.items():
        celery, celery_cpu, worker_cpu = measured[processes]
        measures = (
            (f"{n} cases eligible -> shipping, {LATENCY_MS} ms latency, {shape}", ">= 6"),
            ("the same until every plan is received (Send to Align, then Align's events)", "report"),
            ("the same until every upload is accepted (the 3 calls the workers make)", "report"),
            ("of which approving every plan and accepting it (one thread, as the people)", "report"),
        )
        for (measure, target), t_inline, t_celery in zip(measures, inline, celery, strict=True):
            speedup = t_inline / t_celery
            rows.append(
                Row(
                    "3 scale-out",
                    measure,
                    f"{t_celery:.1f} s",
                    f"{t_inline:.1f} s inline",
                    speedup,
                    target,
                    speedup >= 6 if target != "report" else None,
                )
            )
        rows.append(
            Row(
                "3 scale-out",
                "CPU per case: this process + the workers / the inline process",
                f"{(celery_cpu.cpu + worker_cpu) / n * 1000:.0f} ms ({worker_cpu / n * 1000:.0f} ms workers)",
                f"{inline_cpu.cpu / n * 1000:.0f} ms inline",
                None,
                "report",
            )
        )
        rows.append(
            Row(
                "3 scale-out",
                "the machine's CPU busy (both cores, every process)",
                flow.percent(celery_cpu.busy),
                flow.percent(inline_cpu.busy) + " inline",
                None,
                "report",
            )
        )
    return rows
