"""Per-decision latency of every inference backend available here, published network sizes.

    python -m expo_policy.bench_policy [--decisions 1000] [--warmup 50] [--threads 1] \
        [--swaps 3] [--out runs/bench_policy.json]

One decision = one ``backend.decide(obs)`` for one robomimic Lift observation (obs 19, action 7)
with the published EXPO sizes (``ExpoConfig`` defaults: N = 8 base samples, T = 10 DDPM steps,
16 candidates, editor MLP 3x256, 10 critics 3x256 with LayerNorm, denoiser 256 wide with 3
residual blocks of 1024), wall clock from the numpy observation in to the numpy Decision out.
Weights are random (the cost does not depend on them); observations are a fixed random pool.

Rows: torch eager (CPU, and CUDA where present); torch with a captured CUDA graph (CUDA only);
onnxruntime (CPU EP, and CUDA EP where installed); TensorRT fp32/fp16 (where installed). Rows
that cannot run here are listed with the reason. ``--warmup`` decisions per row are discarded,
then ``--decisions`` are timed round-robin, one decision per row per round in a rotating order,
so load from other processes hits every row alike. ``--swaps`` times the onnxruntime weight
swap (``prepare``: decode, ONNX bytes, session, check against torch) and the decision latency
while swaps run in a worker thread, as in the policy node, for two cases: same config (weights
copied into the running graph template) and a config change (the graph is traced again).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import policy_from_weights, policy_weights_bytes
from expo_core.config import ExpoConfig
from expo_core.export import OTFGraph, input_shapes
from tqdm import tqdm

from .backends import BackendUnavailableError, Decision, TorchBackend

log = logging.getLogger("bench_policy")

OBS_DIM, ACT_DIM = 19, 7  # robomimic Lift low-dim


class CudaGraphTorch:
    """The OTF graph captured once as a CUDA graph (static buffers, replayed per decision); noise
    from a seeded torch.Generator on the GPU. Benchmark only: no weight swaps."""

    def __init__(self, data: bytes, sha256: str, device: str = "cuda", seed: int = 0) -> None:
        self.device = torch.device(device)
        policy = policy_from_weights(data, sha256).to(self.device).eval()
        self.graph_module = OTFGraph(policy)
        self.static = [torch.zeros(s, device=self.device) for s in input_shapes(policy.cfg).values()]
        self.gen = torch.Generator(self.device).manual_seed(seed)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):  # warm-up outside the capture (allocator, cuBLAS handles)
                self.graph_module(*self.static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.cuda_graph), torch.no_grad():
            self.outputs = self.graph_module(*self.static)

    def decide(self, obs: np.ndarray) -> Decision:
        self.static[0].copy_(torch.from_numpy(np.asarray(obs, dtype=np.float32)).reshape(1, -1))
        for buf in self.static[1:]:
            buf.normal_(generator=self.gen)
        self.cuda_graph.replay()
        action, candidates, q, index = (t.cpu() for t in self.outputs)
        return Decision(action[0].numpy(), candidates[0].numpy(), q[0].numpy(), int(index[0]))


def build_rows(data: bytes, sha: str, threads: int, seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    """name -> object with decide(obs), for every backend that runs here; name -> skip reason."""
    rows: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    cuda = torch.cuda.is_available()

    def add(name: str, make: Callable[[], Any]) -> None:
        try:
            backend = make()
            if hasattr(backend, "load_bundle"):
                backend.load_bundle(data, sha)
            rows[name] = backend
        except (BackendUnavailableError, ImportError, RuntimeError, ValueError) as e:
            skipped[name] = f"{type(e).__name__}: {e}"

    add("torch eager (cpu)", lambda: TorchBackend(device="cpu", seed=seed, num_threads=threads))
    if cuda:
        add("torch eager (cuda)", lambda: TorchBackend(device="cuda", seed=seed))
        add("torch cuda-graph (cuda)", lambda: CudaGraphTorch(data, sha, "cuda", seed))
    else:
        skipped["torch eager (cuda)"] = "CUDA not available to torch"
        skipped["torch cuda-graph (cuda)"] = "CUDA not available to torch (CUDA-graph row is CUDA-only)"

    def ort(device: str) -> Any:
        from .backend_onnx import OnnxRuntimeBackend

        return OnnxRuntimeBackend(device=device, seed=seed, num_threads=threads)

    add("onnxruntime (cpu)", lambda: ort("cpu"))
    add("onnxruntime (cuda)", lambda: ort("cuda"))

    def trt(fp16: bool) -> Any:
        from .backend_tensorrt import TensorRTBackend

        return TensorRTBackend(device="cuda", seed=seed, fp16=fp16)

    add("tensorrt fp32 (cuda)", lambda: trt(False))
    add("tensorrt fp16 (cuda)", lambda: trt(True))
    return rows, skipped


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p99/mean/min/max in milliseconds."""
    ms = np.asarray(seconds) * 1e3
    return {
        "n": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def measure(rows: dict[str, Any], obs: np.ndarray, decisions: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per decision per row: warm-up discarded, then round-robin in rotating order."""
    names = list(rows)
    for name in names:
        for i in range(warmup):
            rows[name].decide(obs[i % len(obs)])
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in tqdm(range(decisions), desc="decisions (per row)", file=sys.stderr, disable=None):
        x = obs[i % len(obs)]
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            t0 = time.perf_counter()
            rows[name].decide(x)
            times[name].append(time.perf_counter() - t0)
    return times


def measure_swap(backend: Any, data: bytes, sha: str, obs: np.ndarray, swaps: int) -> dict[str, Any]:
    """Seconds of ``swaps`` ``prepare`` calls (decode, ONNX bytes, compile, check), then the
    decision latency while ``swaps`` more run back to back in a worker thread, as in the policy
    node. Nothing is committed: the running weights stay."""
    timings = []
    for _ in range(swaps):
        t0 = time.perf_counter()
        g = backend.prepare(data, sha).graph
        timings.append(
            {
                "total_s": time.perf_counter() - t0,
                "onnx_bytes_s": g.export_s,
                "compile_and_check_s": g.compile_s,
                "traced": g.traced,
            }
        )
    done = threading.Event()

    def worker() -> None:
        try:
            for _ in range(swaps):
                backend.prepare(data, sha)
        finally:
            done.set()

    during: list[float] = []
    thread = threading.Thread(target=worker, name="weights")
    thread.start()
    i = 0
    while not done.is_set():
        t0 = time.perf_counter()
        backend.decide(obs[i % len(obs)])
        during.append(time.perf_counter() - t0)
        i += 1
    thread.join()
    return {"prepare": timings, "decisions_during_swap": percentiles(during) if during else None}


def markdown(results: dict[str, dict[str, float]], skipped: dict[str, str]) -> str:
    lines = [
        "| backend | decisions | p50 ms | p99 ms | mean ms | min ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['n']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_ms']:.2f} | "
            f"{r['min_ms']:.2f} | {r['max_ms']:.2f} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} | | | | | |")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for mod in ("onnx", "onnxruntime", "tensorrt"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = "not installed"
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=1000, help="timed decisions per backend (>= 1)")
    ap.add_argument("--warmup", type=int, default=50, help="untimed decisions per backend first")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads for torch and onnxruntime")
    ap.add_argument("--swaps", type=int, default=3, help="onnxruntime weight swaps to time (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_policy.json"), help="JSON results")
    args = ap.parse_args(argv)
    if args.decisions < 1 or args.warmup < 0 or args.threads < 1 or args.swaps < 0:
        ap.error("--decisions >= 1, --warmup >= 0, --threads >= 1, --swaps >= 0")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    cfg = ExpoConfig(obs_dim=OBS_DIM, act_dim=ACT_DIM)
    data, sha = policy_weights_bytes(ExpoAgent(cfg, seed=args.seed), version=1)
    # Swaps: new weights, same config (copied into the running graph template), and new weights
    # whose config changes the graph (the editor's beta: the graph is traced again).
    other_cfg = cfg.replace(editor=dataclasses.replace(cfg.editor, beta=cfg.editor.beta * 2))
    swap_bundles = {
        "same config": policy_weights_bytes(ExpoAgent(cfg, seed=args.seed + 1), version=2),
        "config change, re-trace": policy_weights_bytes(ExpoAgent(other_cfg, seed=args.seed + 2), version=3),
    }
    obs = np.random.default_rng(args.seed).standard_normal((64, OBS_DIM)).astype(np.float32)
    load_before = os.getloadavg()

    log.info("building backends (ONNX export, sessions, engines) ...")
    rows, skipped = build_rows(data, sha, args.threads, args.seed)
    for name, why in skipped.items():
        log.info("skipped %s: %s", name, why)
    times = measure(rows, obs, args.decisions, args.warmup)
    results = {name: percentiles(t) for name, t in times.items()}
    swap: dict[str, Any] = {}
    if args.swaps and "onnxruntime (cpu)" in rows:
        for kind, bundle in swap_bundles.items():
            log.info("timing %d onnxruntime weight swaps (%s) ...", args.swaps, kind)
            swap[kind] = measure_swap(rows["onnxruntime (cpu)"], *bundle, obs, args.swaps)
            if swap[kind]["decisions_during_swap"] is not None:
                results[f"onnxruntime (cpu) during swaps ({kind})"] = swap[kind]["decisions_during_swap"]

    sizes = {
        "obs_dim": OBS_DIM,
        "act_dim": ACT_DIM,
        "num_samples": cfg.num_samples,
        "candidates": 2 * cfg.num_samples,
        "diffusion_steps": cfg.diffusion.num_steps,
        "denoiser": f"hidden {cfg.diffusion.hidden_dim}, {cfg.diffusion.num_blocks} blocks of "
        f"{cfg.diffusion.block_dim}, time embedding {cfg.diffusion.time_embed_dim}",
        "editor_hidden": list(cfg.editor.hidden_dims),
        "critics": f"{cfg.critic.num_critics} x {list(cfg.critic.hidden_dims)}, LayerNorm",
    }
    report = {
        "sizes": sizes,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "versions": versions(),
        "results": results,
        "skipped": skipped,
        "swap": swap or None,
    }
    table = markdown(results, skipped)
    print(
        f"EXPO OTF decision latency: obs {OBS_DIM}, act {ACT_DIM}, N={cfg.num_samples} "
        f"({2 * cfg.num_samples} candidates), T={cfg.diffusion.num_steps}, "
        f"{cfg.critic.num_critics} critics; {args.threads} CPU thread(s); {cpu_model()}; "
        f"load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}\n"
    )
    print(table)
    for kind, sw in swap.items():
        tot = [p["total_s"] for p in sw["prepare"]]
        exp = [p["onnx_bytes_s"] for p in sw["prepare"]]
        comp = [p["compile_and_check_s"] for p in sw["prepare"]]
        print(
            f"\nonnxruntime weight swap, {kind} (prepare, worker thread): median {np.median(tot):.3f} s "
            f"= decode + ONNX bytes {np.median(exp):.3f} s + session and check {np.median(comp):.3f} s "
            f"({len(tot)} swaps)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
