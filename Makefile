# Everything bootstraps from a bare Python 3.11+: a .venv with uv in it, then `uv sync --locked`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help demo test lint typecheck pytest bench examples clean

help:
	@echo "make demo   - run the showcase"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make bench  - benchmarks against the standard library"

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: $(UV) uv.lock pyproject.toml packages/*/pyproject.toml
	$(UV) sync --locked --all-packages --python $(BIN)/python
	@touch $@

demo: $(VENV)/.synced
	$(BIN)/tasker demo

lint: $(VENV)/.synced
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.synced
	$(BIN)/mypy
	$(BIN)/mypy --strict tests examples benchmarks

pytest: $(VENV)/.synced
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.synced
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
