"""Learner throughput: env steps per second of EXPO learning at UTD 20, published network sizes,
batch 256 — the faithful per-minibatch TD path against the fast paths, measured in one run.

    python -m expo_core.bench.learner_throughput [--env-steps 3] [--utd 20] [--batch-size 256]
        [--ddim 5 2 1] [--bf16 | --no-bf16] [--threads 1 2] [--device cpu|cuda]
        [--out runs/bench_learner.json]

Each row times `--env-steps` agent.update() calls (after one untimed warm-up call) on random
batches of the robomimic Lift shapes (obs 19, action 7); data content does not affect the cost.
Rows are interleaved round-robin (one update of each per round) so that load from other
processes hits all rows alike; the table gives the fastest and the median update per row, and
the ratio uses the fastest. Rows:
  faithful          per-minibatch OTF targets, full DDPM (T=10) for target samples (reference)
  batched           all UTD minibatches' targets in one call (cache-sized chunks on CPU, one
                    chunk on CUDA), full DDPM
  batched+ddim-k    the same with k DDIM steps for the target samples
  ...+bf16          the row's targets in bfloat16 (`td_precision`; not exact, see ExpoConfig);
                    left out with --no-bf16
  ...+bf16-critic   a DDIM row's targets and its critic steps in bfloat16 (`critic_precision`
                    too; not exact either); left out with --no-bf16
The goal line (issue 15): the best fast row at >= 10x the faithful row's env steps/s, 5x the
floor. The JSON (`--out`) has every timing, the machine, the device and the load average
(1-minute) before and after each round.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ..agent import ExpoAgent
from ..batch import Batch
from ..config import ExpoConfig

GOAL, FLOOR = 10.0, 5.0  # issue 15: fast path vs faithful env steps/s at UTD 20


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    cfgs: list[ExpoConfig], env_steps: int, device: str | torch.device = "cpu", loads: list | None = None
) -> list[list[float]]:
    """Seconds per env step (one agent.update with cfg.utd critic steps), `env_steps` samples per
    config, taken round-robin across configs. `loads`, if given, receives the 1-minute load
    average before and after each round."""
    device = torch.device(device)
    runs = []
    for cfg in cfgs:
        agent, it = ExpoAgent(cfg, device=device, seed=0), random_batches(cfg)
        agent.update(it)  # warm-up: allocator, lazy init, kernels
        runs.append((agent, it))
    times: list[list[float]] = [[] for _ in cfgs]
    for _ in range(env_steps):
        before = os.getloadavg()[0]
        for i, (agent, it) in enumerate(runs):
            _sync(device)
            t0 = time.perf_counter()
            agent.update(it)
            _sync(device)
            times[i].append(time.perf_counter() - t0)
        if loads is not None:
            loads.append((before, os.getloadavg()[0]))
    return times


def goal_line(names: list[str], ratios: list[float], setting: str) -> str:
    """The issue's goal, judged on the best fast row (every row but the faithful one).
    `setting` names what was run (the goal is stated for UTD 20, batch 256, published sizes)."""
    best = max(range(1, len(names)), key=lambda i: ratios[i])
    r = ratios[best]
    verdict = "MET" if r >= GOAL else "floor met, goal not met" if r >= FLOOR else "NOT MET (below the floor)"
    return (
        f"goal: fast path >= {GOAL:.0f}x the faithful path's env steps/s (floor {FLOOR:.0f}x), "
        f"{setting}: best {names[best]} {r:.1f}x -> {verdict}"
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env-steps", type=int, default=3, help="timed env steps per row")
    p.add_argument("--utd", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--obs-dim", type=int, default=19)
    p.add_argument("--act-dim", type=int, default=7)
    p.add_argument("--ddim", type=int, nargs="*", default=[5, 2, 1], help="DDIM step counts for fast rows")
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="torch thread counts, one table each (0 = default)",
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time each fast row with td_precision=bfloat16, each DDIM row also with "
        "critic_precision=bfloat16 (default on)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", default="runs/bench_learner.json", help="JSON results ('' for none)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    base = ExpoConfig(obs_dim=args.obs_dim, act_dim=args.act_dim, utd=args.utd, batch_size=args.batch_size)
    chunk = 0 if device.type == "cuda" else base.td_chunk_rows  # one chunk fills a GPU
    rows = [
        ("faithful", base.replace(batched_td=False, td_sampling_steps=0, td_chunk_rows=0)),
        ("batched", base.replace(batched_td=True, td_sampling_steps=0, td_chunk_rows=chunk)),
    ]
    rows += [
        (f"batched+ddim-{k}", base.replace(batched_td=True, td_sampling_steps=k, td_chunk_rows=chunk))
        for k in args.ddim
    ]
    if args.bf16:
        low = [(f"{name}+bf16", cfg.replace(td_precision="bfloat16")) for name, cfg in rows[1:]]
        rows += low  # and the DDIM rows with the critic steps in bfloat16 as well:
        rows += [
            (f"{name}-critic", cfg.replace(critic_precision="bfloat16"))
            for name, cfg in low
            if cfg.td_sampling_steps > 0
        ]
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result: dict = dict(
        benchmark="expo_core.bench.learner_throughput",
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        device=dev_name,
        torch=torch.__version__,
        utd=args.utd,
        batch_size=args.batch_size,
        num_samples=base.num_samples,
        diffusion_steps=base.diffusion.num_steps,
        num_critics=base.critic.num_critics,
        obs_dim=args.obs_dim,
        act_dim=args.act_dim,
        env_steps_per_row=args.env_steps,
        runs=[],
    )
    print(
        f"EXPO learner throughput: UTD {args.utd}, batch {args.batch_size}, N={base.num_samples}, "
        f"T={base.diffusion.num_steps}, {base.critic.num_critics} critics, "
        f"obs {args.obs_dim}, act {args.act_dim}, device {dev_name}"
    )
    for threads in args.threads:
        if threads:
            torch.set_num_threads(threads)
        loads: list = []
        times = measure([cfg for _, cfg in rows], args.env_steps, device, loads)
        print(
            f"machine: {result['machine']}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{args.env_steps} timed env steps per row, load average (1 min) during the run "
            f"{min(min(x) for x in loads):.2f}-{max(max(x) for x in loads):.2f}"
        )
        print(
            f"{'path':<28} {'s/env step (min)':>17} {'(median)':>9} {'env steps/s':>12} {'vs faithful':>12}"
        )
        ref = min(times[0])
        ratios, run_rows = [], []
        for (name, cfg), ts in zip(rows, times):
            best, med = min(ts), statistics.median(ts)
            ratios.append(ref / best)
            print(f"{name:<28} {best:>17.3f} {med:>9.3f} {1 / best:>12.3f} {ref / best:>11.1f}x")
            run_rows.append(
                dict(
                    name=name,
                    seconds=ts,
                    min_s=best,
                    median_s=med,
                    env_steps_per_s=1 / best,
                    vs_faithful=ref / best,
                    batched_td=cfg.batched_td,
                    td_sampling_steps=cfg.td_sampling_steps,
                    td_chunk_rows=cfg.td_chunk_rows,
                    td_precision=cfg.td_precision,
                    critic_precision=cfg.critic_precision,
                )
            )
        setting = f"UTD {args.utd}, batch {args.batch_size}, {dev_name}, {torch.get_num_threads()} threads"
        names = [n for n, _ in rows]
        line = goal_line(names, ratios, setting)
        print(line, flush=True)
        exact = [
            i
            for i, (_, cfg) in enumerate(rows)
            if cfg.td_precision == "float32" and cfg.critic_precision == "float32"
        ]
        if len(exact) < len(rows):  # the same goal on the float32 (exact) rows alone
            exact_line = goal_line([names[i] for i in exact], [ratios[i] for i in exact], setting)
            print(exact_line.replace("goal:", "goal, float32 rows only:", 1), flush=True)
        result["runs"].append(
            dict(threads=torch.get_num_threads(), rows=run_rows, goal=line, loadavg_per_round=loads)
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
