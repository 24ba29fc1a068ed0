"""Learner throughput: env steps per second of EXPO learning at UTD 20, published network sizes,
batch 256 — the faithful per-minibatch TD path against the fast paths, measured in one run.

    python -m expo_core.bench.learner_throughput [--env-steps 2] [--utd 20] [--batch-size 256]

Each row times `--env-steps` agent.update() calls (after one untimed warm-up call) on random
batches of the robomimic Lift shapes (obs 19, action 7); data content does not affect the cost.
Rows are interleaved round-robin (one update of each per round) so that load from other
processes hits all rows alike; the table gives the fastest and the median update per row, and
the ratio uses the fastest. Rows:
  faithful          per-minibatch OTF targets, full DDPM (T=10) for target samples (reference)
  batched           all UTD minibatches' targets in one call (cache-sized chunks), full DDPM
  batched+ddim-k    the same with k DDIM steps for the target samples
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time

import torch

from ..agent import ExpoAgent
from ..batch import Batch
from ..config import ExpoConfig


def random_batches(cfg: ExpoConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in itertools.count():
        B = cfg.batch_size
        yield Batch(
            torch.randn(B, cfg.obs_dim, generator=g),
            torch.rand(B, cfg.act_dim, generator=g) * 2 - 1,
            (torch.rand(B, generator=g) < 0.05).float(),
            torch.randn(B, cfg.obs_dim, generator=g),
            (torch.rand(B, generator=g) < 0.05).float(),
            torch.zeros(B),
        )


def measure(cfgs: list[ExpoConfig], env_steps: int) -> list[list[float]]:
    """Seconds per env step (one agent.update with cfg.utd critic steps), `env_steps` samples per
    config, taken round-robin across configs."""
    runs = []
    for cfg in cfgs:
        agent, it = ExpoAgent(cfg, seed=0), random_batches(cfg)
        agent.update(it)  # warm-up: allocator, lazy init
        runs.append((agent, it))
    times: list[list[float]] = [[] for _ in cfgs]
    for _ in range(env_steps):
        for i, (agent, it) in enumerate(runs):
            t0 = time.perf_counter()
            agent.update(it)
            times[i].append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env-steps", type=int, default=3, help="timed env steps per row")
    p.add_argument("--utd", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--obs-dim", type=int, default=19)
    p.add_argument("--act-dim", type=int, default=7)
    p.add_argument("--ddim", type=int, nargs="*", default=[5, 2], help="DDIM step counts for fast rows")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = ExpoConfig(obs_dim=args.obs_dim, act_dim=args.act_dim, utd=args.utd, batch_size=args.batch_size)
    rows = [
        ("faithful", base.replace(batched_td=False, td_sampling_steps=0, td_chunk_rows=0)),
        ("batched", base.replace(batched_td=True, td_sampling_steps=0)),
    ]
    rows += [(f"batched+ddim-{k}", base.replace(batched_td=True, td_sampling_steps=k)) for k in args.ddim]
    print(
        f"EXPO learner throughput: UTD {args.utd}, batch {args.batch_size}, N={base.num_samples}, "
        f"T={base.diffusion.num_steps}, {base.critic.num_critics} critics, "
        f"obs {args.obs_dim}, act {args.act_dim}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.env_steps} timed env steps per row"
    )
    times = measure([cfg for _, cfg in rows], args.env_steps)
    print(f"{'path':<18} {'s/env step (min)':>17} {'(median)':>9} {'env steps/s':>12} {'vs faithful':>12}")
    ref = min(times[0])
    for (name, _), ts in zip(rows, times):
        best, med = min(ts), statistics.median(ts)
        print(f"{name:<18} {best:>17.2f} {med:>9.2f} {1 / best:>12.3f} {ref / best:>11.1f}x")


if __name__ == "__main__":
    main()
