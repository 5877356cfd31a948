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
# The other CPython versions `make test` runs the core and adapter suites on, each in its own
# environment (.venv-3.12, ...) made from the same lock. A version that is not installed is
# skipped with a warning; MATRIX_REQUIRED=1 makes it an error, MATRIX= runs none.
MATRIX ?= 3.12 3.13
MATRIX_REQUIRED ?=
# the core's suite, every adapter's (tests/<adapter>/) and the versions test; not the
# integration tests, which build wheels and fresh environments of their own, nor Ray's, which
# starts a local cluster per module (both run on the main interpreter)
MATRIX_EXCLUDE ?= tests/integration/ tests/ray/
MATRIX_TESTS ?= $(filter-out $(MATRIX_EXCLUDE),$(wildcard tests/*/)) tests/test_versions.py

.PHONY: help demo test lint typecheck pytest pytest-matrix docs docs-build bench dist examples clean

help:
	@echo "make demo   - run the showcase"
	@echo "make test   - lint, type-check, the test suite (also on each installed Python of MATRIX), the docs"
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

# the main run, measuring line and branch coverage of the packages; below the floor
# ([tool.coverage.report] fail_under) it fails. `.venv/bin/coverage html` renders htmlcov/.
pytest: $(VENV)/.synced
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

pytest-matrix: $(addprefix pytest-,$(MATRIX))

# CPython $*: pyenv's, else one on PATH, else one uv finds installed (never a download)
pytest-%: $(VENV)/.synced
	@python=""; \
	for candidate in "$$(pyenv prefix $* 2>/dev/null | head -n 1)/bin/python$*" \
	    "$$(command -v python$* 2>/dev/null)" "$$($(UV) python find --system $* 2>/dev/null)"; do \
	  if [ -x "$$candidate" ] && [ "$$("$$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$*" ]; then \
	    python="$$candidate"; break; \
	  fi; \
	done; \
	if [ -z "$$python" ]; then \
	  echo "" >&2; \
	  echo "################################################################" >&2; \
	  echo "## SKIPPED: CPython $* is not installed: its suite did NOT run ##" >&2; \
	  echo "################################################################" >&2; \
	  echo "" >&2; \
	  test -z "$(MATRIX_REQUIRED)"; exit $$?; \
	fi; \
	echo "== CPython $* ($$python): $(MATRIX_TESTS)"; \
	$(MAKE) --no-print-directory .venv-$*/.synced MATRIX_PYTHON="$$python" && \
	.venv-$*/bin/pytest -p no:cacheprovider $(MATRIX_TESTS)

.venv-%/.synced: $(UV) uv.lock pyproject.toml packages/*/pyproject.toml packages/*/src/*/_version.py
	UV_PROJECT_ENVIRONMENT=.venv-$* $(UV) sync --locked --all-packages --python "$(MATRIX_PYTHON)"
	@touch $@

docs: $(VENV)/.synced
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

docs-build: $(VENV)/.synced
	$(BIN)/mkdocs build --strict --clean --site-dir $(DOCS_SITE)
	$(BIN)/python -m tools.check_site $(DOCS_SITE)

test: lint typecheck pytest pytest-matrix docs-build

bench: $(VENV)/.synced
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/overload.py
	$(BIN)/python benchmarks/process.py
	$(BIN)/python benchmarks/on_ray.py

# a wheel and an sdist of every package under packages/, then `twine check` and versions
dist: $(VENV)/.synced
	$(BIN)/python -m tools.dist $(DIST)

clean:
	rm -rf $(VENV) .venv-*/ .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.* htmlcov $(DOCS_SITE) $(DIST)
