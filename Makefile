# The two commands of the README: `make demo` (install, create the SQLite store, load the demo, serve on
# 127.0.0.1:8000; another port: `make demo PORT=8001`) and `make test` (system packages, install, lint,
# type-check and run the whole test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Every indirect dependency pinned too (warnings are errors: a new release of one must not break a fresh
# install). `make constraints` regenerates it from pyproject.toml.
CONSTRAINTS := constraints.txt
# Where Debian's chromium package puts it; the browser tests launch this one.
CHROMIUM := /usr/bin/chromium
# Where Debian's haproxy and pgbouncer packages put them; tests/scale starts its own copies of each.
HAPROXY := /usr/sbin/haproxy
PGBOUNCER := /usr/sbin/pgbouncer
PORT ?= 8000

.PHONY: demo test test-slow lint bench install system-deps constraints

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(INSTALLED)

install: $(INSTALLED)

# Resolve pyproject.toml afresh in a scratch venv and pin everything it installed but the project itself.
# Run after changing a dependency in pyproject.toml, and commit the result.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet --upgrade pip
	.venv-constraints/bin/pip install --quiet -e '.[test]'
	{ echo "# Every package of the test install pinned (pip freeze, less the project). Regenerate: make constraints"; \
	  .venv-constraints/bin/pip freeze --exclude-editable --all | grep -v '^setuptools=='; } > $(CONSTRAINTS)
	rm -rf .venv-constraints

# The Debian packages the tests need: the PostgreSQL server binaries (a throwaway cluster is started when no
# server answers and IX_TEST_DATABASE_URL is unset; the scale tests also make a streaming replica with them),
# Chromium (the browser tests), haproxy and pgbouncer (tests/scale: instances behind a balancer, a pooler in
# transaction mode; also the binaries are used, never their system services). Installed with apt-get
# when missing and this is root; otherwise the exact command is printed and the target fails.
system-deps:
	@missing=""; \
	if [ -z "$$IX_TEST_DATABASE_URL" ] && ! command -v initdb >/dev/null 2>&1 \
	   && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$$missing postgresql"; fi; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	[ -x $(HAPROXY) ] || missing="$$missing haproxy"; \
	[ -x $(PGBOUNCER) ] || missing="$$missing pgbouncer"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing; \
	else \
	  echo "system-deps: missing Debian packages:$$missing" >&2; \
	  echo "system-deps: install them with:  sudo apt-get install -y$$missing" >&2; \
	  exit 1; \
	fi

demo: $(INSTALLED)
	$(BIN)/indicator-exchange demo --port $(PORT)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: system-deps lint
	$(BIN)/pytest -n 4 --dist loadfile

test-slow: system-deps $(INSTALLED)
	$(BIN)/pytest -n 4 --dist loadfile -m slow

bench: $(INSTALLED)
	$(BIN)/python bench/run.py
