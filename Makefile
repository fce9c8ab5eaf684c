# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint services install docs

# The same install step as the Docker image: scripts/install (the hashed requirements/dev.lock).
$(BIN)/lof: pyproject.toml requirements/dev.lock scripts/install scripts/check-lock
	PYTHON=$(PYTHON) bash scripts/install $(VENV) dev
	touch $(BIN)/lof

install: $(BIN)/lof

demo: install
	$(BIN)/lof demo

services:
	bash scripts/ensure-services

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The generated tables of docs/contracts.md (settings, commands), from the code.
docs: install
	$(BIN)/python -m tests.docs.reference --write

test: install services lint
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/pytest -q
