# Two commands for a fresh machine:  `make run`  and  `make test`  (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# `make run` sends mail to the local catcher (sandbox/mail); set SMTP_URL to use a real server.
SMTP_URL ?= smtp://127.0.0.1:8025

.PHONY: run test install chromium test-postgres

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# Chromium for the real-browser tests: Debian's package (Playwright must not download one).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium (sudo apt-get install chromium) for the browser tests"; fi; }

# Everything offline: SQLite, sandbox Calendly and Stripe, demo data; prints what to open.
run: $(STAMP)
	$(PY) -m core migrate
	$(PY) -m core demo-data
	@echo ""
	@echo "  Client pages (book and pay):  http://127.0.0.1:8000/   (e.g. http://127.0.0.1:8000/profile/1)"
	@echo "  Dashboard:                    http://127.0.0.1:8501/"
	@echo "      admin:   admin@demo.test / demo-admin-pass"
	@echo "      builder: ada@demo.test   / demo-builder-pass"
	@echo "  Sandbox Calendly / Stripe:    http://127.0.0.1:8001/_sandbox/state  http://127.0.0.1:8002/_sandbox/state"
	@echo "  API docs:                     http://127.0.0.1:8000/docs   (admin token: sandbox-admin-token)"
	@echo "  Mail sent (mail catcher):     http://127.0.0.1:8003/   (SMTP_URL=$(SMTP_URL))"
	@echo "  Stop with Ctrl+C."
	@echo ""
	SMTP_URL=$(SMTP_URL) PYTHONUNBUFFERED=1 $(VENV)/bin/honcho start -f Procfile

# The test suite on SQLite; with TEST_DATABASE_URL set, on that PostgreSQL database.
test: $(STAMP) chromium
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-postgres: $(STAMP) chromium
	TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test $(VENV)/bin/pytest $(PYTEST_ARGS)
