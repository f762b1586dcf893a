"""What figures 2, 3 and 4 share: the simulator process, the app served over HTTP in this
process, cases that pass every check, a case's whole flow through the public API, and
the same flow's contract calls issued bare with `requests` against a bare stand-in app.

The flow runs in phases over a list of cases, the way a clinic's day looks from Align:

1. staff send every case (`send_to_align`: patient, order, asset upload);
2. Align submits each case's plan (events), until every case is `plan_received`;
3. each provider approves (`approve_plan` with a screenshot, stored in the vault) and the
   aligners are bought (`accept_clincheck`);
4. Align manufactures and ships (events), until every case is `shipping`.

The bare variant sends the same contract calls in the same phases: one token, then per
case POST /patients, POST /orders, POST /assets/upload, the screenshot to the vault,
PUT /orders/{caseId}/accept; its stand-in app answers the asset lists and acknowledges
the events with no checks and no database.
"""

import base64
import contextlib
import io
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from PIL import Image
from waffle import get_waffle_flag_model

from align_simulator.launch import start_simulator
from align_workflow.cases.models import Case, CaseAsset, Patient, PhotoAssessment, Prescription, Provider
from align_workflow.workflow import send_to_align
from align_workflow.workflow.outbound import fire_step
from states import align_case as wf

from .report import Row

# The simulator as the flow needs it: Align moves each case on by itself, at once.
FLOW_CONFIG = {
    "auto_advance": True,
    "delay_ms": 0,
    "latency_ms": 0,
    "retry_base_ms": 50,
    "retry_max_ms": 1000,
    "seed": 0,
}
POLL_S = 0.02
PERSISTENT_CONNECTIONS_S = 60
EFFECTS = ("tokens", "patients", "orders", "uploads", "accepts", "blobs")


# --- The simulator and the app ---------------------------------------------------------


class Simulator:
    """`manage.py run_align_simulator --port 0`, a child of this process."""

    def __enter__(self):
        self.handle = start_simulator()
        return self.handle

    def __exit__(self, *exc):
        self.handle.stop()


def _app_server_thread():
    from django.test.testcases import LiveServerThread, QuietWSGIRequestHandler

    class Handler(QuietWSGIRequestHandler):
        # Headers and body leave in separate writes; without TCP_NODELAY each answer on a
        # kept-alive connection waits for the client's delayed ACK (40 ms), as a
        # production server (gunicorn) does not.
        disable_nagle_algorithm = True

    class Thread(LiveServerThread):
        def _create_server(self, connections_override=None):
            return self.server_class(
                (self.host, self.port), Handler, allow_reuse_address=False, connections_override=connections_override
            )

    return Thread("127.0.0.1", lambda handler: handler)


class AppServer:
    """This app over HTTP (Django's live server thread, a threaded WSGI server) against the
    bench database: the simulator reads asset lists from it and sends it events."""

    def __enter__(self):
        # Persistent database connections while it serves, as a production deployment has
        # them: it answers thousands of event deliveries. (Every connection shares this dict.)
        self.saved_max_age = connection.settings_dict.get("CONN_MAX_AGE", 0)
        connection.settings_dict["CONN_MAX_AGE"] = PERSISTENT_CONNECTIONS_S
        self.thread = _app_server_thread()
        self.thread.daemon = True
        self.thread.start()
        self.thread.is_ready.wait()
        if self.thread.error:
            raise self.thread.error
        self.url = f"http://127.0.0.1:{self.thread.port}"
        return self

    def __exit__(self, *exc):
        self.thread.terminate()
        connection.settings_dict["CONN_MAX_AGE"] = self.saved_max_age


