"""Figure 7: signed events from Align ingested per second, and a burst with no loss.

A real app server process (gunicorn, `bench.ingest_settings`: the app's URLs plus one
bench-only URL) on the bench database. Senders in this process POST signed events
(Standard Webhooks, signed as the simulator signs them) from many threads at once, as a
webhook sender with concurrent delivery does, each retrying a non-2xx answer or a network
error. The app's `POST /api/align/events` verifies, stores and applies each event
(`case.status_changed` with a status that moves no state: the status record is kept);
the baseline is `POST /bench/events` in the same server, which verifies the signature
and stores the body (one INSERT). Both sides run in the same minutes, alternating.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from django.db import connection

from align_simulator.outbox import signature_headers
from align_workflow.cases.models import Case, Patient
from align_workflow.integration.models import InboundEvent
from states import align_case as wf

from .models import BareEvent
from .report import Row

EVENTS_PATH = "/api/align/events"
BARE_PATH = "/bench/events"
SECRET = "whsec_" + base64.b64encode(b"figure-7 bench-only events secret").decode()
STATUSES = ("SETUP_IN_PROGRESS", "CLINCHECK_READY", "IN_MANUFACTURING", "ON_HOLD")  # none moves a state
SENDERS = 16  # deliveries in flight at once
BURST_SENDERS = 32
THREADS_PER_WORKER = 4
ATTEMPTS = 8


def _free_port():
    """A free port in BENCH_PORTS (default 37000-37499)."""
    low, _, high = os.environ.get("BENCH_PORTS", "37000-37499").partition("-")
    for port in range(int(low), int(high) + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def _database_url():
    """DATABASE_URL with the bench database's name (the server must use the same one)."""
    parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


class AppServerProcess:
    """gunicorn serving this app with `workers` processes of THREADS_PER_WORKER threads."""

    def __init__(self, workers):
        self.workers = workers

    def __enter__(self):
        port = _free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.ingest_settings",
            "DATABASE_URL": _database_url(),
            "BENCH_EVENTS_SECRET": SECRET,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "align_workflow.wsgi:application",
                f"--bind=127.0.0.1:{port}",
                f"--workers={self.workers}",
                "--worker-class=gthread",
                f"--threads={THREADS_PER_WORKER}",
                "--backlog=2048",
                "--log-level=warning",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        try:
            self._wait_until_ready()
            self._warm_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                if requests.get(self.url + BARE_PATH, timeout=5).status_code == 405:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer within 60 s")

    def _warm_up(self):
        """Every worker imports and connects before anything is timed."""
        with requests.Session() as session:
            for _ in range(self.workers * THREADS_PER_WORKER * 2):
                session.get(self.url + BARE_PATH, timeout=30)

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _cases(count):
    """`count` cases waiting for their plan, each with its patient; their (id, mrn)."""
    stamp = uuid.uuid4().hex[:8]
    patients = Patient.objects.bulk_create(
        [
            Patient(
                mrn=f"B7-{stamp}-{i}",
                first_name="Bench",
                last_name="Events",
                date_of_birth="1990-01-01",
                gender="F",
                email=f"b7-{i}@example.com",
            )
            for i in range(count)
        ]
    )
    cases = Case.objects.bulk_create(
        [Case(case_number=f"B7-{stamp}-{i}", patient=p, state=wf.ASSETS_UPLOADED) for i, p in enumerate(patients)]
    )
    return [(c.pk, p.mrn) for c, p in zip(cases, patients, strict=True)]


def _events(cases, count):
    """`count` signed deliveries (body, headers), spread over the cases, oldest first."""
    start = datetime.now(UTC) - timedelta(hours=1)
    deliveries = []
    for i in range(count):
        case_id, mrn = cases[i % len(cases)]
        event_id = f"evt_b7_{uuid.uuid4().hex}"
        body = json.dumps(
            {
                "type": "case.status_changed",
                "event_id": event_id,
                "occurred_at": (start + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
                "data": {
                    "caseId": case_id,
                    "mrn": mrn,
                    "salesOrderNumber": None,
                    "status": STATUSES[i % len(STATUSES)],
                    "previousStatus": STATUSES[(i - 1) % len(STATUSES)],
                },
            }
        )
        deliveries.append((event_id, body.encode(), signature_headers(event_id, body, [SECRET])))
    return deliveries


def _send(url, deliveries, senders):
    """POST every delivery from `senders` threads; retried until 2xx. (seconds, failures, retries)."""
    local = threading.local()
    retries = []
    failures = []

    def deliver(delivery):
        event_id, body, headers = delivery
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if session.post(url, data=body, headers=headers, timeout=30).ok:
                    return
            except requests.RequestException:
                session = local.session = requests.Session()
            retries.append(event_id)
            time.sleep(0.05 * 2 ** (attempt - 1))
        failures.append(event_id)

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(deliver, deliveries))
    return time.perf_counter() - started, failures, retries


