"""Micro-benchmark of the fast inference paths against the reference computations
(`expo_core.bench.reference`, the code as it was before issue 15), before/after in one run.

    python -m expo_core.bench.fast_paths [--threads 1 2] [--device cpu|cuda] [--out FILE.json]

Published sizes (denoiser 256/1024 x3, T=10; 10 critics 256x3 with LayerNorm; editor 256x3),
obs 19 / action 7 (robomimic Lift), N=8 (16 candidates), random weights. Rows:
  critic TD        256 states x 16 candidates, a random 2 of 10 target critics (one TD minibatch):
                   reference `forward_grouped` on repeated observations vs `q_candidates_grouped`
  critic all       the same rows through all 10 critics (the acting rule's ensemble mean)
  editor TD        256 x 8 base actions edited: `forward` (with log-prob) vs `act`
  sample TD        256 states x 8 samples, DDPM T=10, chunks of 1024 rows (one TD minibatch's
                   target actions; `--ddim` adds rows with that many DDIM steps)
  decision         one OTF decision, batch 1: reference pieces under no_grad vs `fast_decide`
                   (fast pieces under inference_mode); then the fast decision under no_grad vs
                   inference_mode; on CUDA also `fast_decide` as a CUDA graph
  critic TD, fast  (CPU) the two forms of `q_candidates`: batched bmm vs one member at a time
Each row runs the reference and the fast path alternately (round-robin, so load from other
processes hits both alike), checks that they agree on identical inputs, and reports min and
median milliseconds and their ratio, with the load average before and after the row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ExpoConfig
from ..critic import CriticEnsemble
from ..diffusion import DiffusionBase
from ..editor import Editor
from ..policy import ExpoPolicy
from . import reference


@torch.inference_mode()
def fast_decide(
    base: DiffusionBase,
    editor: Editor,
    critic: CriticEnsemble,
    nobs: torch.Tensor,
    base_noise: torch.Tensor,
    edit_noise: torch.Tensor | None,
    steps: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`reference.decide` from the fast pieces: the integration recipe for an OTF decision
    (ensemble-mean rule). nobs (B, o) normalized; base_noise `base.noise_shape(B, N, steps)`;
    edit_noise (B, N, d) or None for the editor's mean -> (action (B, d), candidates (B, 2N, d),
    q (B, 2N))."""
    N = base_noise.shape[2]
    base_actions = base.sample(nobs, N, noise=base_noise, steps=steps)
    edited = editor.act(nobs, base_actions, noise=edit_noise, deterministic=edit_noise is None)
    cands = torch.cat([base_actions, edited], 1)
    q = critic.q_candidates(nobs, cands).mean(0)
    index = q.argmax(-1)
    return cands[torch.arange(cands.shape[0], device=cands.device), index], cands, q


@dataclass
class Case:
    name: str
    reference: Callable[[], torch.Tensor]
    fast: Callable[[], torch.Tensor]
    repeats: int  # timed calls per round and path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - t0) * 1e3


def _max_diff(a: object, b: object) -> float:
    if isinstance(a, tuple):
        return max(_max_diff(x, y) for x, y in zip(a, b))
    return (a.float() - b.float().reshape(a.shape)).abs().max().item()