class BareApp:
    """The app's two endpoints with nothing behind them: two STL ids for any case, and
    events acknowledged with 200 after noting which cases got a plan or shipped."""

    ASSETS = json.dumps(
        [
            {
                "kind": "STL_UPPER",
                "vault_id": "v-1",
                "external_key": "k-upper",
                "filename": "u.stl",
                "sha256": "a" * 64,
            },
            {
                "kind": "STL_LOWER",
                "vault_id": "v-1",
                "external_key": "k-lower",
                "filename": "l.stl",
                "sha256": "b" * 64,
            },
        ]
    ).encode()

    def __init__(self):
        self.planned, self.shipped = set(), set()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self):
                self._answer(app.ASSETS)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                data = body.get("data") or {}
                if body.get("type") == "treatment_plan.submitted":
                    app.planned.add(data.get("caseId"))
                elif data.get("status") == "SHIPPED":
                    app.shipped.add(data.get("caseId"))
                self._answer(b"{}")

            def _answer(self, payload):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def point_simulator_at(sim, app_url, **config):
    """Asset lists from, and events to, `app_url`, signed and authorised as the app expects."""
    sim.config(
        **{
            "app_url": app_url,
            "callback_base_url": app_url,
            "callback_secret": settings.ALIGN_EVENTS_SECRET,
            "inbound_token": settings.ALIGN_INBOUND_TOKEN,
            **FLOW_CONFIG,
            **config,
        }
    )


def use_simulator(sim):
    """The app's calls (and its vault) go to the simulator; a token cached for another
    simulator is forgotten."""
    from django.core.cache import cache

    settings.ALIGN_SERVICE_URL = sim.url
    settings.ALIGN_VAULT_URL = sim.url
    cache.clear()


def effects(sim):
    counted = sim.state()["effects"]
    return {name: counted.get(name, 0) for name in EFFECTS}


def difference(after, before):
    return {name: after[name] - before[name] for name in EFFECTS}


def needs_postgres(benchmark):
    """A row saying why the figure was not measured, or None when it can be."""
    if connection.vendor == "postgresql":
        return None
    sharing = "the app's server threads and workers" if "3" in benchmark else "the app's server threads"
    return Row(
        benchmark, f"not measured: needs PostgreSQL ({sharing} share one database), not {connection.vendor}", "-"
    )


