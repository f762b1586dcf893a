"""`make run` (manage.py run_demo) as a real process tree on a demo database of its own:
custom ports reach every child, a taken port stops it before anything is sent, and
SIGTERM / SIGHUP / a dead child leave no process behind."""

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BANNER_END = "Demo logins:"

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_env(directory):
    """The environment `make run` would have, on a SQLite database in `directory`:
    nothing says where Align or the app are (run_demo decides)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "REDIS_URL",
            "ALIGN_SERVICE_URL",
            "APP_BASE_URL",
            "CELERY_BROKER_URL",
            "ALIGN_EXECUTION",
            "PYTEST_CURRENT_TEST",
        )
    }
    env.update(
        DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}", MEDIA_ROOT=str(directory / "media"), PYTHONUNBUFFERED="1"
    )
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One migrated and seeded demo database; each test gets a copy."""
    directory = tmp_path_factory.mktemp("demo-template")
    env = demo_env(directory)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")
    return directory


@pytest.fixture
def demo_dir(seeded, tmp_path):
    shutil.copytree(seeded, tmp_path, dirs_exist_ok=True)
    return tmp_path


class RunDemo:
    """`manage.py run_demo` in a session of its own; its output is collected as it comes."""

    def __init__(self, directory, port, simulator_port):
        self.port, self.simulator_port = port, simulator_port
        self.lines = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "run_demo",
                "--port",
                str(port),
                "--simulator-port",
                str(simulator_port),
            ],
            cwd=ROOT,
            env=demo_env(directory),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stderr = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def output(self):
        return "\n".join(self.lines + self.stderr)

    def wait_until_running(self, timeout=60):
        deadline = time.monotonic() + timeout
        while BANNER_END not in self.lines:
            assert self.proc.poll() is None, f"run_demo stopped ({self.proc.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"run_demo did not start:\n{self.output}"
            time.sleep(0.1)
        return self

    def wait(self, timeout):
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def children(self):
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def group(self):
        """Live processes of run_demo's process group (its children stay in it)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, _ppid, pgid = stat.rsplit(")", 1)[1].split()[:3]
            if int(pgid) == self.proc.pid and state != "Z":
                found.append(int(entry.name))
        return found

    def kill_all(self):
        if self.group():
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def run_demo(demo_dir):
    started = []

    def start(port=None, simulator_port=None):
        demo = RunDemo(demo_dir, port or free_port(), simulator_port or free_port())
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.kill_all()


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class DummyListener:
    """Something else listening on a port; it records every connection and byte it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    self.received.append(conn.recv(65536))

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("taken", ["web", "simulator"])
def test_a_taken_port_stops_run_demo_before_anything_is_sent(run_demo, taken):
    listener = DummyListener()
    try:
        demo = run_demo(port=listener.port) if taken == "web" else run_demo(simulator_port=listener.port)
        code = demo.wait(timeout=60)
    finally:
        listener.close()
    assert code != 0
    assert demo.stderr == [
        f"CommandError: Port {listener.port} "
        f"({'the web server' if taken == 'web' else 'the Align simulator'}'s) is already in use "
        f"on 127.0.0.1: stop what listens there or choose another port "
        f"({'--port; make run PORT' if taken == 'web' else '--simulator-port; make run SIM_PORT'}"
        f"=...). Nothing was started."
    ], demo.output
    assert (listener.connections, listener.received) == (0, [])
    assert "adopted" not in demo.output and "listening on" not in demo.output
    assert demo.group() == []