def make_cases(cfg: ExpoConfig, device: torch.device, ddim: list[int], seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    policy = ExpoPolicy(cfg).to(device).eval()
    o, d, N = cfg.obs_dim, cfg.act_dim, cfg.num_samples
    K, B = 2 * N, cfg.batch_size

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    base, editor, critic = policy.base, policy.editor, policy.critic
    next_obs, cands = rand(B, o), (torch.rand(B, K, d, generator=g) * 2 - 1).to(device)
    members = torch.randperm(cfg.critic.num_critics, generator=g)[: cfg.critic.num_min].to(device)
    obs_rep = next_obs[:, None, :].expand(B, K, o)
    base_actions, edit_noise = cands[:, :N], rand(B, N, d)
    chunk = 0 if device.type == "cuda" else cfg.td_chunk_rows
    per = B if chunk <= 0 else max(1, chunk // N)

    def ref_sample(noise: torch.Tensor, steps: int) -> torch.Tensor:
        parts = [
            reference.sample(base, next_obs[s : s + per], N, noise[:, s : s + per], steps)
            for s in range(0, B, per)
        ]
        return torch.cat(parts)

    cases = [
        Case(
            f"critic TD: {B}x{K} rows, {cfg.critic.num_min} of {cfg.critic.num_critics} critics",
            lambda: reference.critic_forward_grouped(
                critic, obs_rep.reshape(1, B * K, o), cands.reshape(1, B * K, d), members[None]
            ),
            lambda: critic.q_candidates_grouped(next_obs[None], cands[None], members[None]),
            3,
        ),
        Case(
            f"critic all: {B}x{K} rows, {cfg.critic.num_critics} critics",
            lambda: reference.critic_forward(critic, obs_rep, cands),
            lambda: critic.q_candidates(next_obs, cands),
            1,
        ),
        Case(
            f"editor TD: {B}x{N} edits",
            lambda: reference.edit(editor, next_obs, base_actions, edit_noise, False),
            lambda: editor.act(next_obs, base_actions, noise=edit_noise),
            5,
        ),
    ]
    for steps in [0, *ddim]:
        noise = rand(*base.noise_shape(B, N, steps))
        label = f"DDPM T={cfg.diffusion.num_steps}" if steps == 0 else f"DDIM {steps} steps"
        cases.append(
            Case(
                f"sample TD: {B}x{N}, {label}, chunks {chunk or 'none'}",
                lambda noise=noise, steps=steps: ref_sample(noise, steps),
                lambda noise=noise, steps=steps: base.sample(
                    next_obs, N, noise=noise, steps=steps, chunk_rows=chunk
                ),
                1,
            )
        )
    obs1 = rand(1, o)
    noise1, edit1 = rand(*base.noise_shape(1, N, cfg.act_sampling_steps)), rand(1, N, d)
    steps1 = cfg.act_sampling_steps
    cases.append(
        Case(
            f"decision: batch 1, N={N}, T={cfg.diffusion.num_steps}",
            lambda: reference.decide(base, editor, critic, obs1, noise1, edit1, steps1),
            lambda: fast_decide(base, editor, critic, obs1, noise1, edit1, steps1),
            20,
        )
    )
    plain = fast_decide.__wrapped__  # fast_decide without its inference_mode decorator

    def under(mode: type) -> Callable[[], tuple[torch.Tensor, ...]]:
        def call() -> tuple[torch.Tensor, ...]:
            with mode():
                return plain(base, editor, critic, obs1, noise1, edit1, steps1)

        return call

    cases.append(
        Case(
            "decision, fast: no_grad -> inference_mode", under(torch.no_grad), under(torch.inference_mode), 20
        )
    )
    if device.type == "cuda":
        cases.append(_graph_case(cases[-2], base, editor, critic, obs1, noise1, edit1, steps1))
    else:  # the CPU heuristic of q_candidates: batched bmm (as on GPUs) -> one member at a time

        def critic_td(loop_min_rows: int) -> Callable[[], torch.Tensor]:
            def call() -> torch.Tensor:
                critic.loop_min_rows = loop_min_rows
                try:
                    return critic.q_candidates_grouped(next_obs[None], cands[None], members[None])
                finally:
                    critic.loop_min_rows = CriticEnsemble.loop_min_rows

            return call

        cases.append(
            Case(
                f"critic TD, fast: batched bmm -> per-member ({B * K} rows)",
                critic_td(10**9),
                critic_td(0),
                3,
            )
        )
    return cases


def _graph_case(
    eager: Case,
    base: DiffusionBase,
    editor: Editor,
    critic: CriticEnsemble,
    obs1: torch.Tensor,
    noise1: torch.Tensor,
    edit1: torch.Tensor,
    steps: int,
) -> Case:
    """The fast decision captured once as a CUDA graph and replayed (static inputs)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fast_decide(base, editor, critic, obs1, noise1, edit1, steps)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fast_decide(base, editor, critic, obs1, noise1, edit1, steps)

    def replay() -> tuple[torch.Tensor, ...]:
        graph.replay()
        return out

    return Case(eager.name + ", CUDA graph (fast)", eager.reference, replay, eager.repeats)


def run_case(case: Case, device: torch.device, rounds: int) -> dict:
    ref_out, fast_out = case.reference(), case.fast()  # warm-up and the exactness check
    diff = _max_diff(ref_out, fast_out)
    load_before = os.getloadavg()
    ref_ms: list[float] = []
    fast_ms: list[float] = []
    for _ in range(rounds):
        for _ in range(case.repeats):
            ref_ms.append(_time(case.reference, device))
        for _ in range(case.repeats):
            fast_ms.append(_time(case.fast, device))
    row = dict(
        name=case.name,
        max_abs_diff=diff,
        reference_ms=dict(min=min(ref_ms), median=statistics.median(ref_ms), p99=_p99(ref_ms)),
        fast_ms=dict(min=min(fast_ms), median=statistics.median(fast_ms), p99=_p99(fast_ms)),
        loadavg_before=load_before,
        loadavg_after=os.getloadavg(),
    )
    row["speedup_min"] = row["reference_ms"]["min"] / row["fast_ms"]["min"]
    row["speedup_median"] = row["reference_ms"]["median"] / row["fast_ms"]["median"]
    return row


def _p99(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (CPU)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per row")
    p.add_argument("--ddim", type=int, nargs="*", default=[2], help="extra sampling rows with DDIM steps")
    p.add_argument("--out", default="runs/bench_fast_paths.json", help="JSON results ('' for none)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cfg = ExpoConfig(obs_dim=19, act_dim=7)
    threads = args.threads if device.type == "cpu" else [torch.get_num_threads()]
    result: dict = dict(
        benchmark="expo_core.bench.fast_paths",
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        config=dict(
            obs_dim=cfg.obs_dim, act_dim=cfg.act_dim, num_samples=cfg.num_samples, batch=cfg.batch_size
        ),
        rows=[],
    )
    print(
        f"fast paths vs reference: published sizes, N={cfg.num_samples}, {result['device']}, "
        f"torch {torch.__version__}"
    )
    print(
        f"{'row':<58} {'thr':>3} {'ref ms':>9} {'fast ms':>9} {'x (min)':>8} {'x (med)':>8} "
        f"{'max diff':>9} load"
    )
    for n in threads:
        torch.set_num_threads(n)
        for case in make_cases(cfg, device, args.ddim):
            row = run_case(case, device, args.rounds) | {"threads": n}
            result["rows"].append(row)
            r, f = row["reference_ms"], row["fast_ms"]
            print(
                f"{row['name']:<58} {n:>3} {r['min']:>9.3f} {f['min']:>9.3f} {row['speedup_min']:>7.2f}x "
                f"{row['speedup_median']:>7.2f}x {row['max_abs_diff']:>9.1e} "
                f"{row['loadavg_before'][0]:.2f}->{row['loadavg_after'][0]:.2f}",
                flush=True,
            )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
