# Two entry points that work on a fresh machine with Python 3.11+ and make:
#   make demo   generate the demo county and run the daemon on it
#   make test   lint, type-check and run the whole test suite (SQLite and PostgreSQL)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test check lint format typecheck pytest bench clean prometheus chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/watchdog demo --config config.toml

test: check pytest

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

# Most tests run on every core (pytest-xdist: each worker has its own PostgreSQL
# database and temporary folders); the timing-sensitive ones (marked serial: daemons
# killed, outages, the soak) then run alone, so a busy core does not decide them.
pytest: $(STAMP) prometheus chromium
	$(BIN)/pytest -n auto -m "not serial"
	$(BIN)/pytest -m serial

# Prometheus and promtool for tests/test_prometheus.py (Debian package `prometheus`),
# installed when missing and apt-get is at hand; without them those tests skip, or fail
# when CI=true.
prometheus:
	@command -v promtool >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; } || \
		echo "could not install the Debian package prometheus (needs root); its tests skip"

# Chromium (and a CJK font for its screenshots) for tests/test_web_browser.py, the same way.
chromium:
	@dpkg -s chromium fonts-wqy-zenhei >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei; } || \
		echo "could not install the Debian package chromium (needs root); its tests skip"

bench: $(STAMP)
	$(BIN)/python -m bench.poll_throughput
	$(BIN)/python -m bench.evaluation --store sqlite
	$(BIN)/python -m bench.evaluation --store postgresql

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
