"""Pytest plugin: the Align simulator as a real process, one per test session.

    def test_something(simulator):          # SimulatorHandle; settings.ALIGN_SERVICE_URL = simulator.url
        simulator.config(auto_advance=True, callback_base_url=live_server.url)
        simulator.fault(route="POST /orders", status=503, count=2)
        ...
        assert simulator.state()["effects"]["orders"] == 1

The process (`manage.py run_align_simulator --port 0`) starts the first time a test asks
for it, on a free port, and stops when the session ends (it also stops by itself if the
session dies). Before each test it is reset to TEST_CONFIG: no automatic progress, no
event receiver, no app to read assets from, fast retries, seed 0.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30
LISTENING = re.compile(r"listening on (http://\S+)")

TEST_CONFIG = {
    "auto_advance": False,
    "delay_ms": 0,
    "app_url": "",
    "callback_base_url": "",
    "retry_base_ms": 50,
    "retry_max_ms": 400,
    "retry_max_attempts": 5,
    "delivery_timeout_s": 5.0,
    "seed": 0,
}


class SimulatorError(AssertionError):
    """The simulator refused a control request (a bad fault spec or config key)."""


class SimulatorHandle:
    """Talks to a running simulator's `/_sim/` controls."""

    def __init__(self, url, process=None, log_path=None):
        self.url = url
        self.process = process
        self.log_path = log_path
        self._http = requests.Session()

    def _control(self, method, path, json=None):
        response = self._http.request(method, f"{self.url}/_sim/{path}", json=json, timeout=10)
        if response.status_code != 200:
            raise SimulatorError(f"{method} /_sim/{path} -> {response.status_code} {response.text}")
        return response.json()

    def reset(self, **config):
        """Forget everything, restore the startup config, then apply `config`."""
        return self._control("POST", "reset", {"config": config})

    def state(self):
        return self._control("GET", "state")

    def requests(self):
        return self._control("GET", "requests")

    def fault(self, **spec):
        return self._control("POST", "faults", spec)

    def faults(self):
        return self._control("GET", "faults")

    def clear_faults(self):
        return self._control("DELETE", "faults")

    def config(self, **values):
        return self._control("POST", "config", values)

    def connect_app(self, app_url):
        """Read asset lists from, and send events to, the app at `app_url`."""
        return self.config(app_url=app_url, callback_base_url=app_url)

    def emit(self, case_id, type, **data_overrides):   # noqa: A002 - the event's field name
        return self._control("POST", f"cases/{case_id}/emit", {"type": type, "data": data_overrides})

    def adopt(self, case_id, **description):
        """Place a case the app already has at its stage (see simulator/adopt.py)."""
        return self._control("POST", f"cases/{case_id}/adopt", description)

    def revoke_tokens(self):
        return self._control("POST", "tokens/revoke")

    def expire_tokens(self):
        return self._control("POST", "tokens/expire")

    def events(self):
        return self.state()["events"]

    def wait_for(self, condition, timeout=10, interval=0.02):
        """Poll `condition(state)` until it is truthy; return that value or fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            value = condition(state)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"simulator state never satisfied the condition: {state}")
            time.sleep(interval)


def start_simulator_process():
    log = tempfile.NamedTemporaryFile(prefix="align-sim-", suffix=".log", delete=False)
    argv = [sys.executable, str(ROOT / "manage.py"), "run_align_simulator", "--port", "0",
            "--app-url", "", "--no-auto-advance", "--exit-with-parent"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = LISTENING.search(Path(log.name).read_text())
        if found:
            return SimulatorHandle(found.group(1), process, log.name)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the simulator did not start:\n{Path(log.name).read_text()}")


def stop_simulator_process(handle):
    handle.process.terminate()
    try:
        handle.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        handle.process.kill()
        handle.process.wait()
    Path(handle.log_path).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def simulator_process():
    handle = start_simulator_process()
    yield handle
    stop_simulator_process(handle)


@pytest.fixture
def simulator(simulator_process, settings):
    """The session's simulator, reset to TEST_CONFIG; the app's ALIGN_SERVICE_URL points at it."""
    simulator_process.reset(**TEST_CONFIG)
    settings.ALIGN_SERVICE_URL = simulator_process.url
    yield simulator_process
    simulator_process.reset(**TEST_CONFIG)
