"""The suite's shared fixtures are pytest plugins in tests/plugins/; the helpers the tests
import (factories, fakes, images, deliveries, the browser, ...) are in tests/support/."""

pytest_plugins = ["tests.plugins.base", "tests.plugins.simulator"]
