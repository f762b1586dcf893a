"""The suite's shared fixtures are pytest plugins in tests/plugins/; the helpers the tests
import (factories, fakes, images, deliveries, the browser, ...) are in tests/support/."""

# tests.support.browser: the headless Chromium fixtures (`browser`, one per test run; `portal`). Test
# modules take them as parameters and never import them (a second import would start a second browser).
pytest_plugins = ["tests.plugins.base", "tests.plugins.simulator", "tests.plugins.celery", "tests.support.browser"]
