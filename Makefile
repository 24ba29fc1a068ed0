# EXPO ROS 2 stack. `make setup` once (idempotent), then `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := source scripts/env.sh &&

.PHONY: setup test test-fast lint sim bench-learner bench-ros bench-policy

setup:
	@bash scripts/setup.sh

## The whole test suite (what CI runs).
test: setup
	@$(ENV) python -m pytest

## Everything but the slow learning and integration tests.
test-fast: setup
	@$(ENV) python -m pytest -m "not slow"

lint: setup
	@$(ENV) ruff check . && ruff format --check . && bash scripts/lint_docker.sh

## The main job: lift demos + a pretrained base (both cached under data/), then sim bridge + policy
## node + learner started by `ros2 launch expo_bringup sim.launch.py`: EPISODES episodes of online
## EXPO fine-tuning (LEARN=0: evaluation only) with a live progress line, a summary and a
## learning curve.
## TASK: lift (default), can, square, stack, threading (stack and threading are MimicGen's: make
## setup installs it). OBS=pixels: the policy acts from the two cameras and proprioception only.
## INTERVENE=1: a scripted operator (the task's expert) takes over when the policy strays.
## Extra options: make sim SIM_ARGS="--realtime" (see expo-sim session --help).
TASK ?= lift
EPISODES ?= 10
LEARN ?= 1
OBS ?= state
INTERVENE ?= 0
SIM_ARGS ?=
sim: setup
	@$(ENV) expo-sim session --task $(TASK) --episodes $(EPISODES) $(if $(filter 1,$(LEARN)),--learn) \
		$(if $(filter pixels,$(OBS)),--obs pixels) $(if $(filter 1,$(INTERVENE)),--intervene) $(SIM_ARGS)

## Closed-loop latency over ROS: obs published -> action received by the bridge, vs inference.
bench-ros: setup
	@$(ENV) python -m expo_sim.ros.bench_ros --steps 1000 --pixels cpu published

## Per-decision latency of each available inference backend (torch, ONNX Runtime, TensorRT/CUDA
## where present), published sizes, >= 1000 decisions each.
bench-policy: setup
	@$(ENV) python -m expo_policy.bench_policy --decisions 1000 --out runs/bench_policy.json

## Learner throughput at UTD 20, published sizes, batch 256: faithful vs fast TD path.
bench-learner: setup
	@$(ENV) python -m expo_core.bench.learner_throughput
