"""A sim session over ROS: what ``make sim`` runs (``expo-sim session``).

1. A policy: ``--checkpoint`` if given; otherwise the task's demo set (generated on first use under
   ``data/``: scripted for lift/can/square, the MimicGen way for stack/threading) and a base
   pretrained on it by imitation (cached under ``data/pretrain``: the second run starts in
   seconds); :mod:`expo_sim.session.policy`.
2. The sim graph started by ``ros2 launch expo_bringup sim.launch.py`` (the command users run;
   the session's own settings, episodes, horizon, seed, go in a ``params.yaml`` in the run
   directory), as a child process (:class:`expo_bringup.launch_process.LaunchProcess`); its
   output goes to ``<run dir>/nodes.log``.
3. The session process is the bridge's lifecycle manager and watches the run through a
   :class:`~expo_sim.session.monitor.SessionMonitor`: a live progress line (episodes, success,
   control rate, latency p99, weights version) until the bridge has run its episodes.
4. A summary (printed, and ``summary.json`` in the run directory) with the exit codes.

``obs="pixels"`` (``make sim OBS=pixels``): the policy sees the two cameras and base-frame
proprioception only. Without ``--checkpoint`` the demonstrations are image demos
(``<data>/<task>_pixels.hdf5``, 84x84 ``agentview`` and ``robot0_eye_in_hand``) and the base
a pixel base (:func:`expo_sim.train.pixels.pretrain_pixel_base`, cached under
``<data>/pretrain_pixels``); the graph runs with ``obs:=pixels`` and a learner trains from the
pixel checkpoint on cached features, with the image demos as offline data (docs/pixels.md).

``intervene``: the sim's scripted intervener joins the graph (``intervene:=true``: the task's
expert takes over when the policy strays, docs/interventions.md); the monitor then also hears
``transitions`` and the summary gives the intervention rate per episode.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from expo_sim.session.config import DATA_DIR_ENV, OBS_KINDS, PIXEL_DEMOS, SessionConfig, default_data_dir
from expo_sim.session.prepare import (
    default_dataset,
    prepare_pixel_policy,
    prepare_policy,
    uses_mimicgen_demos,
)
from expo_sim.session.summary import format_summary, plot_episode_curve

STARTUP_TIMEOUT_S = 120.0


class _LineFile:
    """Thread-safe sink: the launch's output lines into a log file."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "a", buffering=1)  # noqa: SIM115  # closed by close()
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._f.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._f.close()


