# Two commands from a fresh machine: `make demo` and `make test`.
# Python 3.12 is taken from `python3.12` or, failing that, `python3`
# (pyenv and uv honour .python-version).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
STAMP := $(VENV)/.installed
# JAX's persistent compilation cache makes a fresh process's first fits fast: mleppl turns it
# on in the user cache folder (~/.cache/mleppl/jax) unless JAX_COMPILATION_CACHE_DIR is set.
export MPLBACKEND ?= Agg
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test test-slow lint docs bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v >= (3, 12) else f"Python >= 3.12 is needed, found {sys.version.split()[0]} at {sys.executable}; install 3.12 (pyenv install 3.12 or uv python install 3.12)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	set -o pipefail; $(PY) -m pip install -q -e ".[test,docs]" 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m models

lint: $(STAMP)
	$(VENV)/bin/ruff check mleppl models tests benchmarks
	$(VENV)/bin/ruff format --check mleppl models tests benchmarks
	$(VENV)/bin/lint-imports

# The fast suite (two workers); the slow statistical studies run in `make test-slow`.
test: $(STAMP) lint
	$(PY) -m pytest -q -n 2 -m "not slow"
	$(MAKE) docs

test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow

# The API reference is generated from the docstrings (mkdocstrings); check_docs.py then
# catches what --strict does not: tables rendered as paragraphs, assets loaded from the network.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir .cache/site
	$(PY) docs/scripts/check_docs.py --docs docs --site .cache/site

bench: $(STAMP)
	$(PY) benchmarks/bench_logistic.py
	$(PY) benchmarks/bench_uncertainty.py
	$(PY) benchmarks/bench_latent.py
	$(PY) benchmarks/bench_nls.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
