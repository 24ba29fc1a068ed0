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
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 120.0


#: Overrides the data folder (demonstrations and pretrained bases).
DATA_DIR_ENV = "EXPO_DATA_DIR"


def default_data_dir() -> Path:
    """``$EXPO_DATA_DIR``; else ``data/`` of the checkout this package runs from (an editable
    install: ``<checkout>/sim/expo_sim``, the folder ``make sim`` uses); else ``./data``."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "sim" / "expo_sim").is_dir() and (checkout / "Makefile").is_file():
        return checkout / "data"
    return Path("data")


@dataclass(frozen=True)
class SessionConfig:
    """One ``expo-sim session``. ``checkpoint`` None: demos + cached pretraining as in the
    module doc (``dataset`` None: ``data_dir/<task>_<quality>.hdf5`` of ``demos`` scripted demos,
    or for a MimicGen task ``data_dir/<task>_mimicgen.hdf5`` of ``demos`` MimicGen trials,
    generated if missing; ``demos`` None: 50 scripted demos, 100 MimicGen trials)."""

    task: str = "lift"
    episodes: int = 10
    checkpoint: Path | None = None
    dataset: Path | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    demos: int | None = None
    quality: str = "mixed"
    preset: str = "cpu"
    pretrain_steps: int | None = None  # None: the preset's default
    seed: int = 0
    horizon: int = 400
    realtime: bool = False
    backend: str = "torch"
    domain_id: int | None = None
    out: Path = Path("runs/sim")
    timeout_s: float = 0.0  # wall-clock limit of the episodes; 0 = none
    learn: bool = False  # add the learner node: online EXPO fine-tuning during the episodes
    learner_dir: Path | None = None  # None: <run dir>/learner; an existing one resumes
    intervene: bool = False  # the scripted intervener takes over when the policy strays
    obs: str = "state"  # "pixels": cameras + base-frame proprioception (a pixel checkpoint)
    plan_mode: str = "off"  # realtime: the bridge's plan_mode (action chunks, expo_ros.action_plan)
    progress_every_s: float = 0.5
    graph_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from expo_core.presets import check_preset
        from expo_core.tasks import check_task, requires_mimicgen

        from expo_sim.envs.scripted import QUALITIES, SCRIPTED_TASKS

        check_task(self.task)
        if self.checkpoint is None and self.task not in SCRIPTED_TASKS and not requires_mimicgen(self.task):
            raise ValueError(
                f"task '{self.task}' has no demonstrator (scripted: {list(SCRIPTED_TASKS)}; MimicGen: "
                "stack, threading); pass --checkpoint"
            )
        if self.intervene and self.task not in SCRIPTED_TASKS:
            raise ValueError(
                f"--intervene needs a task with a scripted expert ({list(SCRIPTED_TASKS)}), got '{self.task}'"
            )
        if self.obs not in OBS_KINDS:
            raise ValueError(f"SessionConfig.obs must be one of {list(OBS_KINDS)}, got '{self.obs}'")
        if self.obs == "pixels" and self.checkpoint is None and self.task not in SCRIPTED_TASKS:
            raise ValueError(
                f"--obs pixels makes image demos with a scripted expert ({list(SCRIPTED_TASKS)}); "
                f"task '{self.task}' needs --checkpoint (a pixel checkpoint)"
            )
        from expo_ros.action_plan import PLAN_MODES

        if self.plan_mode not in PLAN_MODES:
            raise ValueError(
                f"SessionConfig.plan_mode must be one of {list(PLAN_MODES)}, got '{self.plan_mode}'"
            )
        if self.plan_mode != "off" and not self.realtime:
            raise ValueError(
                "--plan-mode applies in real time only (lockstep runs every decision): add --realtime"
            )
        if self.quality not in QUALITIES:
            raise ValueError(f"quality '{self.quality}' unknown; allowed: {list(QUALITIES)}")
        check_preset(self.preset)
        for name in ("episodes", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"SessionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.demos is not None and self.demos < 1:
            raise ValueError(f"SessionConfig.demos must be >= 1, got {self.demos}")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise ValueError(f"SessionConfig.domain_id must be in 0..232, got {self.domain_id}")
        if self.timeout_s < 0:
            raise ValueError(f"SessionConfig.timeout_s must be >= 0, got {self.timeout_s}")


#: ``SessionConfig.obs`` values.
OBS_KINDS = ("state", "pixels")
#: Image demos generated for ``--obs pixels`` when ``--demos`` is not given.
PIXEL_DEMOS = 40


def uses_mimicgen_demos(cfg: SessionConfig) -> bool:
    """Whether the session's default demonstrations are made the MimicGen way (stack, threading)."""
    from expo_core.tasks import requires_mimicgen

    return (
        cfg.checkpoint is None and cfg.dataset is None and cfg.obs == "state" and requires_mimicgen(cfg.task)
    )


