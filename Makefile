# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint services install

$(BIN)/lof: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/lof

install: $(BIN)/lof

demo: install
	$(BIN)/lof demo

services:
	bash scripts/ensure-services

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install services lint
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/pytest -q
