# The README's two commands: `make demo` and `make test`. Both set up .venv first and are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= $(shell command -v python3.11 || command -v python3)
APT_PACKAGES := python3-venv

BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint setup bench

demo: $(STAMP)
	$(VENV)/bin/curate demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports   # the layer contracts in pyproject.toml

setup: $(STAMP)

# Peers for the benchmarks (rensa, datatrove); not needed by the product or the tests.
bench: $(BENCH_STAMP)
	$(VENV)/bin/curate bench pipeline
	$(VENV)/bin/curate bench minhash
	$(VENV)/bin/curate bench rules
	$(VENV)/bin/curate bench filters

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]' 2>&1 | grep -v '^WARNING: Location' || true
	@touch $(BENCH_STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq $(APT_PACKAGES); }
	@# Debian's Chromium and its driver, for the dashboard's browser test (never a downloaded browser)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } || echo "chromium not installed: the dashboard test will skip"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) -c 'import curate, torch, ray, pyarrow' || { echo "setup failed: see pip output above"; exit 1; }
	$(PY) -m filters.kenlm_build   # KenLM's lmplz/build_binary from the kenlm sdist (apt-get boost, cmake)
	@touch $(STAMP)