def test_on_custom_ports_send_to_align_goes_through_the_simulator_on_its_port(run_demo, demo_dir):
    demo = run_demo().wait_until_running()
    app = f"http://127.0.0.1:{demo.port}"
    sim = f"http://127.0.0.1:{demo.simulator_port}"
    banner = [line.strip() for line in demo.lines]
    assert f"Staff portal      {app}/staff/" in banner
    assert f"Align simulator   {sim}/_sim/state" in banner
    assert not any("Calls to Align" in line for line in banner)  # they go to the simulator
    assert any(line.startswith("Align simulator: 10 case(s) past eligible adopted") for line in demo.lines)

    http = requests.Session()
    http.get(f"{app}/accounts/login/", timeout=10)
    signed_in = http.post(
        f"{app}/accounts/login/",
        timeout=10,
        data={"username": "staff", "password": "demo-staff-pass", "csrfmiddlewaretoken": http.cookies["csrftoken"]},
    )
    assert signed_in.url == f"{app}/staff/", signed_in.url
    for page in ("/", "/staff/", "/support/workflow/", "/admin/"):
        assert http.get(app + page, timeout=10).status_code == 200, page
    # The search is POSTed and answered with a redirect to an opaque search id.
    listing = http.post(
        f"{app}/staff/", timeout=10, data={"q": "DEMO-1001", "csrfmiddlewaretoken": http.cookies["csrftoken"]}
    ).text
    pk = int(re.search(r"/staff/cases/(\d+)/", listing).group(1))
    assert http.get(f"{app}/staff/cases/{pk}/", timeout=10).status_code == 200

    sent = http.post(
        f"{app}/staff/cases/{pk}/send/", timeout=30, data={"csrfmiddlewaretoken": http.cookies["csrftoken"]}
    )
    assert sent.status_code == 200
    assert "The case is now assets uploaded." in sent.text, sent.text[:3000]

    state = requests.get(f"{sim}/_sim/state", timeout=10).json()
    assert state["effects"]["patients"] == 1 and state["effects"]["uploads"] == 1
    called = {(r["method"], r["path"]) for r in requests.get(f"{sim}/_sim/requests", timeout=10).json()}
    assert {("POST", "/patients"), ("POST", "/orders"), ("POST", "/assets/upload")} <= called
    with sqlite3.connect(demo_dir / "db.sqlite3") as db:
        reached = {row[0] for row in db.execute("SELECT state FROM django_fsm_log_statelog WHERE object_id = ?", (pk,))}
    assert "assets_uploaded" in reached


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_every_child(run_demo, sig):
    demo = run_demo().wait_until_running()
    children = demo.children()
    assert len(children) == 4, demo.output  # simulator, retry loop, notifications loop, web server
    started = time.monotonic()
    demo.proc.send_signal(sig)
    code = demo.wait(timeout=15)
    assert time.monotonic() - started < 8
    assert code == 0, demo.output
    assert [pid for pid in children if alive(pid)] == []
    assert demo.group() == []
    for port in (demo.port, demo.simulator_port):  # the ports are free again
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


def test_a_child_that_dies_stops_the_rest_and_run_demo_fails(run_demo):
    demo = run_demo().wait_until_running()
    children = demo.children()
    web = next(pid for pid in children if "runserver" in Path(f"/proc/{pid}/cmdline").read_text())
    os.kill(web, signal.SIGKILL)
    code = demo.wait(timeout=15)
    assert code == 1
    assert f"web stopped with exit code -{int(signal.SIGKILL)}; the others were stopped." in demo.stderr
    assert [pid for pid in children if alive(pid)] == []
    assert demo.group() == []


def test_align_service_url_follows_the_simulator_unless_set_explicitly():
    from align_workflow.demo.management.commands.run_demo import child_environment

    env = child_environment({"PATH": "/bin"}, "http://127.0.0.1:28000", "http://127.0.0.1:28765")
    assert (env["ALIGN_SERVICE_URL"], env["APP_BASE_URL"]) == ("http://127.0.0.1:28765", "http://127.0.0.1:28000")
    explicit = {"ALIGN_SERVICE_URL": "https://align.example/", "APP_BASE_URL": "https://clinic.example"}
    env = child_environment(explicit, "http://127.0.0.1:28000", "http://127.0.0.1:28765")
    assert (env["ALIGN_SERVICE_URL"], env["APP_BASE_URL"]) == ("https://align.example/", "https://clinic.example")
    assert "ALIGN_SERVICE_URL" not in child_environment({}, "http://127.0.0.1:28000", None)


def test_a_simulator_that_cannot_bind_its_port_is_not_mistaken_for_the_one_answering_there(tmp_path):
    """The port was free when checked, then taken before the simulator bound it: run_demo
    waits for its own simulator to say it listens, so the other process gets nothing."""
    from django.core.management import CommandError

    from align_workflow.demo.management.commands.run_demo import Command

    listener = DummyListener()
    procs = []
    try:
        argv = [sys.executable, str(ROOT / "manage.py"), "run_align_simulator", "--port", str(listener.port)]
        with pytest.raises(CommandError, match="did not start"):
            Command()._start_simulator(argv, demo_env(tmp_path), procs)
        procs[0][1].wait(10)
    finally:
        listener.close()
    assert (listener.connections, listener.received) == (0, [])
