# Set-up and everyday commands. On a fresh machine:
#   make app    installs everything and starts the app (streamlit run app.py)
#   make test   installs everything (Debian's chromium included), lints, and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: app test lint install browser bench

# the pinned requirements, then ttft itself in editable mode (no PYTHONPATH needed anywhere)
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

# Playwright cannot download browsers here: the browser tests drive Debian's /usr/bin/chromium.
browser:
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

app: install
	$(VENV)/bin/streamlit run app.py

# ruff (rules and format in pyproject.toml) and mypy on the options, core and run-directory modules
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install browser lint
	$(PY) -m pytest

bench: install browser
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done
