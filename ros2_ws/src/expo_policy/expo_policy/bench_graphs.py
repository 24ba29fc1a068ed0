"""The decision's ONNX graphs side by side under onnxruntime, and the lean graph's parity.

    python -m expo_policy.bench_graphs [--rows traced,lean,lean-t2,lean-t2-spin] \
        [--decisions 300] [--parity 300] [--samples 8] [--steps 10] [--seed 0]

Published sizes (obs 19, act 7), one random policy with a non-trivial observation normalizer.
``--rows``: the graph (``traced``: :class:`~expo_core.export.GraphTemplate`'s torch trace;
``lean``: ``expo_core.export.lean``) and the session's threads (``-t2``: 2 intra-op threads,
``-spin``: idle workers busy-wait); ``ov-lean``, ``ov-traced``: the same graphs compiled by
OpenVINO's CPU plugin (one thread, one stream, latency hint; ``pip install openvino``), and
``ov-lean-bf16``: with bfloat16 inference precision (not exact: the check line gives its
differences); each row runs the same inputs, ``--decisions`` rounds after
20 warm-up rounds, in rotating order, and prints p50 / p99 in ms (a dev comparison of the graphs
themselves, without the backend's noise drawing; ``make bench-policy`` times whole backends).
``--parity N``: N random (obs, noise) draws through the lean graph and eager torch: max abs
difference of action, candidates and q, and how often the chosen index agrees.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import torch
from expo_core.config import ExpoConfig
from expo_core.export import OUTPUT_NAMES, export_onnx_bytes, ort_session, random_inputs, torch_reference
from expo_core.export.lean import lean_onnx_bytes
from expo_core.policy import ExpoPolicy

ROWS = (
    "traced",
    "lean",
    "traced-t2",
    "lean-t2",
    "lean-t2-spin",
    "traced-t2-spin",
    "ov-lean",
    "ov-traced",
    "ov-lean-bf16",
)


def make_policy(samples: int, steps: int, seed: int) -> ExpoPolicy:
    cfg = ExpoConfig(obs_dim=19, act_dim=7, num_samples=samples)
    cfg = cfg.replace(diffusion=dataclasses.replace(cfg.diffusion, num_steps=steps))
    torch.manual_seed(seed)
    policy = ExpoPolicy(cfg).eval()
    policy.normalizer.set_stats(torch.linspace(-0.5, 0.5, 19), torch.linspace(0.5, 2.0, 19))
    return policy


class _OpenVinoSession:
    """An OpenVINO CPU compile of an ONNX model with onnxruntime's ``run(names, feeds)``."""

    def __init__(self, model: bytes, precision: str) -> None:
        import tempfile

        import openvino as ov

        core = ov.Core()
        with tempfile.TemporaryDirectory() as d:  # read_model takes a path for ONNX
            path = os.path.join(d, "otf.onnx")
            with open(path, "wb") as f:
                f.write(model)
            net = core.read_model(path)
        props = {
            "INFERENCE_NUM_THREADS": 1,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            "ENABLE_CPU_PINNING": False,
        }
        compiled = core.compile_model(net, "CPU", props)
        self._request = compiled.create_infer_request()
        self._outputs = {n: compiled.output(n) for n in OUTPUT_NAMES}

    def run(self, names, feeds):
        result = self._request.infer(feeds)
        return [result[self._outputs[n]] for n in (names or OUTPUT_NAMES)]


def session(policy: ExpoPolicy, row: str):
    model = lean_onnx_bytes(policy) if "lean" in row else export_onnx_bytes(policy)
    if row.startswith("ov-"):
        return _OpenVinoSession(model, "bf16" if row.endswith("-bf16") else "f32")
    return ort_session(model, num_threads=2 if "-t2" in row else 1, allow_spinning="-spin" in row)


def check_rows(policy: ExpoPolicy, rows: list[str], seed: int) -> dict[str, float]:
    """Each row's largest |difference| from eager torch over action, candidates and q, one draw."""
    feeds = random_inputs(policy.cfg, np.random.default_rng(seed + 1))
    ref = torch_reference(policy, feeds)
    worst = {}
    for r in rows:
        out = dict(zip(OUTPUT_NAMES, session(policy, r).run(list(OUTPUT_NAMES), feeds)))
        worst[r] = max(float(np.abs(out[k] - ref[k]).max()) for k in ("action", "candidates", "q"))
    return worst


def time_rows(policy: ExpoPolicy, rows: list[str], decisions: int, seed: int) -> dict[str, np.ndarray]:
    sessions = {r: session(policy, r) for r in rows}
    feeds = random_inputs(policy.cfg, np.random.default_rng(seed))
    times: dict[str, list[float]] = {r: [] for r in rows}
    for i in range(decisions + 20):
        for j in range(len(rows)):
            r = rows[(i + j) % len(rows)]
            t0 = time.perf_counter()
            sessions[r].run(None, feeds)
            if i >= 20:
                times[r].append(time.perf_counter() - t0)
    return {r: np.asarray(t) * 1e3 for r, t in times.items()}


def parity(policy: ExpoPolicy, draws: int, seed: int) -> tuple[dict[str, float], int]:
    run = ort_session(lean_onnx_bytes(policy))
    rng = np.random.default_rng(seed)
    worst = dict.fromkeys(("action", "candidates", "q"), 0.0)
    same = 0
    for _ in range(draws):
        feeds = random_inputs(policy.cfg, rng)
        ref = torch_reference(policy, feeds)
        out = dict(zip(OUTPUT_NAMES, run.run(list(OUTPUT_NAMES), feeds)))
        for k in worst:
            worst[k] = max(worst[k], float(np.abs(out[k] - ref[k]).max()))
        same += int(out["index"][0] == ref["index"][0])
    return worst, same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="traced,lean", help=f"comma-separated, from {list(ROWS)}")
    ap.add_argument("--decisions", type=int, default=300, help="timed rounds (0: no timing)")
    ap.add_argument("--parity", type=int, default=0, help="random draws of the lean-vs-torch check")
    ap.add_argument("--samples", type=int, default=8, help="N base samples")
    ap.add_argument("--steps", type=int, default=10, help="T denoising steps")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad or args.decisions < 0 or args.parity < 0 or args.samples < 1 or args.steps < 1:
        ap.error(f"rows from {list(ROWS)} (got {bad}); --decisions, --parity >= 0; --samples, --steps >= 1")
    torch.set_num_threads(1)
    policy = make_policy(args.samples, args.steps, args.seed)
    print(f"N={args.samples}, T={args.steps}, published sizes; load average {os.getloadavg()[0]:.2f}")
    if args.decisions:
        worst = check_rows(policy, rows, args.seed)
        for r, ms in time_rows(policy, rows, args.decisions, args.seed).items():
            print(
                f"{r:16s} p50 {np.percentile(ms, 50):6.2f}  p99 {np.percentile(ms, 99):6.2f} ms"
                f"  (max abs diff from torch {worst[r]:.1e})"
            )
    if args.parity:
        worst, same = parity(policy, args.parity, args.seed)
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
        print(f"lean vs torch, {args.parity} draws: max abs diff {diffs}; same index {same}/{args.parity}")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
