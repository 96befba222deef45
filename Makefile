# The two commands of the README: `make demo` (install, create the SQLite store, load the demo, serve on
# 127.0.0.1:8000; another port: `make demo PORT=8001`) and `make test` (install, lint, type-check and run the
# whole test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 8000

.PHONY: demo test test-slow lint bench install

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/indicator-exchange demo --port $(PORT)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 2 --dist loadgroup

test-slow: $(INSTALLED)
	$(BIN)/pytest -n 2 --dist loadgroup -m slow

bench: $(INSTALLED)
	$(BIN)/python bench/run.py
