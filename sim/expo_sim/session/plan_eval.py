"""Action chunks in virtual time: the realtime bridge's executor rules without ROS or a wall
clock, so what a plan buys under latency and stalls does not depend on the machine's load.

Per control period (50 ms, 5 chunks of 10 ms, :class:`~expo_sim.envs.substep_physics.SubstepPhysics`)
the policy decides on the period's observation at once (the torch backend, the policy node's
safety filter and plan filter: :func:`expo_policy.safety.filter_action`,
:func:`expo_policy.plan.safe_plan`, default :class:`~expo_policy.safety.SafetyLimits`); the
command *arrives* ``latency +- jitter`` ms later (uniform, seeded), plus ``stall_ms`` with
probability ``stall_prob`` (a late decision). At each chunk boundary, as in the bridge
(:class:`expo_sim.ros.bridge_protocol.RealtimeInbox`): the newest arrived command takes effect
unless older than ``max_age_ms`` (dropped, counted) or not newer than the one in effect;
without one, :class:`expo_ros.action_plan.PlanExecutor` (``plan_mode``) may apply a plan row.
Counted per episode: periods without a new command filled from a plan (``plan_periods``) or not
(``holds``), late drops, stalls. Not modelled: the policy's own compute time, DDS, the load.

    python -m expo_sim.session.plan_eval --checkpoint K4BASE --episodes 20 --plan-mode receding \\
        --latency-ms 30 --jitter-ms 10 [--stall-prob 0.2 --stall-ms 120] --out runs/plan_eval
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PERIOD_NS, CHUNKS = 50_000_000, 5
CHUNK_NS = PERIOD_NS // CHUNKS


@dataclass(frozen=True)
class Timing:
    """Arrival delays [ms] and the executor's age bound [ms]."""

    latency_ms: float = 30.0
    jitter_ms: float = 10.0
    stall_prob: float = 0.0
    stall_ms: float = 0.0
    max_age_ms: float = 100.0

    def delay_ns(self, rng: np.random.Generator) -> tuple[int, bool]:
        d = self.latency_ms + (rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0)
        stalled = bool(self.stall_prob) and rng.random() < self.stall_prob
        return round(max(d, 0.0) * 1e6 + (self.stall_ms * 1e6 if stalled else 0.0)), stalled


