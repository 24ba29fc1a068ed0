"""Closed-loop latency over ROS (``make bench-ros``): how much the graph adds to inference.

For each policy size (a preset's networks, randomly initialized: timing does not depend on the
weights), one lockstep session of the sim graph (sim bridge + policy node, separate processes,
Fast DDS on loopback) runs until at least ``--steps`` env steps are done, and three latencies are
reported side by side, each as p50 / p99 over every step of the run:

- inference: the OTF selection alone (``OtfDecision.inference_latency_ms``, one per decision);
- policy loop: observation set complete -> action published, inside the policy node
  (diagnostics ``latency_*``, the node's rolling window of its last 1000 decisions);
- obs -> action: the bridge publishes an observation -> the bridge receives the action for it
  (diagnostics ``obs_to_action_*``, wall clock, every step): the closed loop through DDS.

Each row also records the load average (1, 5, 15 min) before and after its session
(``loadavg_before`` / ``loadavg_after`` in the JSON, the 1-minute one in the table).

``obs -> action`` minus ``inference`` is the ROS overhead (serialization, transport, executor
wake-ups, observation assembly, safety filter) that a user pays per control step. The goal line
(issue 15) compares the closed loop with the decision itself: obs -> action p99 < inference p99
+ 2 ms, per size.

The policy node runs ``--backend`` (default ``auto``: what the node picks here, on a CPU the
onnxruntime lean graph; ``torch`` for eager torch, as the rows measured before issue 15), with
the node's one intra-op thread; ``--rt-priority P`` sets the node's ``rt_priority`` (its control
thread at SCHED_FIFO P; the sim bridge and DDS threads stay at normal priority).

``--pixels cpu published`` adds one row per encoder preset: a random pixel policy (that image
encoder in front of each ``--presets`` size's networks, frozen, as ``make sim OBS=pixels`` acts)
in a session whose bridge renders both 84x84 cameras and whose policy node decides from the
frames and the base-frame proprioception (rows named ``<preset>+pixels-<encoder>``).

Run: ``python -m expo_sim.ros.bench_ros [--presets cpu published] [--steps 1000]
[--pixels cpu published] [--backend auto|torch|onnxruntime] [--rt-priority P]
[--executor single|events] [--sched-fifo P] [--render-parallel] [--no-gc-freeze] [--trace DIR]
[--out DIR]``. ``--render-parallel`` sets the
bridge's ``observation.render_parallel`` for the pixel rows (the goal lines say so).
``--executor`` picks the rclpy executor of every node of the graph (``EXPO_ROS_EXECUTOR``,
:mod:`expo_ros.node_main`): ``events`` (the default, rclpy's EventsExecutor) or ``single`` (the
SingleThreadedExecutor); the goal lines name it.

``--sched-fifo P`` runs the graph at SCHED_FIFO priority P: the session starts ``ros2 launch``
at P, so the bridge, the policy node and their threads (Fast DDS's included; not the policy's
weights worker, which stays at normal scheduling by design) inherit it,
while the bench process and its monitor stay at normal scheduling (on two cores, a monitor at
the graph's priority would delay it). It models a robot PC where the control graph runs real
time; it needs the permission to (root, or an rtprio limit). Each row records the graph's
scheduling (``graph_sched``: ``fifo P``, or what the bench itself runs at, ``normal`` unless it
was started under ``chrt``), and the goal lines name anything but normal.

Each row also reports the policy node's garbage-collector pauses over its session (diagnostics
``gc_collections``, ``gc_pause_max_ms``: :mod:`expo_ros.heap`); ``--no-gc-freeze`` turns the
node's ``gc_freeze`` off (its heap is then not frozen at configure), named in the goal lines.

``--trace DIR`` has the bridge and the policy node trace every step (:mod:`expo_ros.step_trace`,
``EXPO_STEP_TRACE=DIR/<row>``) and prints each row's split of a step
(:mod:`expo_sim.ros.trace_report`: the hops, the node's own work, inference); the JSON gets it as
``step_trace``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    ("inference", "inference_p50_ms", "inference_p99_ms"),
    ("policy loop", "policy_latency_p50_ms", "policy_latency_p99_ms"),
    ("obs -> action", "obs_to_action_p50_ms", "obs_to_action_p99_ms"),
)


def random_policy(preset: str, task: str, out_dir: Path, seed: int = 0, pixels: str | None = None) -> Path:
    """A freshly initialized agent of ``preset``'s sizes for ``task``, saved as a checkpoint;
    with ``pixels`` (an encoder preset) a pixel agent, that encoder frozen in front."""
    from expo_core.agent import ExpoAgent
    from expo_core.checkpoint import save_checkpoint
    from expo_core.presets import preset_config
    from expo_core.spec import FRANKA_ACTION_SPEC, task_obs_spec

    if pixels is None:
        cfg = preset_config(preset, task_obs_spec(task).dim, FRANKA_ACTION_SPEC.dim)
        path = out_dir / f"random-{preset}"
        save_checkpoint(path, ExpoAgent(cfg, seed=seed))
        return path.with_suffix(".safetensors")
    from expo_core.pixel_agent import PixelAgent, encoder_preset, pixel_expo_config

    spec = task_obs_spec(task, "pixels")
    enc = encoder_preset(pixels)
    cfg = pixel_expo_config(preset_config(preset, spec.dim, FRANKA_ACTION_SPEC.dim), enc, spec)
    agent = PixelAgent(cfg, enc, spec, seed=seed)
    agent.freeze_encoder()
    path = out_dir / f"random-{preset}-pixels-{pixels}"
    save_checkpoint(path, agent)
    return path.with_suffix(".safetensors")


#: obs -> action p99 may exceed the decision's p99 by at most this much (issue 15, item 3)
GOAL_MARGIN_MS = 2.0


def random_policy_session(
    preset: str,
    steps: int,
    tmp: Path,
    pixels: str | None = None,
    backend: str = "auto",
    realtime: bool = False,
    task: str = "lift",
    horizon: int = 400,
    domain_id: int | None = None,
    graph_overrides: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    sched_fifo: int = 0,
    rt_priority: int = 0,
) -> dict[str, Any]:
    """One session of the sim graph with :func:`random_policy`'s agent (``pixels``: a pixel
    agent deciding from the cameras) until at least ``steps`` env steps are done; the session's
    summary plus the row's ``preset`` name, ``pixels_encoder`` and ``backend``. Shared by this
    bench (lockstep) and :mod:`expo_sim.ros.bench_realtime`."""
    from expo_sim.session.run import SessionConfig, run_session

    cfg = SessionConfig(
        obs="pixels" if pixels else "state",
        task=task,
        episodes=math.ceil(steps / horizon) + 1,  # a success ends an episode early: one to spare
        checkpoint=random_policy(preset, task, tmp, pixels=pixels),
        horizon=horizon,
        realtime=realtime,
        domain_id=domain_id,
        out=tmp / "sessions",
        backend=backend,
        graph_overrides=graph_overrides or {},
        sched_fifo=sched_fifo,
        rt_priority=rt_priority,
    )
    row = run_session(cfg, progress=progress)
    row.update(
        preset=preset if pixels is None else f"{preset}+pixels-{pixels}",
        pixels_encoder=pixels,
        backend=backend,
    )
    return row


def bench_preset(
    preset: str,
    steps: int,
    task: str,
    horizon: int,
    tmp: Path,
    domain_id: int | None,
    backend: str = "auto",
    rt_priority: int = 0,
    pixels: str | None = None,
    render_parallel: bool = False,
    sched_fifo: int = 0,
    gc_freeze: bool = True,
) -> dict:
    render_parallel = render_parallel and pixels is not None  # a state row renders nothing
    s = random_policy_session(
        preset,
        steps,
        tmp,
        pixels,
        backend,
        task=task,
        horizon=horizon,
        domain_id=domain_id,
        graph_overrides=_overrides(render_parallel, gc_freeze),
        sched_fifo=sched_fifo,
        rt_priority=rt_priority,
    )
    s["policy_rt_priority"] = rt_priority
    s["render_parallel"] = render_parallel
    s["gc_freeze"] = gc_freeze
    s["ros_overhead_p50_ms"] = s["obs_to_action_p50_ms"] - s["inference_p50_ms"]
    s["ros_overhead_p99_ms"] = s["obs_to_action_p99_ms"] - s["inference_p99_ms"]
    s["goal_obs_to_action_p99_met"] = s["obs_to_action_p99_ms"] < s["inference_p99_ms"] + GOAL_MARGIN_MS
    return s


def _overrides(render_parallel: bool, gc_freeze: bool = True) -> dict[str, dict[str, Any]]:
    """The graph's parameters this bench sets beyond the session's own (the policy's
    ``rt_priority`` goes through :class:`SessionConfig`, which probes it before any work)."""
    out: dict[str, dict[str, Any]] = {}
    if not gc_freeze:
        out["policy_node"] = {"gc_freeze": False}
    if render_parallel:
        out["sim_bridge"] = {"observation.render_parallel": True}
    return out


def _rt_note(row: dict[str, Any]) -> str:
    note = f", policy rt_priority {row['policy_rt_priority']}" if row.get("policy_rt_priority") else ""
    if row.get("graph_sched", "normal") != "normal":
        note += f", graph scheduling {row['graph_sched']}"
    if row.get("render_parallel"):
        note += ", cameras rendered in parallel"
    if row.get("gc_freeze") is False:
        note += ", policy gc_freeze off"
    if row.get("executor") == "single":
        note += ", SingleThreadedExecutor"
    elif row.get("executor") == "events":
        note += ", EventsExecutor"
    return note


def goal_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per size: obs -> action p99 against the decision's p99 + GOAL_MARGIN_MS."""
    return [
        f"goal ({r['preset']}, backend {r.get('backend', '?')}"
        f"{_rt_note(r)}): "
        f"obs -> action p99 "
        f"{r['obs_to_action_p99_ms']:.2f} ms < inference p99 {r['inference_p99_ms']:.2f} + "
        f"{GOAL_MARGIN_MS:.0f} ms -> {'met' if r['goal_obs_to_action_p99_met'] else 'NOT met'}"
        for r in rows
    ]


