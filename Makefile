# esm-medic: everything a fresh clone needs is installed by these targets (python3, make and node come with the machine).
SHELL := /bin/bash
# The Lambda runtime is python3.13: the venv, ruff, mypy and every test use the same minor version. pyenv on these
# machines ships 3.13 (not on PATH by default), so look there first.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export MOTO_EC2_LOAD_DEFAULT_AMIS := false
# the product and the sandbox from this checkout (also right in a git worktree that shares another checkout's venv)
export PYTHONPATH := $(CURDIR)/functions:$(CURDIR)/sandbox:$(CURDIR)
PYTEST_ARGS ?=

.PHONY: all venv demo test unit lint fmt typecheck bench clean node asset synth browser

all: test

$(STAMP): pyproject.toml sandbox/pyproject.toml requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "esm-medic needs Python 3.13 (the Lambda runtime): install it or pass PYTHON=/path/to/python3.13"; exit 1; }
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e . -e sandbox
	@touch $(STAMP)

venv: $(STAMP)

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	@touch $@

node: node_modules/.installed

demo: $(STAMP)
	$(BIN)/esm-medic demo $(DEMO_ARGS)

# Debian's chromium + chromium-driver for the approval page's browser test (never a browser download). Idempotent:
# nothing happens when both are there; apt-get update only when one is missing. As root (CI) or through sudo -n.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	    echo "browser: chromium/chromium-driver missing and no root: the browser test will skip (CI fails)"; \
	    [ "$$CI" != true ] || exit 1; exit 0; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver </dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exit code 5 means "no tests collected": that is a failure here, never a pass.
test: $(STAMP) node browser lint
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# Lambda code asset + dependency layer for the Lambda platform (needs PyPI), then a full synth with cdk-nag.
asset: $(STAMP)
	$(BIN)/python -m infra.asset

synth: asset node
	ESM_MEDIC_BUILD_DEPS=1 $(BIN)/python -m infra.app

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache .mypy_cache .ruff_cache .esm-medic
