# Two set-up commands: `make demo` and `make test`. Each creates .venv from the exact pins in
# requirements.txt when it is missing or out of date.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANIFEST := dbt_project/target/manifest.json
# The venv's commands (dbt for dagster-dbt, dagster, ml-platform) first, as if it were activated.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv demo test test-fast dev mlflow bench lint clean-home

$(STAMP): requirements.txt deploy/requirements-k8s.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) (first time: a few minutes) ..."
	@$(BIN)/pip install -q --no-compile -r requirements.txt 2> $(VENV)/pip.log || (cat $(VENV)/pip.log; exit 1)
	@# dagster-k8s (the user-code image's launcher and executor): the deployment tests load it.
	@$(BIN)/pip install -q --no-compile -r deploy/requirements-k8s.txt -c requirements.txt 2>> $(VENV)/pip.log || (cat $(VENV)/pip.log; exit 1)
	@$(BIN)/pip install -q --no-deps -e . 2>> $(VENV)/pip.log || (cat $(VENV)/pip.log; exit 1)
	@# Bytecode once, on all cores: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
	@# process would otherwise compile each imported module again (GX, Feast, MLflow: ~2x slower).
	@# Some packages ship files that do not compile (test fixtures): not an install failure.
	@$(BIN)/python -m compileall -q -j0 $(VENV)/lib > /dev/null || true
	@touch $(STAMP)

# dbt's manifest (the dbt assets are built from it), parsed again whenever a dbt file changes.
$(MANIFEST): $(STAMP) $(shell find dbt_project -path dbt_project/target -prune -o -type f -print)
	@cd dbt_project && dbt parse --quiet --profiles-dir . > /dev/null

venv: $(STAMP) $(MANIFEST)

demo: venv  ## generate demo data if needed, run the demo pipeline end to end
	$(BIN)/ml-platform demo

test: venv lint  ## the static checks, then the whole test suite (slow end-to-end tests included)
	$(BIN)/pytest -q

test-fast: venv  ## everything but the slow end-to-end tests
	$(BIN)/pytest -q -m "not slow"

dev: venv  ## dagster dev on the same platform home
	$(BIN)/ml-platform dev

mlflow: venv  ## MLflow UI on the platform home's tracking store
	$(BIN)/ml-platform mlflow-ui

bench: venv  ## run benchmarks/ and write docs/benchmarks.md
	@# The baselines only the benchmarks compare with (Evidently), pinned apart; our pins as
	@# constraints so that none of them moves.
	@$(BIN)/pip install -q -r benchmarks/requirements.txt -c requirements.txt
	@# bench_serving drives the services with wrk (Debian: apt-get install wrk).
	@command -v wrk >/dev/null || { echo "bench_serving needs wrk: sudo apt-get install wrk"; exit 1; }
	DO_NOT_TRACK=1 $(BIN)/python -m benchmarks.run

lint: venv  ## what the code promises: style, types, import direction, loadable definitions
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	ML_PLATFORM_HOME=$$(mktemp -d) $(BIN)/dg check yaml
	ML_PLATFORM_HOME=$$(mktemp -d) $(BIN)/dg check defs

clean-home:  ## delete all local state (the platform home)
	rm -rf $${ML_PLATFORM_HOME:-.ml_platform}
