"""How ``bench_policy`` times its rows: per-decision seconds round-robin over every row, their
percentiles, and the onnxruntime weight swap (alone and with decisions running beside it)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
from expo_ros import realtime
from tqdm import tqdm


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


def measure(
    rows: dict[Any, Any],
    obs: Any,
    decisions: int,
    warmup: int,
    limits: dict[Any, int] | None = None,
    row_obs: dict[Any, Any] | None = None,
    pause: float = 0.0,
) -> dict[Any, list[float]]:
    """Seconds per decision per row: warm-up discarded, then round-robin in rotating order.
    ``limits``: rows timed for fewer rounds than ``decisions`` (they drop out afterwards).
    ``row_obs``: rows that take other observations than ``obs`` (the pixel rows). ``pause``: after
    each timed decision, sleep this fraction of its time (a control loop idles between decisions;
    a SCHED_FIFO thread that never sleeps is throttled by the kernel, see ``RT_PAUSE``)."""
    names = list(rows)
    limits = limits or {}
    row_obs = row_obs or {}
    for name in names:
        o = row_obs.get(name, obs)
        for i in range(warmup):
            rows[name].decide(o[i % len(o)])
    times: dict[Any, list[float]] = {n: [] for n in names}
    for i in tqdm(range(decisions), desc="rounds", file=sys.stderr, disable=None):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            if i >= limits.get(name, decisions):
                continue
            o = row_obs.get(name, obs)
            x = o[i % len(o)]
            t0 = time.perf_counter()
            rows[name].decide(x)
            dt = time.perf_counter() - t0
            times[name].append(dt)
            if pause:
                time.sleep(pause * dt)
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
        realtime.set_normal()  # as the node's weights worker: never above the decisions
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
