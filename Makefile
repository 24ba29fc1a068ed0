# EXPO ROS 2 stack. `make setup` once (idempotent), then `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := source scripts/env.sh &&

.PHONY: setup test test-fast lint bench-learner

setup:
	@bash scripts/setup.sh

## The whole test suite (what CI runs).
test: setup
	@$(ENV) python -m pytest

## Everything but the slow learning and integration tests.
test-fast: setup
	@$(ENV) python -m pytest -m "not slow"

lint: setup
	@$(ENV) ruff check . && ruff format --check .

## Learner throughput at UTD 20, published sizes, batch 256: faithful vs fast TD path.
bench-learner: setup
	@$(ENV) python -m expo_core.bench.learner_throughput
