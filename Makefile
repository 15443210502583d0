# The two commands of the README: `make run` and `make test`.
# Both install what they need first (a virtualenv, the Python and npm packages,
# and for the browser tests Debian's chromium), so they work on a fresh machine;
# stamp files make each install step rerun only when the files it installs from change.
#   make run PORT=8080 HOST=0.0.0.0      serve somewhere else than 127.0.0.1:5000

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test test-fast lint install install-test browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e .
	touch $@

# The test extras include everything `install` does.
$(VENV)/.installed-test: $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

install-test: $(VENV)/.installed-test node_modules/.installed browser

browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/jobwarden db upgrade
	$(BIN)/jobwarden dev --host $(HOST) --port $(PORT)

# Lint and types first, then everything, browser tests included; the 20 slowest
# tests are listed at the end. Four test processes on two cores: most tests wait on
# real servers, workers and timers (one process keeps 0.4 of a core busy), and each
# process has its own PostgreSQL database, SQLite files and ports.
test: lint
	$(BIN)/pytest -n 4 --durations=20

# The inner loop: unit and integration tests, without the browser (e2e/) and the
# tests marked slow (real process kills, chaos, long property searches).
test-fast: install-test
	$(BIN)/pytest tests -m "not slow" --durations=10

# Lint, types and layers (ruff's, mypy's and import-linter's settings are in pyproject.toml).
LINTED := webapp tests e2e benchmarks setup.py
lint: install-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy webapp
	$(BIN)/lint-imports
