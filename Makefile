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
	DIGEST_SECRET=demo-secret-not-for-production-use-32-chars $(DIGEST) preview --config config/demo.toml \
		--subscriber ada@example.org --out var/preview
	DIGEST_SECRET=demo-secret-not-for-production-use-32-chars $(DIGEST) run --config config/demo.toml
	@echo
	@echo "Emails (maildir, one .eml per subscriber): var/outbox/new/"
	@ls -1 var/outbox/new/
	@echo "Ada's email as .html, .txt and .eml (rendered before the run), for a browser: var/preview/"
	@echo "Database: var/demo.db   (try: $(DIGEST) papers --config config/demo.toml diffusion)"
	@echo "Ada's preferences page, once the web app runs (DIGEST_SECRET=demo-secret-not-for-production-use-32-chars $(DIGEST) serve --config config/demo.toml):"
	@DIGEST_SECRET=demo-secret-not-for-production-use-32-chars $(DIGEST) subscribers links ada@example.org --config config/demo.toml

test: $(STAMP) /usr/sbin/smtp-source  # postfix: the bounce tests run a private one
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y chromium) || echo "no chromium: the browser tests will be skipped"
	$(VENV)/bin/ruff check digest tests bench
	$(VENV)/bin/ruff format --check digest tests bench
	$(PY) -m mypy --strict digest
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check digest tests bench
	$(VENV)/bin/ruff format --check digest tests bench

format: $(STAMP)
	$(VENV)/bin/ruff check --fix digest tests bench
	$(VENV)/bin/ruff format digest tests bench

bench: $(STAMP) /usr/sbin/smtp-source  # about 50 minutes on 2 cores; bench/daily.py alone ~30
	$(PY) bench/collect.py
	$(PY) bench/match.py
	$(PY) bench/render.py
	$(PY) bench/send.py
	$(PY) bench/daily.py
	$(PY) bench/recommend.py
	$(PY) bench/relevance.py
	$(PY) bench/web.py

# Postfix's C tools (smtp-source, smtp-sink, and the postfix binary the benches run privately
# with `postfix -c DIR`) measure the pipe's limit. Installed as tools only: "No configuration",
# no /etc/postfix/main.cf, and no system instance left running.
/usr/sbin/smtp-source:
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y postfix \
		|| (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix)
	! (command -v systemctl >/dev/null && systemctl is-active --quiet postfix 2>/dev/null) \
		|| systemctl stop postfix
	! postfix status >/dev/null 2>&1 || postfix stop

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis tests/artifacts
