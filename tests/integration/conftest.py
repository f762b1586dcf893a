"""`api`: raw contract calls to the simulator; `fake_app`: a stand-in app for its asset
lists and events (both from tests/support/simulator_api.py)."""

import pytest

from tests.support.simulator_api import Api, FakeApp


@pytest.fixture
def api(simulator):
    return Api(simulator.url)


@pytest.fixture
def fake_app(simulator):
    app = FakeApp()
    simulator.connect_app(app.url)
    yield app
    simulator.reset()
    app.stop()
