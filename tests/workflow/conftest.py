import pytest

from tests.support.fakes import FakeAlign


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
    from align_workflow.align.vault import get_vault

    return get_vault()


@pytest.fixture
def app_for_align(live_server):
    """This app as the service sees it: the live server it reads each case's STL list from."""
    return live_server
