#!/usr/bin/env bash
# The GPU checks of the stack, in one run (what a lent GPU machine executes; see docs/results.md).
#   bash scripts/gpu_check.sh OUT_DIR
# Runs from a plain checkout with a CUDA torch on the python3 in PATH (no venv, no ROS): the
# benchmarks import only expo_core and expo_policy's backends. Writes into OUT_DIR:
#   env.txt              device, driver, torch/CUDA versions
#   bench_policy.json    per-decision latency, N=8 T=10, published sizes: torch eager CUDA, torch
#                        CUDA graph (plain and inductor-compiled), onnxruntime (whatever providers
#                        are installed), batched CPU torch
#   capture_check.txt    both CUDA graph captures against the eager decision (max |candidate diff|)
#   bench_learner.json   env steps/s at UTD 20, published sizes, faithful vs fast TD paths, on CUDA
set -uo pipefail
OUT="${1:?usage: gpu_check.sh OUT_DIR}"
mkdir -p "$OUT"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT/ros2_ws/src/expo_core:$ROOT/ros2_ws/src/expo_ros:$ROOT/ros2_ws/src/expo_policy${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$ROOT"

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== bench-policy (N=8, T=10, published sizes)"
timeout 240 python3 -m expo_policy.bench_policy --samples 8 --steps 10 --decisions 1000 \
  --naive-decisions 100 --swaps 0 --threads 1 --out "$OUT/bench_policy.json" 2>&1 | tail -40

echo "== the CUDA graph captures (plain, inductor-compiled) against the eager decision"
timeout 240 python3 -c "
import numpy as np
from expo_core.agent import ExpoAgent
from expo_core.config import ExpoConfig
from expo_core.checkpoint import policy_weights_bytes
from expo_policy.backends.torch_cuda import CudaGraphTorchBackend, eager_difference
from expo_policy.bench_policy import ACT_DIM, OBS_DIM
data, sha = policy_weights_bytes(ExpoAgent(ExpoConfig(obs_dim=OBS_DIM, act_dim=ACT_DIM), seed=0), version=1)
obs = np.random.default_rng(0).standard_normal(OBS_DIM).astype(np.float32)
for compile in (False, True):
    b = CudaGraphTorchBackend('cuda', seed=0, num_base_samples=8, compile=compile)
    b.load_bundle(data, sha)
    print('compile', compile, 'max |candidate - eager|', eager_difference(b, obs, decisions=5))
" 2>&1 | tail -5 | tee "$OUT/capture_check.txt"

echo "== bench-learner (UTD 20, published sizes, cuda)"
timeout 240 python3 -m expo_core.bench.learner_throughput --device cuda --env-steps 3 \
  --out "$OUT/bench_learner.json" 2>&1 | tail -30

echo "== fast-path micro-benchmark (critic on candidates, one OTF decision; reference vs fast, cuda)"
timeout 120 python3 -m expo_core.bench.fast_paths --device cuda --out "$OUT/bench_fast_paths.json" 2>&1 | tail -25
