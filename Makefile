# cosmos_ros: the two commands of the README, and a few helpers.
#   make demo    set up (if needed) and run the whole loop on the embedded tiny model
#   make test    set up (if needed), lint, run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := source .venv/cosmos_ros_env.sh
# Real Cosmos weights for the demo: make demo MODEL=/path/to/Cosmos-Predict2.5-2B
MODEL ?=
DEMO_DIR ?= demo_output
PYTEST_ARGS ?=

.PHONY: setup test lint demo interfaces clean help

help:
	@echo "make demo   - set up and run the end-to-end demo on the tiny model (MODEL=dir for real weights)"
	@echo "make test   - set up, lint (ruff) and run the tests (pytest)"
	@echo "make setup  - create .venv and install everything (idempotent)"
	@echo "make lint   - ruff check + ruff format --check"
	@echo "make clean  - remove build outputs (keeps .venv)"

setup:
	@bash scripts/setup.sh

lint: setup
	@$(ENV) && ruff check . && ruff format --check .

test: lint
	@$(ENV) && python -m pytest $(PYTEST_ARGS)

demo: setup
	@$(ENV) && cosmos-ros demo --output $(DEMO_DIR) --overwrite $(if $(MODEL),--model $(MODEL),)

interfaces: setup
	@bash scripts/build_interfaces.sh .venv

clean:
	rm -rf build install log .pytest_cache .ruff_cache $(DEMO_DIR)