def _rate(count, seconds):
    return count / seconds if seconds else 0.0


def run(scale=1.0):
    if connection.vendor != "postgresql":
        return [Row("7 events", "ingestion through gunicorn", "not run (needs PostgreSQL)")]
    n = max(40, int(2000 * scale))
    burst = max(40, int(10_000 * scale))
    cases = _cases(max(4, n // 10))
    rows = []
    rates = {}
    for workers in (1, 2):
        with AppServerProcess(workers) as server:
            app_s = bare_s = 0.0
            for round_ in range(2):  # alternate which side goes first
                half = n // 2
                app_events, bare_events = _events(cases, half), _events(cases, half)
                sides = [("app", EVENTS_PATH, app_events), ("bare", BARE_PATH, bare_events)]
                for side, path, deliveries in sides if round_ == 0 else reversed(sides):
                    seconds, failures, _ = _send(server.url + path, deliveries, SENDERS)
                    if failures:
                        raise RuntimeError(f"{len(failures)} events were never accepted by {path}")
                    if side == "app":
                        app_s += seconds
                    else:
                        bare_s += seconds
            count = 2 * (n // 2)
            rates[workers] = (_rate(count, app_s), _rate(count, bare_s))
    for workers, (app_rate, bare_rate) in rates.items():
        ratio = bare_rate / app_rate if app_rate else None
        rows.append(
            Row(
                "7 events",
                f"{2 * (n // 2)} signed events, {SENDERS} at once, gunicorn {workers} process(es) x {THREADS_PER_WORKER} threads",
                f"{app_rate:.0f} events/s",
                f"{bare_rate:.0f}/s bare endpoint",
                round(ratio, 2) if ratio else None,
                "<= 2.0" if workers == 2 else "report",
                (ratio is not None and ratio <= 2.0) if workers == 2 else None,
            )
        )
    one, two = rates[1][0], rates[2][0]
    rows.append(
        Row(
            "7 events",
            "the app's events/s, 2 gunicorn processes vs 1",
            f"{two:.0f} events/s",
            f"{one:.0f}/s with 1",
            round(two / one, 2) if one else None,
            "report",
        )
    )

    burst_cases = _cases(max(4, burst // 20))
    deliveries = _events(burst_cases, burst)
    ids = [event_id for event_id, _, _ in deliveries]
    with AppServerProcess(2) as server:
        seconds, failures, retries = _send(server.url + EVENTS_PATH, deliveries, BURST_SENDERS)
    stored = InboundEvent.objects.filter(event_id__in=ids)
    stored_count = stored.count()
    distinct = stored.values("event_id").distinct().count()
    unapplied = stored.exclude(status__in=[InboundEvent.Status.APPLIED, InboundEvent.Status.IGNORED]).count()
    lost = len(ids) - distinct
    doubled = stored_count - distinct
    rows.append(
        Row(
            "7 events",
            f"burst of {burst} events, {BURST_SENDERS} at once, gunicorn 2 processes",
            f"{distinct} stored once, {lost} lost, {doubled} doubled",
            f"{_rate(burst, seconds):.0f} events/s, {len(retries)} retried, {unapplied} not applied",
            None,
            "no loss",
            lost == 0 and doubled == 0 and not failures and unapplied == 0,
        )
    )
    for event_id, status, detail in stored.exclude(
        status__in=[InboundEvent.Status.APPLIED, InboundEvent.Status.IGNORED]
    ).values_list("event_id", "status", "status_detail")[:5]:
        sys.stderr.write(f"figure 7: event {event_id} {status}: {detail}\n")
    if lost or doubled or failures:
        raise RuntimeError(f"burst: {lost} lost, {doubled} doubled, {len(failures)} never accepted")
    BareEvent.objects.all().delete()
    return rows
