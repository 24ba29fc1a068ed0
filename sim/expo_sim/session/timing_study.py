"""Timing studies over ROS: the same policy in lockstep, realtime, realtime with injected latency
and on the emulated Franka path, with success, the command counts and the ages in one table.

Each run starts a graph through the pip-mode runner (separate processes, DDS on loopback), is the
bridge's lifecycle manager and watches it through a
:class:`~expo_sim.session.monitor.SessionMonitor` (the numbers of
:meth:`expo_sim.session.stats.SessionStats.summary`), and records the machine's load average
(realtime success depends on it: sample every second, mean and max over the run)::

    python -m expo_sim.session.timing_study --mode realtime --episodes 20 --checkpoint BASE
    python -m expo_sim.session.timing_study --mode realtime --latency-ms 30 --jitter-ms 10 ...
    python -m expo_sim.session.timing_study --mode franka --episodes 20 --checkpoint BASE
    python -m expo_sim.session.timing_study --mode realtime --expert --episodes 3   # scripted expert
    python -m expo_sim.session.timing_study --mode realtime --plan-mode receding --checkpoint K4BASE
    python -m expo_sim.session.timing_study --mode realtime --stall-prob 0.1 --stall-ms 150 ...

``--plan-mode`` sets the executor's use of the commands' plans (action chunks of a base with
``diffusion.chunk_len`` > 1, :mod:`expo_ros.action_plan`): the bridge's ``plan_mode`` in realtime,
the Franka adapter's ``executor.plan_mode`` in franka mode; ``--stall-prob`` / ``--stall-ms`` the
bridge's injected decision stalls. The JSON then also has ``plan_periods``, ``plan_rows_dropped``,
``stalled`` (and ``adapter_plan_ticks`` on the franka path).

Modes: ``lockstep`` and ``realtime`` (:func:`expo_bringup.graph.sim_graph`), ``franka``
(:func:`expo_bringup.franka_graph.franka_graph` with ``emulate=True``: policy -> Franka adapter ->
emulated controller -> realtime bridge). ``--expert`` swaps the policy node for
:mod:`expo_sim.ros.expert_policy_node` (the scripted expert on the same ROS path). Each run
writes ``<out>/<mode>-<time>.json`` and prints one markdown row (:func:`markdown_row`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

EXPERT_MODULE = "expo_sim.ros.expert_policy_node"
MODES = ("lockstep", "realtime", "franka")
STARTUP_TIMEOUT_S = 120.0


def study_graph(
    mode: str,
    checkpoint: str,
    task: str = "lift",
    namespace: str = "",
    expert: bool = False,
    bridge: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    adapter: dict[str, Any] | None = None,
) -> Any:
    """The graph of one run: ``mode``'s graph, the policy node swapped for the scripted expert
    when ``expert``, extra parameters for the bridge, the policy node and (mode franka) the
    Franka adapter; ``/clock`` remapped into the namespace when there is one (tests share a ROS
    domain)."""
    from expo_bringup.franka_graph import franka_graph
    from expo_bringup.graph import Graph, sim_graph

    if mode not in MODES:
        raise ValueError(f"mode '{mode}' unknown; one of {MODES}")
    if mode == "franka":
        graph = franka_graph(task=task, checkpoint=checkpoint, namespace=namespace, emulate=True)
    else:
        graph = sim_graph(task=task, checkpoint=checkpoint, realtime=mode == "realtime", namespace=namespace)
    if expert:
        graph = Graph(
            tuple(replace(n, module=EXPERT_MODULE) if n.name == "policy_node" else n for n in graph.nodes)
        )
    clock = f"/{namespace.strip('/')}/clock" if namespace else None
    if adapter and mode != "franka":
        raise ValueError(f"adapter parameters need mode 'franka', not '{mode}'")
    return graph.with_overrides(
        clock,
        sim_bridge={**(bridge or {}), "autostart": False},  # this process manages it
        policy_node=dict(policy or {}),
        **({"franka_adapter": dict(adapter)} if adapter else {}),
    )


def _load() -> float:
    return os.getloadavg()[0]


def run_graph(
    graph: Any,
    episodes: int,
    domain_id: int,
    namespace: str = "",
    timeout_s: float = 0.0,
    progress: Callable[[str], None] | None = None,
    sink: Callable[[str], None] | None = None,
    listen: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Run ``graph`` until its bridge has finished ``episodes`` (its ``num_episodes``) and
    return :meth:`SessionStats.summary` plus ``error``, ``node_exit_codes``, ``wall_s`` and the
    load average (``load_start``, ``load_mean``, ``load_max``, 1-minute, sampled each second).
    ``listen(node)`` may add subscriptions to the monitor's node before the graph starts."""
    import rclpy
    from expo_bringup.runner import LineBuffer, Runner

    from expo_sim.session.monitor import SessionMonitor
    from expo_sim.session.stats import SessionStats

    out = sink if sink is not None else LineBuffer()
    runner = Runner(graph, domain_id=domain_id, stop_timeout_s=10.0, sink=out)
    stats = SessionStats(target_episodes=episodes)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    ns = f"/{namespace.strip('/')}" if namespace else ""
    monitor = SessionMonitor(ctx, ns, stats)
    if listen is not None:
        listen(monitor.node)
    loads = [_load()]
    error = ""
    t0 = time.monotonic()
    try:
        runner.start()
        alive = lambda: runner.wait(timeout=0) is None  # noqa: E731
        monitor.start_bridge(STARTUP_TIMEOUT_S, alive)
        t0 = time.monotonic()
        deadline = t0 + timeout_s if timeout_s else math.inf

        def tick() -> None:
            loads.append(_load())
            if progress is not None:
                progress(stats.progress_line())

        monitor.spin_until(lambda: stats.done or not alive() or time.monotonic() > deadline, 1.0, tick)
        if stats.done:  # the bridge exits after its last episode: collect its final status
            end = time.monotonic() + 20.0
            monitor.spin_until(lambda: not alive() or time.monotonic() > end, 1.0, lambda: None)
        elif time.monotonic() > deadline:
            error = f"timed out after {timeout_s:g} s with {stats.episodes}/{episodes} episodes"
        else:
            error = "a node exited early"
    except (TimeoutError, RuntimeError) as e:
        error = str(e)
    finally:
        runner.stop()
        for _ in range(20):
            monitor.executor.spin_once(timeout_sec=0.01)
        monitor.close()
        rclpy.try_shutdown(context=ctx)
    summary = stats.summary()
    summary.update(
        error=error,
        node_exit_codes=runner.exit_codes,
        wall_s=time.monotonic() - t0,
        load_start=loads[0],
        load_mean=sum(loads) / len(loads),
        load_max=max(loads),
        cores=os.cpu_count(),
    )
    if error and isinstance(out, LineBuffer):
        summary["node_output_tail"] = out.text(last=60)
    return summary


