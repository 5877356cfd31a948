# Everything bootstraps from a bare Python 3.11+: a .venv with uv in it, then `uv sync --locked`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export NO_MKDOCS_2_WARNING := 1
# where `make docs-build` writes the site (git-ignored)
DOCS_SITE ?= site
# where `make dist` writes the release artifacts (git-ignored)
DIST ?= dist

.PHONY: help demo test lint typecheck pytest docs docs-build bench dist examples clean

help:
	@echo "make demo   - run the showcase"
	@echo "make test   - lint, type-check, run the whole test suite and build the docs strictly"
	@echo "make bench  - benchmarks against the standard library"
	@echo "make docs   - serve the documentation site on http://127.0.0.1:8000"
	@echo "make dist   - wheels and sdists of every package in $(DIST)/, checked for release"

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: $(UV) uv.lock pyproject.toml packages/*/pyproject.toml packages/*/src/*/_version.py
	$(UV) sync --locked --all-packages --python $(BIN)/python
	@touch $@

demo: $(VENV)/.synced
	$(BIN)/tasker demo

lint: $(VENV)/.synced
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.synced
	$(BIN)/mypy
	$(BIN)/mypy --strict tests examples benchmarks tools

pytest: $(VENV)/.synced
	$(BIN)/pytest

docs: $(VENV)/.synced
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

docs-build: $(VENV)/.synced
	$(BIN)/mkdocs build --strict --clean --site-dir $(DOCS_SITE)
	$(BIN)/python -m tools.check_site $(DOCS_SITE)

test: lint typecheck pytest docs-build

bench: $(VENV)/.synced
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/process.py

# a wheel and an sdist of every package under packages/, then `twine check` and versions
dist: $(VENV)/.synced
	$(BIN)/python -m tools.dist $(DIST)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(DOCS_SITE) $(DIST)