def default_dataset(cfg: SessionConfig) -> tuple[Path, int]:
    """(the default demonstrations' path, how many demos or MimicGen trials make them)."""
    if cfg.obs == "pixels":
        return cfg.data_dir / f"{cfg.task}_pixels.hdf5", cfg.demos or PIXEL_DEMOS
    if uses_mimicgen_demos(cfg):
        from expo_sim.mimicgen.demo_cache import DEFAULT_TRIALS, default_demo_path

        return default_demo_path(cfg.task, cfg.data_dir), cfg.demos or DEFAULT_TRIALS
    return cfg.data_dir / f"{cfg.task}_{cfg.quality}.hdf5", cfg.demos or 50


def prepare_policy(cfg: SessionConfig, progress: bool = True) -> tuple[Path, Path | None]:
    """(the checkpoint the policy node loads, the demonstrations or None): ``cfg.checkpoint``
    (with ``cfg.dataset`` if given), or a cached base pretrained on the (cached) demos.

    A MimicGen task without MimicGen installed raises
    :class:`~expo_sim.mimicgen.available.MimicGenMissing` (one line naming ``make setup``).
    A checkpoint of the other kind than ``cfg.obs`` raises ValueError saying which to pass."""
    if cfg.checkpoint is not None:
        path = Path(cfg.checkpoint)
        if not (path.exists() or path.with_suffix(".safetensors").exists()):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        if cfg.dataset is not None and not Path(cfg.dataset).is_file():
            raise FileNotFoundError(f"dataset not found: {cfg.dataset}")
        _check_checkpoint_kind(path, cfg.obs)
        return path.resolve(), Path(cfg.dataset).resolve() if cfg.dataset is not None else None
    if cfg.obs == "pixels":
        return prepare_pixel_policy(cfg, progress)
    from expo_core.presets import preset_config
    from expo_core.spec import FRANKA_ACTION_SPEC, task_obs_spec

    from expo_sim.envs.demo_set import write_demo_set
    from expo_sim.train.presets import harness_defaults
    from expo_sim.train.pretrain import preset_base

    dataset = cfg.dataset
    if dataset is None:
        dataset, count = default_dataset(cfg)
        if uses_mimicgen_demos(cfg):
            from expo_sim.mimicgen.available import require_mimicgen
            from expo_sim.mimicgen.demo_cache import ensure_mimicgen_demos

            require_mimicgen(f"the default policy of task '{cfg.task}' (demonstrations made by MimicGen)")
            ensure_mimicgen_demos(cfg.task, dataset, count, cfg.seed, progress=progress)
        elif not dataset.exists():
            log.info("no demonstrations at %s: generating %d %s demos", dataset, count, cfg.quality)
            summary = write_demo_set(cfg.task, count, cfg.quality, cfg.seed, dataset, progress=progress)
            log.info("%s", summary.line())
    elif not Path(dataset).is_file():
        raise FileNotFoundError(f"dataset not found: {dataset}")
    steps = cfg.pretrain_steps
    if steps is None:
        steps = harness_defaults(cfg.preset).pretrain_steps
    ecfg = preset_config(cfg.preset, task_obs_spec(cfg.task).dim, FRANKA_ACTION_SPEC.dim)
    pre_dir = cfg.data_dir / "pretrain"
    base = preset_base(dataset, cfg.task, ecfg, cfg.preset, steps, cfg.seed, pre_dir, progress)
    return base.resolve(), Path(dataset).resolve()


def _check_checkpoint_kind(path: Path, obs: str) -> None:
    """ValueError when ``path`` (a save_checkpoint file) is a pixel checkpoint and ``obs`` is
    state, or the other way round."""
    from expo_core.checkpoint import PIXELS_FORMAT

    meta = path.with_suffix(".json")
    try:
        pixels = json.loads(meta.read_text()).get("format") == PIXELS_FORMAT
    except (OSError, ValueError, AttributeError):
        return  # not ours to judge here: the nodes' loaders say what is wrong with the file
    if pixels and obs != "pixels":
        raise ValueError(f"{path} is a pixel checkpoint (cameras): pass --obs pixels")
    if obs == "pixels" and not pixels:
        raise ValueError(f"--obs pixels needs a pixel checkpoint; {path} is a state checkpoint")