COLUMNS = (
    ("success", lambda r: f"{r['successes']}/{r['episodes']}"),
    ("holds / bridge holds", lambda r: f"{_i(r['holds'])} / {_i(r['bridge_holds'])}"),
    (
        "plan periods (adapter ticks) / stalled",
        lambda r: f"{_i(r.get('plan_periods'))} ({_i(r.get('adapter_plan_ticks'))}) / {_i(r.get('stalled'))}",
    ),
    ("superseded / dropped", lambda r: f"{_i(r['superseded'])} / {_i(r['dropped'])}"),
    ("obs age p50 / p99 [ms]", lambda r: f"{_f(r['obs_age_p50_ms'])} / {_f(r['obs_age_p99_ms'])}"),
    ("action age p50 / p99 [ms]", lambda r: f"{_f(r['action_age_p50_ms'])} / {_f(r['action_age_p99_ms'])}"),
    (
        "adapter action age p50 / p99 [ms]",
        lambda r: f"{_f(r.get('adapter_action_age_p50_ms'))} / {_f(r.get('adapter_action_age_p99_ms'))}",
    ),
    (
        "obs->action p50 / p99 [ms]",
        lambda r: f"{_f(r['obs_to_action_p50_ms'])} / {_f(r['obs_to_action_p99_ms'])}",
    ),
    ("load 1-min mean / max", lambda r: f"{r['load_mean']:.1f} / {r['load_max']:.1f} ({r['cores']} cores)"),
)


def _f(v: object) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.1f}"


def _i(v: object) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(float(v)))


def markdown_row(label: str, r: dict[str, Any]) -> str:
    """``| label | success | ... |`` with :data:`COLUMNS`."""
    return "| " + " | ".join([label, *(fmt(r) for _, fmt in COLUMNS)]) + " |"


