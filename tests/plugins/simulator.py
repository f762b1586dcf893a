"""Pytest plugin: the Align simulator as a real process, one per test session.

    def test_something(simulator):          # SimulatorHandle; settings.ALIGN_SERVICE_URL = simulator.url
        simulator.config(auto_advance=True, callback_base_url=live_server.url)
        simulator.fault(route="POST /orders", status=503, count=2)
        ...
        assert simulator.state()["effects"]["orders"] == 1

The process (`manage.py run_align_simulator --port 0`, started by
align_simulator.launch) starts the first time a test asks
for it, on a free port, and stops when the session ends (it also stops by itself if the
session dies). Before each test it is reset to TEST_CONFIG: no automatic progress, no
event receiver, no app to read assets from, fast retries, seed 0.
"""

import pytest

from align_simulator.launch import (  # noqa: F401 - re-exported for tests
    SimulatorError,
    SimulatorHandle,
    start_simulator,
)

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


@pytest.fixture(scope="session")
def simulator_process():
    handle = start_simulator()
    yield handle
    handle.stop()


@pytest.fixture
def simulator(simulator_process, settings):
    """The session's simulator, reset to TEST_CONFIG; the app's ALIGN_SERVICE_URL points at it."""
    simulator_process.reset(**TEST_CONFIG)
    settings.ALIGN_SERVICE_URL = simulator_process.url
    yield simulator_process
    simulator_process.reset(**TEST_CONFIG)
