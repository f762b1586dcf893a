import pytest

from .fakes import FakeAlign


@pytest.fixture
def fake_align(monkeypatch):
    """Every effect talks to one in-memory FakeAlign instead of the service."""
    from align_workflow.workflow import align_effects

    fake = FakeAlign()
    monkeypatch.setattr(align_effects, "align_client", lambda: fake)
    return fake


@pytest.fixture
def local_vault(settings, tmp_path):
    """The embedded vault, in a temporary MEDIA_ROOT."""
    settings.ALIGN_VAULT_URL = "local"
    settings.MEDIA_ROOT = tmp_path / "media"
    from align_workflow.integration.vault import get_vault

    return get_vault()


from tests.plugins import simulator as _simulator_plugin  # noqa: E402

if not hasattr(_simulator_plugin, "simulator"):
    # Until the simulator plugin is in this checkout: the tests that need it say so.
    @pytest.fixture
    def simulator():
        pytest.skip("the Align simulator plugin (tests/plugins/simulator.py) is not in this checkout yet")
