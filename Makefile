# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install sysdeps test lint typecheck pytest demo bench soak clean changelog

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test,bench,redis,gunicorn,prometheus,opentelemetry]'
	touch $@

# tus-js-client for the demo's resumable uploads and their browser tests (served as is).
$(NODE_STAMP): package-lock.json
	@command -v npm >/dev/null 2>&1 || bash .ci/sysdeps
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(NODE_STAMP)

# Debian packages the tests drive for real (curl, Chromium, redis-server, npm), installed when missing.
sysdeps:
	@bash .ci/sysdeps

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install sysdeps
	$(VENV)/bin/pytest --cov --cov-report=term $(PYTEST_ARGS)

test: lint typecheck pytest

demo: install
	$(PY) examples/demo.py --host $(HOST) --port $(PORT)

bench: install sysdeps
	@set -e; for b in $(filter-out bench/__init__.py bench/_harness.py bench/soak.py,$(wildcard bench/*.py)); do \
		echo "== $$b"; $(PY) $$b; done

soak: install
	$(PY) bench/soak.py

changelog: install
	$(VENV)/bin/towncrier build --draft --version "$$($(PY) -c 'import aiohttp_helpers as a; print(a.__version__)')"

clean:
	rm -rf $(VENV) node_modules .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.* htmlcov build dist
