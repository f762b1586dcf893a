"""Starting and stopping the simulator: the management command, `python -m`, the loopback rule."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from align_simulator import AlignSimulator
from align_simulator.controls import require_loopback
from align_simulator.wire import ApiError, Request

ROOT = Path(__file__).resolve().parents[2]


def start(argv, env=None):
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    line = process.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, line + process.stdout.read()
    return process, line.split("listening on ")[1].split()[0]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_command_serves_and_stops_cleanly(stop_signal):
    process, url = start(
        [sys.executable, "manage.py", "run_align_simulator", "--port", "0", "--app-url", "http://127.0.0.1:9"]
    )
    try:
        config = requests.get(f"{url}/_sim/config", timeout=5).json()
        assert config["callback_base_url"] == "http://127.0.0.1:9" and config["client_id"] == "demo"
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_python_dash_m_runs_without_django():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONUNBUFFERED"] = "1"
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, align_simulator; print('django' in sys.modules)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "False", probe.stderr
    process, url = start([sys.executable, "-m", "align_simulator", "--port", "0"], env)
    try:
        token = requests.post(
            f"{url}/auth/token",
            json={"grant_type": "client_credentials", "client_id": "demo", "client_secret": "demo-secret"},
            timeout=5,
        )
        assert token.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_the_controls_answer_loopback_clients_only():
    def request_from(ip):
        return Request("GET", "/_sim/state", {}, {}, b"", ip)

    for ip in ("127.0.0.1", "127.0.0.9", "::1", "::ffff:127.0.0.1"):
        require_loopback(request_from(ip))
    for ip in ("10.0.0.5", "192.168.1.20", "::ffff:10.0.0.5"):
        with pytest.raises(ApiError) as refused:
            require_loopback(request_from(ip))
        assert refused.value.status == 403


def test_embedded_simulator_starts_and_stops_in_process():
    simulator = AlignSimulator(port=0, callback_base_url="").start()
    try:
        assert requests.get(f"{simulator.url}/_sim/state", timeout=5).json()["effects"]["patients"] == 0
    finally:
        started = time.monotonic()
        simulator.stop()
        assert time.monotonic() - started < 5


def test_the_delivery_concurrency_option_sets_the_config_and_refuses_a_bad_value():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONUNBUFFERED"] = "1"
    refused = subprocess.run(
        [sys.executable, "-m", "align_simulator", "--port", "0", "--delivery-concurrency", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "--delivery-concurrency: must be a whole number from 1 to 64, not '0'" in refused.stderr
    process, url = start([sys.executable, "-m", "align_simulator", "--port", "0", "--delivery-concurrency", "9"], env)
    try:
        assert requests.get(f"{url}/_sim/config", timeout=5).json()["delivery_concurrency"] == 9
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
