# Two commands matter on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the package (with its dev extras) when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install browser java demo test lint bench bench-real clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(INSTALLED) ## Create .venv and install propensity with its dev tools

demo: $(INSTALLED) ## Run the whole pipeline on the embedded synthetic world
	$(VENV)/bin/propensity demo

browser: ## Headless Chromium and its WebDriver (Debian packages) for the browser tests, installed when missing
	@(command -v chromium && command -v chromedriver) >/dev/null 2>&1 || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
		echo "warning: could not install chromium and chromium-driver (not root?); the browser tests will skip"

java: ## A Java 17 runtime (Debian package) for the Spark tests, installed when missing
	@command -v java >/dev/null 2>&1 || [ -n "$$JAVA_HOME" ] || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) || \
		echo "warning: could not install openjdk-17-jre-headless (not root?); the Spark tests will fail"

test: $(INSTALLED) browser java ## Run the test suite
	$(PY) -m pytest -q

lint: $(INSTALLED) ## Ruff lint and format check
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(INSTALLED) browser ## Feature build, model, company-size, robustness, feature ablation, observable ceiling, learned journey stage, fault table, monitoring, explorer, table-drift, scoring-at-scale and Spark benchmarks; writes benchmarks/*.md
	$(PY) benchmarks/bench.py

bench-real: $(INSTALLED) ## Table mode on the real exports in ../shared/data/real; writes benchmarks/real_data.md
	$(PY) benchmarks/bench.py --real

clean: ## Remove generated data, runs and the virtualenv
	rm -rf $(VENV) data/*/ models/*/ mlruns .pytest_cache
