# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
# The user extras the tests exercise; the development tools come from the `dev` dependency
# group (PEP 735), which needs pip >= 25.1.
EXTRAS := brotli,zstd,redis,gunicorn,prometheus,opentelemetry
VERSION = $$($(PY) -c 'import aiohttp_helpers as a; print(a.__version__)')
# Every bench/<name>.py but the harness and the soak test: `python -m bench.<name>`.
BENCHES := $(sort $(basename $(notdir $(filter-out bench/__init__.py bench/_%.py bench/soak.py,$(wildcard bench/*.py)))))

.PHONY: install sysdeps test lint typecheck pytest docs dist demo bench soak clean changelog release-notes

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q 'pip>=25.1'
	$(PY) -m pip install --disable-pip-version-check -q --group dev -e '.[$(EXTRAS)]'
	touch $@

# tus-js-client for the demo's resumable uploads and their browser tests (served as is).
$(NODE_STAMP): package-lock.json
	@command -v npm >/dev/null 2>&1 || bash .ci/sysdeps
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(NODE_STAMP)

# Debian packages the tests and the docs use for real (curl, Chromium, redis-server, npm,
# Python's own docs for intersphinx), installed when missing.
sysdeps:
	@bash .ci/sysdeps

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# The documentation site: warnings are errors, every cross-reference must resolve.
docs: install sysdeps
	$(VENV)/bin/sphinx-build -W --keep-going -n -b html docs docs/_build/html

# The sdist and the wheel, as published, and their metadata as PyPI will render it.
dist: install
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

pytest: install sysdeps
	$(VENV)/bin/pytest --cov --cov-report=term $(PYTEST_ARGS)

test: lint typecheck docs dist pytest

demo: install
	$(PY) examples/demo.py --host $(HOST) --port $(PORT)

# Each benchmark prints its ratios against plain aiohttp (and its peers) measured in the same
# run; BENCH_ARGS goes to every one of them (e.g. BENCH_ARGS=--help).
bench: install sysdeps
	@bash .ci/sysdeps bench
	@set -e; for b in $(BENCHES); do \
		echo "== python -m bench.$$b"; $(PY) -m bench.$$b $(BENCH_ARGS); echo; done

soak: install
	$(PY) -m bench.soak

# A preview of the next release's notes, built from CHANGES/ (nothing is changed).
changelog: install
	$(VENV)/bin/towncrier build --draft --version "$(VERSION)"

# The release entry: moves the fragments in CHANGES/ into CHANGES.rst (run once, at release).
release-notes: install
	$(VENV)/bin/towncrier build --yes --version "$(VERSION)"

clean:
	rm -rf $(VENV) node_modules .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.* htmlcov build dist docs/_build
