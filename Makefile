# BrewSLM — the two commands: `make demo` and `make test`. Both build .venv on first use.
# torch goes in first, pinned to the CPU build on this machine's disk, so that nothing
# later pulls a multi-GB CUDA build from PyPI.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test lint test-postgres test-queue test-ui bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/brewslm demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The store tests against a real PostgreSQL: Debian's server, started on 127.0.0.1 by the script.
test-postgres: $(STAMP)
	scripts/with-postgres.sh $(PY) -m pytest -m store $(PYTEST_ARGS)

# Jobs through RQ over a real Redis: Debian's redis-server, installed when missing (the tests
# start their own on 127.0.0.1 and stop it).
test-queue: $(STAMP)
	command -v redis-server >/dev/null || { SUDO=; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	$(PY) -m pytest -m queue tests/jobs/test_broker.py $(PYTEST_ARGS)

# The web UI in a real browser: Playwright (the Python package) driving Debian's chromium,
# installed when missing (Playwright's own browser download is not reachable here).
# Screenshots of every page land in test-artifacts/ui/.
test-ui: $(STAMP)
	test -x /usr/bin/chromium || { SUDO=; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(PY) -m pytest -m browser tests/web $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/events.py
	$(PY) benchmarks/ledger.py
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/pii.py
	$(PY) benchmarks/clean_prepare.py
	$(PY) benchmarks/preflight_memory.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/serve_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis test-artifacts