def prepare_pixel_policy(cfg: SessionConfig, progress: bool = True) -> tuple[Path, Path]:
    """``--obs pixels`` without a checkpoint: image demos (generated on first use: scripted, both
    cameras at 84x84) and a pixel base pretrained on them (mode a, cached); (base, demos)."""
    from expo_core.tasks import SUPPORTED_CAMERAS

    from expo_sim.envs.demo_set import write_demo_set
    from expo_sim.train.pixels import pretrain_pixel_base

    dataset = cfg.dataset
    if dataset is None:
        dataset, count = default_dataset(cfg)
        if not dataset.exists():
            log.info("no image demonstrations at %s: generating %d %s demos", dataset, count, cfg.quality)
            summary = write_demo_set(
                cfg.task, count, cfg.quality, cfg.seed, dataset, progress=progress, cameras=SUPPORTED_CAMERAS
            )
            log.info("%s", summary.line())
    elif not Path(dataset).is_file():
        raise FileNotFoundError(f"dataset not found: {dataset}")
    base = pretrain_pixel_base(
        Path(dataset),
        cfg.task,
        preset=cfg.preset,
        base_steps=cfg.pretrain_steps,
        seed=cfg.seed,
        out_dir=cfg.data_dir / "pretrain_pixels",
        progress=progress,
    )
    return base.resolve(), Path(dataset).resolve()


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
    seed, the bridge waiting for this process to activate it, ``graph_overrides``) are written to
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

    from expo_sim.session.monitor import SessionMonitor
    from expo_sim.session.stats import SessionStats

    t_start = time.monotonic()
    checkpoint, dataset = prepare_policy(cfg, progress)
    run_dir = _run_dir(cfg.out)
    args = launch_arguments(cfg, checkpoint, dataset, run_dir)
    domain = cfg.domain_id if cfg.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    sink = _LineFile(run_dir / "nodes.log")
    launch = LaunchProcess(
        "expo_bringup", "sim.launch.py", args, env={"ROS_DOMAIN_ID": str(domain)}, sink=sink
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
    if stats.episode_log:
        summary["learning_curve"] = str(plot_episode_curve(stats.episode_log, run_dir / "learning_curve.png"))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def plot_episode_curve(log: list[tuple[int, bool, str]], out: Path, window: int = 10) -> Path:
    """Success per episode (dots) and its running mean over ``window`` episodes against env
    steps, with the policy weights version on a second axis: the session's learning curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e[0] for e in log]
    success = [float(e[1]) for e in log]
    mean = [sum(success[max(0, i + 1 - window) : i + 1]) / min(i + 1, window) for i in range(len(success))]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, success, "o", alpha=0.3, label="episode success")
    ax.plot(steps, mean, "-", label=f"success, last {window} episodes")
    ax.set_xlabel("env steps")
    ax.set_ylabel("success")
    ax.set_ylim(-0.05, 1.05)
    versions = [float(e[2]) if str(e[2]).replace(".", "", 1).isdigit() else math.nan for e in log]
    if any(v > 0 for v in versions if not math.isnan(v)):
        ax2 = ax.twinx()
        ax2.step(steps, versions, where="post", color="gray", alpha=0.6, label="weights version")
        ax2.set_ylabel("policy weights version")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def format_summary(s: dict[str, Any]) -> str:
    """The end-of-session table printed by ``expo-sim session``."""

    def f(key: str, unit: str = "", digits: int = 1) -> str:
        v = s.get(key)
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}{unit}"

    def pair(a: str, b: str, unit: str = " ms", digits: int = 2) -> str:
        return f"{f(a, unit, digits)} / {f(b, unit, digits)}"

    rows = [
        ("episodes", f"{s['episodes']} ({s['successes']} successful, rate {f('success_rate', '', 2)})"),
        ("env steps", f"{s['env_steps']} at {f('env_steps_per_s', ' steps/s')} (wall)"),
        ("mean episode length", f("mean_episode_length", " steps")),
        ("policy latency p50 / p99", pair("policy_latency_p50_ms", "policy_latency_p99_ms")),
        ("inference p50 / p99", pair("inference_p50_ms", "inference_p99_ms")),
        ("obs -> action p50 / p99", pair("obs_to_action_p50_ms", "obs_to_action_p99_ms")),
        ("deadline misses / holds", pair("policy_deadline_misses", "policy_holds", "", 0)),
        ("bridge holds / plan periods", pair("bridge_holds", "plan_periods", "", 0)),
        ("weights version", str(s.get("weights_version") or "n/a")),
        *(
            [
                (
                    "interventions",
                    f"{s['intervention_takeovers']} takeovers, "
                    f"{f('intervention_step_fraction', '', 3)} of the steps",
                )
            ]
            if "intervention_takeovers" in s
            else []
        ),
        ("wall time", f"{s['wall_s_total']:.0f} s ({s['wall_s_episodes']:.0f} s of episodes)"),
        ("run directory", s["run_dir"]),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in rows]
    head = "session summary" + (f" -- FAILED: {s['error']}" if s["error"] else "")
    return "\n".join([head, *lines])
