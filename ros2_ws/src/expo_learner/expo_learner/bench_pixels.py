"""What a pixel learner pays per transition: the frozen encoder on one arriving transition (obs and
next obs, every camera) and per transition of a reloaded segment.

    python -m expo_learner.bench_pixels data/pretrain_pixels/pixbase-lift-cpu-....safetensors \
        [--transitions 200] [--threads 1]

Random uint8 frames of the checkpoint's cameras and size; prints one JSON line (ms).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from expo_core.checkpoint import load_pixel_checkpoint
from expo_ros.conversions import image_msg
from expo_ros.transitions import TransitionData

from .pixel_features import PixelFeaturizer


def random_transitions(f: PixelFeaturizer, n: int, seed: int = 0) -> list[TransitionData]:
    """``n`` pixel transitions with random frames of ``f``'s cameras and size."""
    rng = np.random.default_rng(seed)

    def frames(stamp: int) -> tuple:
        return tuple(
            image_msg(rng.integers(0, 256, (f.size, f.size, 3), dtype=np.uint8), stamp, c) for c in f.cameras
        )

    z = np.zeros(f.proprio_dim, np.float32)
    return [
        TransitionData(
            z, np.zeros(7, np.float32), 0.0, z, False, False, 0, i, 0, i + 1, frames(i), False, frames(i + 1)
        )
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m expo_learner.bench_pixels", description=__doc__.split("\n")[0]
    )
    p.add_argument("checkpoint", help="a pixel checkpoint (.safetensors)")
    p.add_argument("--transitions", type=int, default=200, help="transitions timed (default 200)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    agent, _ = load_pixel_checkpoint(args.checkpoint)
    f = PixelFeaturizer(agent)
    ts = random_transitions(f, args.transitions)
    for t in ts[:10]:  # warm-up
        f.featurize(t)
    one = []
    for t in ts:
        t0 = time.perf_counter()
        f.featurize(t)
        one.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    f.featurize_rows([(t, "bench") for t in ts])
    reload_ms = (time.perf_counter() - t0) * 1e3 / len(ts)
    out = {
        "checkpoint": args.checkpoint,
        "cameras": list(f.cameras),
        "image_size": f.size,
        "transitions": len(ts),
        "threads": args.threads,
        "arriving_p50_ms": round(float(np.median(one)), 2),
        "arriving_p99_ms": round(float(np.percentile(one, 99)), 2),
        "reload_ms_per_transition": round(reload_ms, 2),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
