# `make demo` and `make test` do all their own set-up (see README).
SHELL := /bin/bash
PY312 := $(shell .ci/find-python 3.12 || .ci/find-python 3.13)
PY311 := $(shell .ci/find-python 3.11)
PY313 := $(shell .ci/find-python 3.13)
VENV := .venv
VENV52 := .venv-django52
VENV313 := .venv-py313
CHROMIUM_PATH ?= /usr/bin/chromium
export CHROMIUM_PATH
PYTEST_ARGS ?=

.PHONY: help demo test test-main test-django52 test-py313 lint docs matrix coverage dist format chromium bench bench-fanout vendor clean

help:
	@echo "make demo   - set up and serve the demo on http://127.0.0.1:8000"
	@echo "make test   - set up and run the whole suite (Django 6.x on 3.12 and 3.13, Django 5.2 on 3.11)"
	@echo "make lint   - ruff (lint + format check), mypy --strict, import layers, the docs build"
	@echo "make docs   - build the Sphinx site into docs/_build/html (warnings are errors)"
	@echo "make matrix - tox over Python 3.11-3.13 x Django 5.2/6.0/6.1, with coverage (slow)"
	@echo "make coverage - unit tests plus a few integration files under coverage (quick figure)"
	@echo "make bench  - run the benchmarks in bench/"

$(VENV)/.installed: pyproject.toml
	@test -n "$(PY312)" || { echo "Python 3.12+ is required"; exit 1; }
	$(PY312) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade "pip>=25.1"
	$(VENV)/bin/python -m pip install -q -e . --group dev "django>=6.0"
	touch $@

$(VENV52)/.installed: pyproject.toml
	@test -n "$(PY311)" || { echo "Python 3.11 is required for the Django 5.2 run"; exit 1; }
	$(PY311) -m venv $(VENV52)
	$(VENV52)/bin/python -m pip install -q --upgrade "pip>=25.1"
	$(VENV52)/bin/python -m pip install -q -e . --group test "django>=5.2,<6.0"
	touch $@

$(VENV313)/.installed: pyproject.toml
	@test -n "$(PY313)" || { echo "Python 3.13 is required for the Python 3.13 run"; exit 1; }
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install -q --upgrade "pip>=25.1"
	$(VENV313)/bin/python -m pip install -q -e . --group test "django>=6.0"
	touch $@

chromium:
	@if [ ! -x "$(CHROMIUM_PATH)" ]; then \
	  echo "Installing Chromium for the browser tests (apt-get install chromium)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }; \
	fi

# The web server and a Django Tasks worker (db_worker) that runs the jobs; the
# worker is stopped by its PID when the server stops.
demo: $(VENV)/.installed
	$(VENV)/bin/python demo/manage.py migrate --noinput -v 0
	$(VENV)/bin/python demo/manage.py createcachetable
	@$(VENV)/bin/python demo/manage.py db_worker --no-reload --interval 0.2 & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	  $(VENV)/bin/python demo/manage.py runserver 127.0.0.1:8000

test: test-main test-django52 test-py313

test-main: $(VENV)/.installed chromium
	DJANGO_ALLOW_ASYNC_UNSAFE=true $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Django 5.2 LTS on Python 3.11: everything but the browser suite.
test-django52: $(VENV52)/.installed
	$(VENV52)/bin/python -m pytest -m "not browser" -p no:playwright $(PYTEST_ARGS)

# Python 3.13 with Django 6.x: everything but the browser suite (run on 3.12 above).
test-py313: $(VENV313)/.installed
	$(VENV313)/bin/python -m pytest -m "not browser" -p no:playwright $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check progress_ui tests demo bench docs
	$(VENV)/bin/ruff format --check progress_ui tests demo bench docs
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(MAKE) docs

# The documentation, warnings as errors (as Read the Docs builds it: fail_on_warning).
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# The whole matrix of tox.ini (every Python x Django cell, each with coverage),
# then the combined coverage report. tox is given the interpreters .ci/find-python
# finds, since pyenv's shims can be broken.
matrix: $(VENV)/.installed
	$(VENV)/bin/tox run --discover $(PY311) $(PY312) $(PY313) $(TOX_ARGS)

# The coverage figure without the slow suites: tests/unit plus the integration
# files that need no worker processes (what the docs' Development page quotes).
COVERAGE_TESTS ?= tests/unit tests/integration/test_session.py tests/integration/test_views.py \
	tests/integration/test_mixins.py tests/integration/test_cancel.py tests/integration/test_security.py
coverage: $(VENV)/.installed
	$(VENV)/bin/coverage erase
	DJANGO_ALLOW_ASYNC_UNSAFE=true $(VENV)/bin/coverage run -m pytest -q -p no:playwright \
	  -m "not browser" $(COVERAGE_TESTS)
	$(VENV)/bin/coverage combine -q
	$(VENV)/bin/coverage report

# The distributions and their metadata check (what the release job uploads).
dist: $(VENV)/.installed
	rm -rf dist
	$(VENV)/bin/python -m build
	$(VENV)/bin/twine check --strict dist/*

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix progress_ui tests demo bench
	$(VENV)/bin/ruff format progress_ui tests demo bench

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/run.py

# The fan-out table alone (a few minutes): viewers per server process.
bench-fanout: $(VENV)/.installed
	$(VENV)/bin/python bench/fanout.py

clean:
	rm -rf $(VENV) $(VENV52) $(VENV313) .test-cache .test-db.sqlite3 dist build test-output \
	  docs/_build .tox .coverage .coverage.* htmlcov
