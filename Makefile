# The two commands of the README, and what they need. Everything installs itself on first use:
# the virtualenv (re-made when pyproject.toml changes) and the stack (stack/stack up is idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test check venv console

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(INSTALLED)

venv: $(INSTALLED)

## demo: set everything up and run the demo pipeline, printing what happens
demo: $(INSTALLED)
	stack/stack up
	$(BIN)/outbox demo

## console: the operator console on http://127.0.0.1:8090/ for the demo's relay and projector
console: $(INSTALLED)
	stack/stack up
	SITES_PROJECTOR=site-summary-demo $(BIN)/outbox console --projector outboxkit.examples.sites.projection:from_environment

## check: lint, format and type checks (no services needed)
check: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: set everything up (the stack, and Debian's chromium for the page tests), run the checks and
## the whole test suite against the real stack.
## Under CI=true the stack is stopped afterwards; on a developer's machine it stays up for the next run.
test: $(INSTALLED)
	stack/install-browser
	stack/stack up
	status=0; $(MAKE) --no-print-directory check && $(BIN)/pytest || status=$$?; \
	if [ "$$CI" = true ]; then stack/stack down; fi; exit $$status
