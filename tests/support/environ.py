"""Settings read afresh from a given environment, for the tests of the typed readers."""

import runpy

from django.conf import settings


def load_settings(monkeypatch, **environ):
    """Run the settings module afresh with these variables (None: unset); return its names."""
    for name, value in environ.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return runpy.run_path(str(settings.BASE_DIR / "align_workflow" / "settings.py"))
