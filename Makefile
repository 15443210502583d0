# The two commands of the README: `make run` and `make test`.
# Both install what they need first (a virtualenv, the Python and npm packages,
# and for the browser tests Debian's chromium), so they work on a fresh machine.

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: run test test-fast lint install install-test browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	npm ci --no-audit --no-fund --loglevel=error

install-test: $(BIN)/python browser
	$(BIN)/pip install --quiet -e '.[test]'
	npm ci --no-audit --no-fund --loglevel=error

browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/jobwarden db upgrade
	$(BIN)/jobwarden dev

# Everything, browser tests included; the 20 slowest tests are listed at the end.
test: install-test
	$(BIN)/pytest --durations=20

# The inner loop: unit and integration tests, without the browser (e2e/) and the
# tests marked slow (real process kills, chaos, long property searches).
test-fast: install-test
	$(BIN)/pytest tests -m "not slow" --durations=10

# Lint and type checks (ruff's settings and mypy's are in pyproject.toml).
lint: install-test
	$(BIN)/ruff check webapp
	$(BIN)/mypy webapp
