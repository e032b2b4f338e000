# Set-up and everyday commands. On a fresh machine:
#   make app    installs everything and starts the app (streamlit run app.py)
#   make test   installs everything (Debian's chromium included) and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: app test install browser bench

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

# Playwright cannot download browsers here: the browser tests drive Debian's /usr/bin/chromium.
browser:
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

app: install
	$(VENV)/bin/streamlit run app.py

test: install browser
	$(PY) -m pytest

bench: install browser
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done
