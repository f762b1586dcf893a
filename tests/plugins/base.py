"""Pytest plugin: the fixtures every test folder uses (registered in tests/conftest.py).

`require_postgres` and `require_redis` skip with a reason when the server is not
configured (CI sets DATABASE_URL and REDIS_URL, so there they always run, and fail if
missing); `flags_on`, `staff`, `provider`, `other_provider`, `local_effects_only`, and a
cache cleared around every test."""

import os

import pytest
from django.conf import settings
from waffle import get_waffle_flag_model

from states import align_case as wf
from tests.support.factories import ProviderFactory, StaffFactory

IN_CI = os.environ.get("CI") == "true"


def pytest_configure():
    # Hashing demo passwords properly costs a tenth of a second each; tests need none of that.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _require(condition, reason):
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@pytest.fixture
def require_postgres(settings):
    _require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "needs PostgreSQL: set DATABASE_URL=postgres://...",
    )


@pytest.fixture
def require_redis():
    _require(bool(settings.REDIS_URL), "needs Redis: set REDIS_URL=redis://...")


@pytest.fixture
def flags_on(db):
    Flag = get_waffle_flag_model()
    for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def provider(db):
    return ProviderFactory()


@pytest.fixture
def other_provider(db):
    return ProviderFactory()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache outlives a test's database rollback (waffle caches flags there, and the
    engine keeps the flags it read in the process: workflow/flags.py)."""
    from django.core.cache import cache

    from align_workflow.workflow import flags

    cache.clear()
    flags.forget()
    yield
    cache.clear()
    flags.forget()


@pytest.fixture
def local_effects_only(monkeypatch):
    """Only the effects that touch our own database: no call leaves the process (the
    effects that call Align or the vault are replaced by effects that do nothing)."""
    from align_workflow.workflow import effects

    monkeypatch.setattr(
        effects, "EFFECTS", {t: (e if e.call is None else effects.Effect()) for t, e in effects.EFFECTS.items()}
    )
    return effects