def markdown_header() -> str:
    head = ["run", *(name for name, _ in COLUMNS)]
    return "| " + " | ".join(head) + " |\n|" + "---|" * len(head)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m expo_sim.session.timing_study", description=__doc__.split("\n")[0]
    )
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--checkpoint", default="", help="policy checkpoint (not needed with --expert)")
    p.add_argument("--expert", action="store_true", help="the scripted expert instead of the policy")
    p.add_argument("--task", default="lift")
    p.add_argument("--horizon", type=int, default=400)
    p.add_argument("--seed", type=int, default=0, help="the bridge's first reset seed (+1 per episode)")
    p.add_argument(
        "--latency-ms", type=float, default=0.0, help="bridge injected_latency_ms (realtime, franka)"
    )
    p.add_argument(
        "--jitter-ms", type=float, default=0.0, help="bridge injected_jitter_ms (realtime, franka)"
    )
    p.add_argument(
        "--substeps", type=int, default=None, help="bridge realtime_substeps (default: the YAML's)"
    )
    p.add_argument(
        "--bridge", action="append", default=[], metavar="K=V", help="more bridge parameters (JSON values)"
    )
    p.add_argument(
        "--policy", action="append", default=[], metavar="K=V", help="more policy parameters (JSON values)"
    )
    p.add_argument(
        "--plan-mode",
        choices=("off", "receding", "ensemble"),
        default=None,
        help="the executor's plan_mode (action chunks): the bridge's (realtime) or the Franka "
        "adapter's executor.plan_mode (franka); default: the YAML's (off)",
    )
    p.add_argument(
        "--plan-max-age-ms", type=float, default=None, help="with --plan-mode: the rows' age bound"
    )
    p.add_argument("--ensemble-decay", type=float, default=None, help="with --plan-mode ensemble")
    p.add_argument(
        "--plan-max-steps", type=int, default=None, help="the policy's plan.max_steps (-1 all, 0 none)"
    )
    p.add_argument(
        "--stall-prob", type=float, default=0.0, help="bridge injected_stall_probability (realtime, franka)"
    )
    p.add_argument("--stall-ms", type=float, default=0.0, help="bridge injected_stall_ms")
    p.add_argument("--domain-id", type=int, default=None)
    p.add_argument("--timeout", type=float, default=0.0, help="wall-clock limit in s (default none)")
    p.add_argument("--out", type=Path, default=Path("runs/timing"))
    args = p.parse_args(argv)
    if not args.expert and not args.checkpoint:
        p.error("--checkpoint is required without --expert")
    bridge: dict[str, Any] = {"num_episodes": args.episodes, "horizon": args.horizon, "seed": args.seed}
    bridge.update(injected_latency_ms=args.latency_ms, injected_jitter_ms=args.jitter_ms)
    if args.substeps is not None:
        bridge["realtime_substeps"] = args.substeps
    if args.stall_prob or args.stall_ms:
        bridge.update(injected_stall_probability=args.stall_prob, injected_stall_ms=args.stall_ms)
    plan = {
        k: v
        for k, v in (
            ("plan_mode", args.plan_mode),
            ("plan_max_age_ms", args.plan_max_age_ms),
            ("ensemble_decay", args.ensemble_decay),
        )
        if v is not None
    }
    adapter = {f"executor.{k}": v for k, v in plan.items()} if args.mode == "franka" else {}
    if args.mode != "franka":
        bridge.update(plan)
    extra = {"bridge": bridge, "policy": {}}
    if args.plan_max_steps is not None:
        extra["policy"]["plan.max_steps"] = args.plan_max_steps
    for target, items in (("bridge", args.bridge), ("policy", args.policy)):
        for item in items:
            key, _, value = item.partition("=")
            extra[target][key] = json.loads(value)
    if args.expert:
        extra["policy"].setdefault("safety.max_delta", [2.0] * 7)  # the expert as it runs directly
    checkpoint = str(Path(args.checkpoint).resolve()) if args.checkpoint else "scripted"
    ns = f"study_{uuid.uuid4().hex[:6]}"
    graph = study_graph(
        args.mode, checkpoint, args.task, ns, args.expert, extra["bridge"], extra["policy"], adapter
    )
    domain = args.domain_id if args.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    label = args.mode + (" expert" if args.expert else "")
    if args.latency_ms or args.jitter_ms:
        label += f" +{args.latency_ms:g}+-{args.jitter_ms:g} ms"
    if args.substeps is not None:
        label += f" substeps {args.substeps}"
    if args.stall_prob or args.stall_ms:
        label += f" stall {args.stall_prob:g} x {args.stall_ms:g} ms"
    label += "".join(f" {k} {v}" for k, v in plan.items())
    if args.plan_max_steps is not None:
        label += f" plan.max_steps {args.plan_max_steps}"
    label += "".join(f" {item}" for item in (*args.bridge, *args.policy))
    print(f"timing study: {label}, {args.episodes} episodes, ROS domain {domain}", flush=True)
    r = run_graph(
        graph, args.episodes, domain, ns, args.timeout, progress=lambda line: print(line, flush=True)
    )
    r.update(label=label, argv=list(argv if argv is not None else sys.argv[1:]), checkpoint=checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(r, indent=2, default=str))
    print(markdown_header())
    print(markdown_row(label, r))
    print(f"-> {path}" + (f"\nERROR: {r['error']}" if r["error"] else ""))
    return 1 if r["error"] or r["episodes"] < args.episodes else 0


if __name__ == "__main__":
    sys.exit(main())