def run_episode(
    env: Any, backend: Any, plan_cfg: Any, timing: Timing, seed: int, horizon: int, max_steps: int = -1
) -> dict[str, Any]:
    """One episode of ``env`` (reset with ``seed``) under ``timing`` and ``plan_cfg``."""
    from expo_policy.plan import safe_plan
    from expo_policy.safety import SafetyLimits, filter_action, hold_action
    from expo_ros.action_plan import PlanExecutor
    from expo_ros.conversions import Command

    from expo_sim.envs.substep_physics import SubstepPhysics

    limits, rng = SafetyLimits(), np.random.default_rng([seed, 19])
    physics = SubstepPhysics(env, CHUNKS)
    obs, info = env.reset(seed=seed)
    physics.reset()
    executor = PlanExecutor(plan_cfg)
    pending: list[tuple[int, Command]] = []  # (arrival ns, command)
    applied_ns, prev_sent, t = -1, None, 0
    counts = dict(steps=0, plan_periods=0, holds=0, dropped_late=0, dropped_out_of_order=0, stalled=0)
    success = False
    for step in range(horizon):
        ee = np.asarray(info["obs_dict"]["robot0_eef_pos"], dtype=np.float64)
        dec = backend.decide(obs)
        safe = filter_action(dec.action, prev_sent, ee, limits)
        if safe.rejected:
            cmd = Command(hold_action(prev_sent), t, hold=True, step=step)
        else:
            rows = safe_plan(dec.plan, safe.action, ee, limits, max_steps)
            cmd = Command(safe.action, t, plan=rows, plan_period_ns=PERIOD_NS if rows is not None else 0)
        prev_sent = cmd.action
        delay, stalled = timing.delay_ns(rng)
        counts["stalled"] += int(stalled)
        pending.append((t + delay, cmd))
        new = from_plan = False
        out = None
        for i in range(CHUNKS):
            b = t + i * CHUNK_NS
            due = [p for p in pending if p[0] <= b]
            pending = [p for p in pending if p[0] > b]
            fresh = [c for _, c in due if c.stamp_ns > applied_ns]
            counts["dropped_out_of_order"] += len(due) - len(fresh)
            newest = max(fresh, key=lambda c: c.stamp_ns) if fresh else None
            if newest is not None and (b - newest.stamp_ns <= timing.max_age_ms * 1e6 or newest.hold):
                applied_ns, new = newest.stamp_ns, True
                a = executor.command(newest, b)
                physics.set_action(a if a is not None else hold_action(physics.action, 7))
            else:
                counts["dropped_late"] += int(newest is not None)
                a = executor.due(b)
                if a is not None:
                    physics.set_action(np.clip(a, -1.0, 1.0))
                    from_plan = True
            out = physics.chunk()
        t += PERIOD_NS
        obs, _, terminated, truncated, info = out
        counts["steps"] += 1
        if not new:
            counts["plan_periods" if from_plan else "holds"] += 1
        if terminated or truncated:
            success = bool(info["success"])
            break
    return {"seed": seed, "success": success, **counts}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m expo_sim.session.plan_eval", description=__doc__.split("\n")[0]
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="first env seed (+1 per episode)")
    p.add_argument("--horizon", type=int, default=400)
    p.add_argument("--plan-mode", choices=("off", "receding", "ensemble"), default="off")
    p.add_argument("--plan-max-age-ms", type=float, default=200.0)
    p.add_argument("--ensemble-decay", type=float, default=0.01)
    p.add_argument("--plan-max-steps", type=int, default=-1)
    p.add_argument("--latency-ms", type=float, default=30.0)
    p.add_argument("--jitter-ms", type=float, default=10.0)
    p.add_argument("--stall-prob", type=float, default=0.0)
    p.add_argument("--stall-ms", type=float, default=0.0)
    p.add_argument("--max-age-ms", type=float, default=100.0, help="the bridge's max_action_age_ms")
    p.add_argument("--out", type=Path, default=Path("runs/plan_eval"))
    args = p.parse_args(argv)
    from expo_policy.backends import TorchBackend
    from expo_ros.action_plan import PlanConfig

    from expo_sim.envs.robosuite_env import make_env

    plan_cfg = PlanConfig(args.plan_mode, args.plan_max_age_ms, args.ensemble_decay)
    timing = Timing(args.latency_ms, args.jitter_ms, args.stall_prob, args.stall_ms, args.max_age_ms)
    backend = TorchBackend(seed=args.seed, num_threads=1)
    backend.load(args.checkpoint)
    env = make_env("lift", horizon=args.horizon)
    t0, episodes = time.monotonic(), []
    try:
        for ep in range(args.episodes):
            episodes.append(
                run_episode(env, backend, plan_cfg, timing, args.seed + ep, args.horizon, args.plan_max_steps)
            )
            e = episodes[-1]
            print(f"episode {ep}: {'success' if e['success'] else 'failure'} {e}", flush=True)
    finally:
        env.close()
    wins = sum(e["success"] for e in episodes)
    total = {
        k: sum(e[k] for e in episodes)
        for k in ("steps", "plan_periods", "holds", "dropped_late", "dropped_out_of_order", "stalled")
    }
    r = {
        "args": vars(args) | {"out": str(args.out)},
        "successes": wins,
        "episodes": len(episodes),
        **total,
        "wall_s": time.monotonic() - t0,
        "per_episode": episodes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.plan_mode}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(r, indent=2))
    print(f"{args.plan_mode}: {wins}/{len(episodes)} successes, {total} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
