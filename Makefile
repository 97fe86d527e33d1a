# The two commands of the README:
#   make run    set up a virtualenv and run bimmaild in the foreground
#   make test   set up everything the tests need, then lint, type-check and test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test setup setup-test system-deps lint typecheck pytest docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

setup-test: $(BIN)/python system-deps
	$(BIN)/python -m pip install --quiet -e '.[test]'

system-deps:
	@./scripts/install-system-deps.sh

run: setup
	$(BIN)/bimmaild $(ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest $(ARGS)

test: setup-test lint typecheck pytest

docs: setup
	$(BIN)/python -m bimmaild.protocol.docgen docs/PROTOCOL.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