class _Progress:
    """One rewritten line on a terminal; a plain line every ``plain_every_s`` otherwise (CI logs)."""

    def __init__(self, stream: TextIO, plain_every_s: float = 10.0) -> None:
        self.stream, self.tty = stream, stream.isatty()
        self.plain_every_s, self._last = plain_every_s, -math.inf

    def show(self, line: str, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        elif final or time.monotonic() - self._last >= self.plain_every_s:
            self._last = time.monotonic()
            self.stream.write(line + "\n")
        self.stream.flush()


def _run_dir(out: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / stamp
    n = 1
    while path.exists():
        path, n = out / f"{stamp}-{n}", n + 1
    path.mkdir(parents=True)
    return path


def launch_arguments(
    cfg: SessionConfig, checkpoint: Path, dataset: Path | None, run_dir: Path
) -> dict[str, str]:
    """``sim.launch.py``'s arguments for this session; its own node settings (episodes, horizon,
    seed, the bridge waiting for this process to activate it, the policy's ``rt_priority``,
    ``graph_overrides``) are written to
    ``run_dir/params.yaml`` (ROS layout) and passed as ``params_file``."""
    import yaml

    overrides: dict[str, dict[str, Any]] = {k: dict(v) for k, v in cfg.graph_overrides.items()}
    overrides["sim_bridge"] = {
        **overrides.get("sim_bridge", {}),
        "num_episodes": cfg.episodes,
        "horizon": cfg.horizon,
        "seed": cfg.seed,
        "autostart": False,  # this process is its lifecycle manager (SessionMonitor.start_bridge)
        **({"plan_mode": cfg.plan_mode} if cfg.plan_mode != "off" else {}),
    }
    if cfg.rt_priority:
        overrides["policy_node"] = {**overrides.get("policy_node", {}), "rt_priority": cfg.rt_priority}
    if cfg.intervene:  # the expert's randomness follows the session's seed
        overrides["intervener"] = {**overrides.get("intervener", {}), "seed": cfg.seed}
    params = run_dir / "params.yaml"
    params.write_text(
        yaml.safe_dump({n: {"ros__parameters": v} for n, v in overrides.items()}, sort_keys=False)
    )
    args = {
        "task": cfg.task,
        "checkpoint": str(checkpoint),
        "backend": cfg.backend,
        "realtime": str(cfg.realtime).lower(),
        "learner": str(cfg.learn).lower(),
        "intervene": str(cfg.intervene).lower(),
        "obs": cfg.obs,
        "params_file": str(params.resolve()),
    }
    if cfg.learn:  # ros2 launch refuses empty values ('name:=')
        learner_dir = cfg.learner_dir if cfg.learner_dir is not None else run_dir / "learner"
        args["learner_dir"] = str(Path(learner_dir).resolve())
        if dataset is not None:
            args["offline_dataset"] = str(dataset)
    return args


def wait_for_bridge(monitor: Any, alive: Callable[[], bool]) -> None:
    """Until the bridge's lifecycle service is up; RuntimeError as soon as the launch ends (a
    node failed to start: its lines are in nodes.log), TimeoutError after STARTUP_TIMEOUT_S."""
    from lifecycle_msgs.srv import ChangeState

    from expo_sim.ros.lifecycle_client import spin_until

    client = monitor.node.create_client(ChangeState, "sim_bridge/change_state")
    try:
        spin_until(
            monitor.executor,
            lambda: client.service_is_ready() or not alive(),
            "the sim bridge",
            STARTUP_TIMEOUT_S,
        )
    finally:
        monitor.node.destroy_client(client)
    if not alive():
        raise RuntimeError("the graph ended during startup (see nodes.log)")


def run_session(cfg: SessionConfig, stream: TextIO = sys.stdout, progress: bool = True) -> dict[str, Any]:
    """Run one session (module doc); returns the summary dict (also in ``summary.json``).

    ``summary["exit_code"]`` is 0 when every episode ran and every node exited cleanly."""
    import rclpy
    from expo_bringup.launch_process import LaunchProcess, exit_code
    from expo_learner.segment_reader import recorded_count
    from expo_ros.node_main import executor_name

    from expo_sim.session.monitor import SessionMonitor
    from expo_sim.session.stats import SessionStats

    t_start = time.monotonic()
    executor_name()  # an invalid EXPO_ROS_EXECUTOR: its ValueError before any work, as the nodes would
    if cfg.sched_fifo or cfg.rt_priority:  # before any demo generation or pretraining: RealtimeError
        from expo_ros.realtime import probe_fifo

        probe_fifo(max(cfg.sched_fifo, cfg.rt_priority))
    checkpoint, dataset = prepare_policy(cfg, progress)
    run_dir = _run_dir(cfg.out)
    args = launch_arguments(cfg, checkpoint, dataset, run_dir)
    bags = Path(args["learner_dir"]) / "bags" if cfg.learn else None
    before = recorded_count(bags) if bags is not None else (0, 0)  # a resumed learner's segments
    domain = cfg.domain_id if cfg.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    sink = _LineFile(run_dir / "nodes.log")
    launch = LaunchProcess(
        "expo_bringup",
        "sim.launch.py",
        args,
        env={"ROS_DOMAIN_ID": str(domain)},
        sink=sink,
        sched_fifo=cfg.sched_fifo,
    )
    stats = SessionStats(target_episodes=cfg.episodes)
    bar = _Progress(stream)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    monitor = SessionMonitor(ctx, "", stats, transitions=cfg.intervene)
    launch_code: int | None = None
    error = ""
    mode = (
        ("realtime" if cfg.realtime else "lockstep")
        + (", scripted interventions" if cfg.intervene else "")
        + (", from pixels" if cfg.obs == "pixels" else "")
        + (f", graph at SCHED_FIFO {cfg.sched_fifo}" if cfg.sched_fifo else "")
        + (f", policy control thread at SCHED_FIFO {cfg.rt_priority}" if cfg.rt_priority else "")
    )
    stream.write(
        f"expo-sim session: {cfg.task}, {cfg.episodes} episodes, {mode}, "
        f"policy {checkpoint}, ROS domain {domain}; node logs: {run_dir / 'nodes.log'}\n"
    )
    t_active = time.monotonic()
    try:
        launch.start()
        alive = lambda: launch.poll() is None and launch.first_exit is None  # noqa: E731
        wait_for_bridge(monitor, alive)
        monitor.start_bridge(STARTUP_TIMEOUT_S, alive)
        t_active = time.monotonic()
        deadline = t_active + cfg.timeout_s if cfg.timeout_s else math.inf

        def finished() -> bool:
            return stats.done or not alive() or time.monotonic() > deadline

        tick = (lambda: bar.show(stats.progress_line())) if progress else (lambda: None)
        monitor.spin_until(finished, cfg.progress_every_s, tick)
        if stats.done:  # the bridge exits after its last episode, launch then stops the rest
            end = time.monotonic() + 30.0
            monitor.spin_until(lambda: launch.poll() is not None or time.monotonic() > end, 1.0, lambda: None)
        elif time.monotonic() > deadline:
            error = f"timed out after {cfg.timeout_s:g} s with {stats.episodes}/{cfg.episodes} episodes"
    except (TimeoutError, RuntimeError, FileNotFoundError) as e:
        error = str(e)
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        launch_code = launch.stop() if launch.started else None
        # Messages already on the wire (the last OTF decision, late diagnostics) still arrive
        # after their publisher exited: collect them, bounded.
        drain_until = time.monotonic() + 3.0
        while time.monotonic() < drain_until and stats.inference.stats().count < stats.env_steps:
            monitor.executor.spin_once(timeout_sec=0.05)
        for _ in range(5):
            monitor.executor.spin_once(timeout_sec=0.01)
        monitor.close()
        rclpy.try_shutdown(context=ctx)
        sink.close()
    if progress:
        bar.show(stats.progress_line(), final=True)
    if not error and stats.episodes < cfg.episodes:
        error = f"only {stats.episodes}/{cfg.episodes} episodes ran"
    node_codes = launch.exit_codes
    failed = [c for c in node_codes.values() if c]
    code = failed[0] if failed else (exit_code(launch_code) if launch_code else 0)
    if code and not error:
        error = f"nodes did not all exit cleanly: {node_codes} (ros2 launch exit {launch_code})"
    summary = {
        **stats.summary(),
        "exit_code": code if code else int(bool(error)),
        "error": error,
        "node_exit_codes": node_codes,
        "first_exit": launch.first_exit,
        "launch_exit_code": launch_code,
        "launch_command": launch.command,
        "wall_s_total": time.monotonic() - t_start,
        "wall_s_episodes": time.monotonic() - t_active,
        "checkpoint": str(checkpoint),
        "run_dir": str(run_dir),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }
    if cfg.learn:
        summary["learner_dir"] = args["learner_dir"]
        recorded, unclosed = recorded_count(bags)
        summary["learner_transitions_recorded"] = recorded - before[0]  # this session's
        summary["learner_segments_unclosed"] = unclosed - before[1]
    if stats.episode_log:
        summary["learning_curve"] = str(plot_episode_curve(stats.episode_log, run_dir / "learning_curve.png"))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


__all__ = [
    "DATA_DIR_ENV",
    "OBS_KINDS",
    "PIXEL_DEMOS",
    "STARTUP_TIMEOUT_S",
    "SessionConfig",
    "default_data_dir",
    "default_dataset",
    "format_summary",
    "launch_arguments",
    "plot_episode_curve",
    "prepare_pixel_policy",
    "prepare_policy",
    "run_session",
    "uses_mimicgen_demos",
    "wait_for_bridge",
]
