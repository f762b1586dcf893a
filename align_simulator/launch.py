"""Start the simulator as a real process and talk to its `/_sim/` controls.

    handle = start_simulator()          # `manage.py run_align_simulator --port 0`
    handle.url                          # http://127.0.0.1:<free port>
    handle.config(delay_ms=0); handle.fault(route="POST /auth/token", mode="latency", latency_ms=300)
    handle.state()["effects"]["tokens"]; handle.requests()
    handle.reset(); handle.stop()

Used by the test suite's `simulator` fixture and by the benchmarks. The process serves
no app (`--app-url ""`), does not advance cases by itself, and exits with its parent.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30
LISTENING = re.compile(r"listening on (http://\S+)")


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

    def emit(self, case_id, type, **data_overrides):  # noqa: A002 - the event's field name
        return self._control("POST", f"cases/{case_id}/emit", {"type": type, "data": data_overrides})

    def adopt(self, case_id, **description):
        """Place a case the app already has at its stage (see align_simulator/adopt.py)."""
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

    def stop(self):
        """Stop the process (if this handle started one) and remove its log."""
        self._http.close()
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.log_path:
            Path(self.log_path).unlink(missing_ok=True)


def start_simulator():
    """Start `manage.py run_align_simulator` on a free port; return its SimulatorHandle."""
    # Not a `with`: the child process writes to it after this returns; SimulatorHandle removes it.
    log = tempfile.NamedTemporaryFile(prefix="align-sim-", suffix=".log", delete=False)  # noqa: SIM115
    argv = [
        sys.executable,
        str(ROOT / "manage.py"),
        "run_align_simulator",
        "--port",
        "0",
        "--app-url",
        "",
        "--no-auto-advance",
        "--exit-with-parent",
    ]
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
    process.wait()
    raise RuntimeError(f"the simulator did not start:\n{Path(log.name).read_text()}")
