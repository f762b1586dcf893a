# make run   - install, migrate, load demo data, start the simulator and the server
# make test  - install what the tests need, lint (make lint), run the whole suite
# make lint  - ruff check, ruff format --check and the import rules (configured in pyproject.toml)
# make run PORT=28000 SIM_PORT=28765  - the web server and the Align simulator elsewhere
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
SIM_PORT ?= 8765

# The development paths run with DEBUG on (demo secrets allowed); production leaves it off.
run diagrams: export DJANGO_DEBUG ?= 1

.PHONY: run test lint install install-dev migrate seed diagrams bench clean static-deps system-deps

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Front-end packages (html2canvas for the provider portal) from package.json, served
# as static files from node_modules/; reinstalled only when the lock file changes.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent
	touch $@

# Debian packages pip and npm cannot install: graphviz (dot), chromium (browser tests),
# fonts-dejavu-core. Installs what is missing (root or passwordless sudo), else says how.
system-deps:
	@bash scripts/system-deps

static-deps:
	@if [ -f package.json ]; then $(MAKE) --no-print-directory node_modules/.installed; fi

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: system-deps seed static-deps
	$(PY) manage.py run_demo --host $(HOST) --port $(PORT) --simulator-port $(SIM_PORT)

# Lint (ruff) and the import rules (pyproject.toml's [tool.importlinter] contracts); one line per tool.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

test: lint system-deps install-dev static-deps
	$(PY) -m pytest $(PYTEST_ARGS)

diagrams: install
	$(PY) manage.py render_diagrams

bench: install-dev
	$(PY) -m bench --svg bench/figures.svg

clean:
	rm -rf $(VENV) db.sqlite3 var node_modules