def load_cell(row: dict[str, Any]) -> str:
    """The table cell of a row's 1-minute load average, before -> after its session."""
    before, after = row.get("loadavg_before"), row.get("loadavg_after")
    if before is None or after is None:
        return "-"
    return f"{before[0]:.2f} -> {after[0]:.2f}"


def gc_cell(row: dict[str, Any]) -> str:
    """The table cell of the policy node's garbage-collector pauses over its session."""
    n, longest = row.get("policy_gc_collections", math.nan), row.get("policy_gc_pause_max_ms", math.nan)
    if not (math.isfinite(n) and math.isfinite(longest)):
        return "-"
    return f"{int(n)}, {longest:.2f}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    head = ["policy", "steps"] + [f"{name} p50 / p99 [ms]" for name, _, _ in COLUMNS]
    head += ["ROS overhead p50 / p99 [ms]", "policy GC pauses: n, max [ms]", "env steps/s"]
    head += ["load (1 min) before -> after"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["preset"], f"{int(r['obs_to_action_count'])}"]
        cells += [f"{r[a]:.2f} / {r[b]:.2f}" for _, a, b in COLUMNS]
        cells += [f"{r['ros_overhead_p50_ms']:.2f} / {r['ros_overhead_p99_ms']:.2f}", gc_cell(r)]
        cells += [f"{r['env_steps_per_s']:.1f}", load_cell(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bench_rows(args: argparse.Namespace, executor: str) -> list[dict[str, Any]] | None:
    """One session per size (and pixel encoder); None (and why, on stderr) when one fails."""
    from expo_ros.realtime import describe
    from expo_ros.step_trace import ENV as TRACE_ENV

    from expo_sim.ros import trace_report

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="expo-bench-ros-") as tmp:
        for preset, pixels in [(p, None) for p in args.presets] + [
            (p, e) for e in args.pixels for p in args.presets
        ]:
            name = preset if pixels is None else f"{preset}+pixels-{pixels}"
            load_before = os.getloadavg()
            print(
                f"== {name}: lockstep session of >= {args.steps} env steps (load average "
                f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f})",
                flush=True,
            )
            before = os.environ.get(TRACE_ENV)
            if args.trace is not None:  # the launched nodes inherit it
                os.environ[TRACE_ENV] = str(args.trace / name)
            try:
                row = bench_preset(
                    preset,
                    args.steps,
                    args.task,
                    args.horizon,
                    Path(tmp),
                    args.domain_id,
                    args.backend,
                    args.rt_priority,
                    pixels,
                    args.render_parallel,
                    sched_fifo=args.sched_fifo,
                    gc_freeze=not args.no_gc_freeze,
                )
            finally:  # the bench's own environment as it was
                if before is None:
                    os.environ.pop(TRACE_ENV, None)
                else:
                    os.environ[TRACE_ENV] = before
            row["executor"] = executor
            row["graph_sched"] = f"fifo {args.sched_fifo}" if args.sched_fifo else describe()
            row["loadavg_before"], row["loadavg_after"] = load_before, os.getloadavg()
            if row["error"] or row["obs_to_action_count"] < args.steps:
                print(f"bench-ros: {name} failed: {row['error'] or 'too few steps'}", file=sys.stderr)
                return None
            if args.trace is not None:
                try:
                    row["step_trace"] = trace_report.report(args.trace / name)
                except (OSError, ValueError) as e:
                    print(f"bench-ros: {name}: step trace: {e}", file=sys.stderr)
                    return None
                print(trace_report.markdown_table(row["step_trace"]), flush=True)
            rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from expo_core.presets import PRESETS
    from expo_ros.node_main import EXECUTOR_ENV, EXECUTORS, executor_name
    from expo_ros.realtime import RealtimeError, probe_fifo

    p = argparse.ArgumentParser(prog="python -m expo_sim.ros.bench_ros", description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["cpu", "published"], choices=PRESETS)
    p.add_argument("--steps", type=int, default=1000, help="min env steps per size (default 1000)")
    p.add_argument(
        "--pixels",
        nargs="*",
        default=[],
        choices=["cpu", "published"],
        help="also one row per encoder preset: a pixel policy deciding from the two cameras",
    )
    p.add_argument("--task", default="lift")
    p.add_argument("--horizon", type=int, default=400)
    p.add_argument("--domain-id", type=int, default=None)
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnxruntime"],
        help="the policy node's inference backend (default auto: the node's pick here)",
    )
    p.add_argument(
        "--rt-priority",
        type=int,
        default=0,
        help="the policy node's rt_priority: its control thread at SCHED_FIFO (1-99; default 0 = normal)",
    )
    p.add_argument(
        "--sched-fifo",
        type=int,
        default=0,
        metavar="P",
        help="the graph (bridge, policy node, all their threads) at SCHED_FIFO P while the bench "
        "keeps its own scheduling (1-99; needs root or an rtprio limit; default 0: off)",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="the nodes' rclpy executor (sets EXPO_ROS_EXECUTOR for the graph; default: the "
        "environment's, else the nodes' default, events)",
    )
    p.add_argument(
        "--render-parallel",
        action="store_true",
        help="pixel rows: the bridge renders its last camera on a worker thread "
        "(observation.render_parallel)",
    )
    p.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="the policy node's gc_freeze off (its heap not frozen at configure), for an A/B",
    )
    p.add_argument(
        "--trace",
        type=Path,
        default=None,
        metavar="DIR",
        help="trace every step of the graph into DIR/<row> and print where a step's time goes",
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench_ros"), help="where the JSON result goes")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    if not 0 <= args.rt_priority <= 99:
        p.error("--rt-priority must be in [0, 99]")
    if not 0 <= args.sched_fifo <= 99:
        p.error("--sched-fifo must be in [0, 99]")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.executor:
        os.environ[EXECUTOR_ENV] = args.executor  # the launched nodes inherit it
    executor = executor_name()
    for flag, priority in (("--sched-fifo", args.sched_fifo), ("--rt-priority", args.rt_priority)):
        try:
            probe_fifo(priority)  # a refusal, said before any session
        except RealtimeError as e:
            print(f"bench-ros: {flag} {priority}: {e}", file=sys.stderr)
            return 2
    if args.trace is not None and args.trace.is_dir() and any(args.trace.glob("*/*.csv")):
        print(
            f"bench-ros: --trace {args.trace} already holds step traces: give each run an empty directory "
            "(the sim clock restarts at 0, so two runs' steps would be joined)",
            file=sys.stderr,
        )
        return 2
    rows = _bench_rows(args, executor)
    if rows is None:
        return 1
    table = markdown_table(rows)
    print(table)
    goals = goal_lines(rows)
    print("\n".join(goals))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-ros-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"rows": rows, "table": table, "goals": goals}, indent=2, default=str))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