def database_url():
    """The bench database (its real, throwaway name) as a URL, for another process."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# --- Cases ---------------------------------------------------------------------------------


def flags_on():
    Flag = get_waffle_flag_model()
    for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})


def people(prefix):
    """A staff user and a provider user."""
    User = get_user_model()
    staff, _ = User.objects.get_or_create(username=f"{prefix}-staff", defaults={"is_staff": True})
    user, _ = User.objects.get_or_create(username=f"{prefix}-provider")
    Provider.objects.get_or_create(user=user, defaults={"account_name": f"{prefix} practice"})
    return staff, user


def make_cases(n, prefix, provider_user):
    """`n` eligible cases that pass `can_send_to_align`: lab Align, photos approved, two STL files."""
    provider = provider_user.provider
    patients = Patient.objects.bulk_create(
        [
            Patient(
                mrn=f"{prefix}-{i}",
                first_name="Bench",
                last_name=f"Patient{i}",
                date_of_birth="1990-01-01",
                gender="F",
                email=f"{prefix.lower()}{i}@example.org",
                phone="555-0100",
                address_line1="1 Main St",
                city="Springfield",
                state="IL",
                zip_code="62701",
            )
            for i in range(n)
        ]
    )
    cases = Case.objects.bulk_create([Case(case_number=f"{prefix}-{i}", patient=p) for i, p in enumerate(patients)])
    Prescription.objects.bulk_create(
        [Prescription(case=c, provider=provider, lab=Prescription.Lab.ALIGN) for c in cases]
    )
    PhotoAssessment.objects.bulk_create(
        [PhotoAssessment(case=c, status=PhotoAssessment.Status.APPROVED) for c in cases]
    )
    CaseAsset.objects.bulk_create(
        [
            CaseAsset(
                case=c,
                kind=kind,
                filename=f"{c.case_number}-{kind.lower()}.stl",
                sha256=f"{i:064d}",
                vault_id=f"vault-{c.case_number}",
                external_key=f"key-{c.case_number}-{kind.lower()}",
            )
            for i, c in enumerate(cases)
            for kind in (CaseAsset.Kind.STL_UPPER, CaseAsset.Kind.STL_LOWER)
        ]
    )
    return list(Case.objects.filter(case_number__startswith=f"{prefix}-").select_related("patient").order_by("pk"))


def screenshot_data_url():
    """What html2canvas sends: a PNG of the plan block, as a data URL (a plain 480x320 image)."""
    buffer = io.BytesIO()
    Image.new("RGB", (480, 320), (236, 240, 244)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wait_for_states(ids, state, timeout):
    """Bounded poll: every case in `ids` reaches `state` (RuntimeError after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        with StatementCounter.not_counted():  # the benchmark's own poll, not the app's work
            done = Case.objects.filter(pk__in=ids, state=state).count()
        if done == len(ids):
            return
        if time.monotonic() > deadline:
            stuck = dict(Case.objects.filter(pk__in=ids).exclude(state=state).values_list("pk", "state")[:5])
            raise RuntimeError(f"{len(ids) - done} of {len(ids)} cases never reached {state} (e.g. {stuck})")
        time.sleep(POLL_S)


def wait_until(condition, what, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


# --- The flow through the public API ------------------------------------------------------


def send_all(cases, staff):
    for case in cases:
        result = send_to_align(case, by=staff)
        if not result.ok:
            raise RuntimeError(f"case {case.pk}: {result.message}")


def approve_and_accept(cases, staff, provider_user, screenshot, timeout=120):
    """The people: every plan approved, then each approved case accepted. In Celery mode
    both are queued, as the provider's and the staff's buttons do; an acceptance is
    sent once its approval is done (a worker stores the screenshot in the vault)."""
    for case in cases:
        fire_step(case, "approve_plan", by=provider_user, acceptance_screenshot=screenshot)
    for case in cases:
        if case.state != wf.PROVIDER_APPROVED:
            wait_for_states([case.pk], wf.PROVIDER_APPROVED, timeout)
            case.refresh_from_db()
        fire_step(case, "accept_clincheck", by=staff)


def run_flow(cases, staff, provider_user, screenshot, timeout):
    """Phases 1-4 for `cases` (eligible) until every one is `shipping`."""
    ids = [c.pk for c in cases]
    send_all(cases, staff)
    wait_for_states(ids, wf.PLAN_RECEIVED, timeout)
    approve_and_accept(cases, staff, provider_user, screenshot, timeout)
    wait_for_states(ids, wf.SHIPPING, timeout)


# --- The same contract calls, bare ---------------------------------------------------------


class BareClient:
    """The contract's calls with `requests` and nothing else (a session, a timeout)."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()
        self.token = None

    def _check(self, response):
        if response.status_code != 200:
            raise RuntimeError(
                f"{response.request.method} {response.request.path_url}: {response.status_code} {response.text[:300]}"
            )
        return response.json()

    def get_token(self):
        body = self._check(
            self.http.post(
                f"{self.url}/auth/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": settings.ALIGN_CLIENT_ID,
                    "client_secret": settings.ALIGN_CLIENT_SECRET,
                },
                timeout=10,
            )
        )
        self.token = body["access_token"]

    def call(self, method, path, body):
        return self._check(
            self.http.request(
                method, f"{self.url}{path}", json=body, timeout=10, headers={"Authorization": f"Bearer {self.token}"}
            )
        )

    def send(self, case_id, mrn):
        patient = self.call(
            "POST",
            "/patients",
            {
                "caseId": case_id,
                "mrn": mrn,
                "firstName": "Bench",
                "lastName": "Patient",
                "dateOfBirth": "1990-01-01",
                "gender": "F",
                "email": "bench@example.org",
                "phone": "555-0100",
                "address": {
                    "line1": "1 Main St",
                    "line2": "",
                    "city": "Springfield",
                    "state": "IL",
                    "zip": "62701",
                    "country": "US",
                },
            },
        )
        self.call(
            "POST",
            "/orders",
            {
                "caseId": case_id,
                "pId": patient["pId"],
                "mrn": mrn,
                "orderType": "IAS",
                "treatmentOption": "BOTH_ARCHES",
                "chiefConcern": settings.ALIGN_CHIEF_CONCERN,
            },
        )
        self.call("POST", "/assets/upload", {"caseId": case_id, "pId": patient["pId"], "mrn": mrn})

    def store_screenshot(self, jpeg):
        response = self.http.post(
            f"{self.url}/v1/vaults/{settings.ALIGN_VAULT_ID}/blobs",
            files={"file": ("accept.jpg", jpeg, "image/jpeg")},
            auth=(settings.ALIGN_VAULT_API_KEY, ""),
            timeout=10,
        )
        return self._check(response)["blob_id"]

    def accept(self, case_id, mrn, blob_id):
        self.call(
            "PUT",
            f"/orders/{case_id}/accept",
            {"caseId": case_id, "mrn": mrn, "vault_id": settings.ALIGN_VAULT_ID, "external_key": blob_id},
        )


def screenshot_jpeg(data_url):
    """The JPEG the app would store for `data_url` (the bare variant sends the same bytes)."""
    from align_workflow.workflow.screenshots import decode_screenshot

    return decode_screenshot(data_url).jpeg


def run_bare_flow(sim_url, bare_app, first_id, n, jpeg, timeout):
    """The same calls for `n` cases (ids first_id...), in the same phases."""
    client = BareClient(sim_url)
    client.get_token()
    cases = [(first_id + i, f"BARE-{first_id + i}") for i in range(n)]
    for case_id, mrn in cases:
        client.send(case_id, mrn)
    wanted = {case_id for case_id, _ in cases}
    wait_until(lambda: wanted <= bare_app.planned, "the bare app's plans", timeout)
    for case_id, mrn in cases:
        client.accept(case_id, mrn, client.store_screenshot(jpeg))
    wait_until(lambda: wanted <= bare_app.shipped, "the bare app's shipments", timeout)


# --- Where the time goes: CPU ----------------------------------------------------------------


def _stat(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_now(pid=None):
    """CPU seconds used so far by this process (all its threads), or by process `pid` and
    its living child processes (a prefork worker's pool)."""
    if pid is None:
        return time.process_time()
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat(entry)
            if int(entry) == pid or int(fields[1]) == pid:
                total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def machine_ticks():
    """(busy, total) CPU ticks of the whole machine, every core and every process."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return sum(fields) - fields[3] - fields[4], sum(fields)


class CpuMeter:
    """CPU used between start() and stop(): by this process, and the machine's busy share."""

    def start(self):
        self._cpu, self._ticks = cpu_now(), machine_ticks()
        return self

    def stop(self):
        busy, total = machine_ticks()
        self.cpu = cpu_now() - self._cpu
        spent = total - self._ticks[1]
        self.busy = (busy - self._ticks[0]) / spent if spent > 0 else None
        return self


def percent(share):
    return "-" if share is None else f"{share * 100:.0f} %"


def env_for_subprocess(**values):
    return dict(os.environ, PYTHONUNBUFFERED="1", **values)


class StatementCounter:
    """SQL statements and committed transactions of every thread of this process (the
    app's server threads and the thread playing the people) between start() and stop(),
    not the benchmark's own polls. A statement outside a transaction (autocommit) counts
    as one committed transaction; BEGIN and COMMIT are not statements here."""

    _local = threading.local()

    @classmethod
    @contextlib.contextmanager
    def not_counted(cls):
        cls._local.off = True
        try:
            yield
        finally:
            cls._local.off = False

    def start(self):
        self.statements = self.commits = 0
        lock, local = threading.Lock(), self._local
        execute, commit = CursorWrapper._execute_with_wrappers, BaseDatabaseWrapper.commit
        self._saved = execute, commit

        def counted_execute(cursor, sql, params, many, executor):
            if not getattr(local, "off", False):
                with lock:
                    self.statements += 1
                    self.commits += cursor.db.get_autocommit()
            return execute(cursor, sql, params, many, executor)

        def counted_commit(db):
            if not getattr(local, "off", False):
                with lock:
                    self.commits += 1
            return commit(db)

        CursorWrapper._execute_with_wrappers = counted_execute
        BaseDatabaseWrapper.commit = counted_commit
        return self

    def stop(self):
        CursorWrapper._execute_with_wrappers, BaseDatabaseWrapper.commit = self._saved
        return self
