# `make demo` and `make test` work on a fresh machine: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DIGEST := $(VENV)/bin/digest
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench clean venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -rf var/demo.db var/demo.db-wal var/demo.db-shm var/demo.db.lock var/outbox var/preview
	$(DIGEST) subscribers import config/demo/subscribers.csv --active --config config/demo.toml
	$(DIGEST) collect --config config/demo.toml
	DIGEST_SECRET=demo-secret-not-for-production $(DIGEST) preview --config config/demo.toml \
		--subscriber ada@example.org --out var/preview
	DIGEST_SECRET=demo-secret-not-for-production $(DIGEST) run --config config/demo.toml
	@echo
	@echo "Emails (maildir, one .eml per subscriber): var/outbox/new/"
	@ls -1 var/outbox/new/
	@echo "Ada's email as .html, .txt and .eml (rendered before the run), for a browser: var/preview/"
	@echo "Database: var/demo.db   (try: $(DIGEST) papers --config config/demo.toml diffusion)"
	@echo "Ada's preferences page, once the web app runs (DIGEST_SECRET=demo-secret-not-for-production $(DIGEST) serve --config config/demo.toml):"
	@DIGEST_SECRET=demo-secret-not-for-production $(DIGEST) subscribers links ada@example.org --config config/demo.toml

test: $(STAMP)
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y chromium) || echo "no chromium: the browser tests will be skipped"
	$(VENV)/bin/ruff check digest tests bench
	$(VENV)/bin/ruff format --check digest tests bench
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check digest tests bench
	$(VENV)/bin/ruff format --check digest tests bench

format: $(STAMP)
	$(VENV)/bin/ruff check --fix digest tests bench
	$(VENV)/bin/ruff format digest tests bench

bench: $(STAMP)  # about 25 minutes on 2 cores; bench/daily.py alone takes ~18
	$(PY) bench/collect.py
	$(PY) bench/match.py
	$(PY) bench/render.py
	$(PY) bench/send.py
	$(PY) bench/daily.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis tests/artifacts
