"""The sim bridge's parameters: declared in one table, converted once into a validated dataclass.

Values come from ``expo_bringup/config/sim_bridge.yaml`` (and ``-p`` overrides); the defaults
below match that file, plus ``autostart`` (True: the pip-mode runner has no lifecycle manager;
set it False where one drives the node). Parameters are declared with dynamic typing so that
``control_rate_hz: 20`` (an integer in YAML) is accepted; :meth:`BridgeConfig.from_values`
checks every type and range and raises ValueError naming the parameter, which the node turns
into a failed configure transition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expo_core.tasks import CONTROL_FREQ_HZ, SUPPORTED_CAMERAS, SUPPORTED_TASKS
from expo_ros.action_plan import PlanConfig, plan_mode

ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
# Must match policy.yaml's observation.finger_joint_names; the bridge publishes robosuite's
# finger qpos as is (finger 2 negative when open), which policy.yaml's finger_signs [1, 1] reads.
FINGER_JOINTS = ["panda_finger_joint1", "panda_finger_joint2"]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("task", "lift", f"robomimic task, one of {list(SUPPORTED_TASKS)}"),
    ParamSpec("realtime", False, "false: lockstep (one step per action, sim time); true: 20 Hz wall timer"),
    ParamSpec(
        "control_rate_hz", float(CONTROL_FREQ_HZ), "control frequency [Hz]; sim time per step = 1/rate"
    ),
    ParamSpec("horizon", 400, "steps per episode before truncation"),
    ParamSpec("seed", 0, "reset seed of the first episode; +1 per episode"),
    ParamSpec("num_episodes", 0, "exit after this many episodes; 0 = run until shut down"),
    ParamSpec("action_timeout_s", 5.0, "lockstep: wall time without an answer before warn + re-publish [s]"),
    ParamSpec(
        "realtime_substeps",
        5,
        "realtime: chunks per control period (a divisor of its 25 MuJoCo steps: 1, 5 or 25); physics "
        "runs one chunk per 1/(rate * substeps) of wall time and a command takes effect at the first "
        "chunk boundary after it arrives (1: at the next period boundary)",
    ),
    ParamSpec(
        "realtime_clock_every_substep",
        True,
        "realtime: publish /clock at every chunk boundary (the nodes' sim time to a chunk) instead "
        "of at the period ends only (less traffic: every node handles each /clock message)",
    ),
    ParamSpec(
        "realtime_ee_pose_every_substep",
        False,
        "realtime: also publish ee_pose at every chunk boundary (a robot's pose feedback is faster "
        "than its control rate; the emulated Franka controller re-aims on each); joint_states, "
        "object_poses and the other pieces stay at the control rate",
    ),
    ParamSpec(
        "max_action_age_ms",
        100.0,
        "realtime: a command whose observation is older than this when it would take effect is "
        "dropped (counted; holds always apply) [ms]",
    ),
    ParamSpec(
        "realtime_anchor_deltas",
        True,
        "realtime: a command's pose delta is applied to the end-effector pose of the observation "
        "it answers (its stamp; expo_sim.envs.substep_physics.anchored_goal), as an executor that "
        "remembers the poses it reported does; false: to the pose when it takes effect (robosuite's "
        "rule, which adds the motion made while the command was on its way). Holds and plan rows "
        "always use the pose of the moment",
    ),
    ParamSpec(
        "injected_latency_ms",
        0.0,
        "realtime: a received command counts as arriving this much later (a slower link/controller) [ms]",
    ),
    ParamSpec(
        "injected_jitter_ms",
        0.0,
        "realtime: plus a uniform random delay in [-jitter, +jitter] per command (seeded by 'seed'; "
        "the total delay is never negative) [ms]",
    ),
    ParamSpec(
        "injected_stall_probability",
        0.0,
        "realtime: probability that a received command is stalled (a late decision, seeded by "
        "'seed'): it counts as arriving injected_stall_ms later still",
    ),
    ParamSpec("injected_stall_ms", 0.0, "realtime: the extra delay of a stalled command [ms]"),
    ParamSpec(
        "plan_mode",
        "off",
        "realtime: what to do with the commands' plans (ActionCommand.plan, expo_ros.action_plan): "
        "off (ignored: each command held until the next), receding (a period without a new command "
        "applies the newest command's row due then), ensemble (the weighted mean of every "
        "command's row for the period)",
    ),
    ParamSpec(
        "plan_max_age_ms",
        200.0,
        "realtime, plan_mode receding/ensemble: a plan row is used only while the command's "
        "observation is at most this old (older rows are dropped and counted) [ms]",
    ),
    ParamSpec(
        "ensemble_decay",
        0.01,
        "plan_mode ensemble: the i-th oldest prediction for a period weighs exp(-decay * i) "
        "(> 0 favours the older ones, as ACT; 0 plain mean; < 0 the newest)",
    ),
    ParamSpec("diagnostics_period_s", 1.0, "diagnostics publish period, wall clock [s]"),
    ParamSpec(
        "learner_pacing_backlog",
        0,
        "lockstep: hold the next step while the learner owes more updates than this (learner_stats "
        "backlog + steps since); 0 = off",
    ),
    ParamSpec(
        "wait_for_learner",
        False,
        "a learner is in the graph: episode 0 starts only after its first learner_stats report "
        "(lockstep: the first observation; real time: the first command), so that no transition "
        "goes out before it listens",
    ),
    ParamSpec(
        "learner_wait_timeout_s",
        600.0,
        "wait_for_learner: how long to wait for the learner's first report; past it the bridge says "
        "why and exits 1, which ends a session [s]; 0 = without end",
    ),
    ParamSpec("frame_id", "world", "header frame of ee_pose and object_poses"),
    ParamSpec("arm_joint_names", ARM_JOINTS, "published arm joint names, robosuite order (7)"),
    ParamSpec("finger_joint_names", FINGER_JOINTS, "published finger joint names (2)"),
    ParamSpec(
        "finger_signs",
        [1.0, 1.0],
        "sign applied to each published finger position/velocity: [1.0, 1.0] = robosuite's qpos as is "
        "(finger 2 negative when open); [1.0, -1.0] = both positive, as franka_ros2 reports them",
    ),
    ParamSpec("camera.enabled", False, "publish image_raw from one robosuite camera"),
    ParamSpec("camera.name", "agentview", f"robosuite camera, one of {list(SUPPORTED_CAMERAS)}"),
    ParamSpec("camera.width", 84, "image width [px] (square images only: width == height)"),
    ParamSpec("camera.height", 84, "image height [px]"),
    ParamSpec(
        "observation.kind",
        "state",
        "state: joint_states, ee_pose, object_poses (the state policy's inputs); pixels: also one "
        "rgb8 image per observation.cameras entry on <camera>/image_raw and ee_pose_base (the pixel "
        "policy's inputs: cameras + base-frame proprioception), every piece with the step's stamp",
    ),
    ParamSpec(
        "observation.cameras",
        list(SUPPORTED_CAMERAS),
        f"pixels: robosuite cameras rendered each step, each published on <camera>/image_raw; "
        f"from {list(SUPPORTED_CAMERAS)}",
    ),
    ParamSpec("observation.image_size", 84, "pixels: image width = height [px]"),
    ParamSpec(
        "observation.render_parallel",
        False,
        "pixels, lockstep, two or more cameras: render the last camera in a second GL context on a "
        "worker thread while the others render (two 84x84 frames in ~19 ms instead of ~33 on two "
        "cores: more env steps/s; the policy then gets both frames at about the same time, so the "
        "first one's encoding no longer hides behind the second's render). Realtime ignores it: "
        "there every camera renders in a thread of its own while the physics runs on",
    ),
    ParamSpec(
        "base_frame_id",
        "robot0_base",
        "pixels: header frame of ee_pose_base, the end effector in the robot's base frame (the "
        "frame a real Franka reports in: fr3_link0)",
    ),
    ParamSpec("autostart", True, "configure + activate at startup (pip mode has no lifecycle manager)"),
)

OBS_KINDS = ("state", "pixels")


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"parameter '{name}' must be true or false, got {v!r}")
    return v


def _int(name: str, v: Any, low: int, high: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"parameter '{name}' must be an integer {rng}, got {v!r}")
    return int(v)


def _float(name: str, v: Any, low: float, high: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not low < v <= high:
        raise ValueError(f"parameter '{name}' must be a number in ({low:g}, {high:g}], got {v!r}")
    return float(v)


def _non_negative(name: str, v: Any, high: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0.0 <= v <= high:
        raise ValueError(f"parameter '{name}' must be a number in [0, {high:g}], got {v!r}")
    return float(v)


def _names(name: str, v: Any, count: int) -> tuple[str, ...]:
    if (
        not isinstance(v, Sequence)
        or isinstance(v, str)
        or len(v) != count
        or not all(isinstance(s, str) and s for s in v)
        or len(set(v)) != count
    ):
        raise ValueError(f"parameter '{name}' must list {count} distinct non-empty names, got {v!r}")
    return tuple(v)


@dataclass(frozen=True)
class BridgeConfig:
    """Validated bridge settings; see :data:`PARAMETERS` for the meaning of each field."""

    task: str = "lift"
    realtime: bool = False
    control_rate_hz: float = float(CONTROL_FREQ_HZ)
    horizon: int = 400
    seed: int = 0
    num_episodes: int = 0
    action_timeout_s: float = 5.0
    substeps: int = 5
    clock_every_substep: bool = True
    ee_pose_every_substep: bool = False
    max_action_age_ms: float = 100.0
    anchor_deltas: bool = True
    injected_latency_ms: float = 0.0
    injected_jitter_ms: float = 0.0
    stall_probability: float = 0.0
    stall_ms: float = 0.0
    plan: PlanConfig = PlanConfig()
    diagnostics_period_s: float = 1.0
    learner_pacing_backlog: int = 0
    wait_for_learner: bool = False
    learner_wait_timeout_s: float = 600.0
    frame_id: str = "world"
    arm_joint_names: tuple[str, ...] = tuple(ARM_JOINTS)
    finger_joint_names: tuple[str, ...] = tuple(FINGER_JOINTS)
    finger_signs: tuple[float, float] = (1.0, 1.0)
    camera: str | None = None  # the camera name when enabled
    camera_size: int = 84
    obs_kind: str = "state"
    cameras: tuple[str, ...] = ()  # pixels: the cameras published on <camera>/image_raw
    image_size: int = 84
    render_parallel: bool = False  # pixels, lockstep: the last camera renders on a worker thread
    base_frame_id: str = "robot0_base"
    autostart: bool = True

    @property
    def rendered_cameras(self) -> tuple[str, ...]:
        """Every camera the env must render (pixel cameras, or the one ``camera.*`` camera)."""
        return self.cameras or ((self.camera,) if self.camera else ())

    @property
    def render_size(self) -> int:
        return self.image_size if self.cameras else self.camera_size

    @property
    def period_ns(self) -> int:
        """Sim time per control step [ns] (50 ms at 20 Hz)."""
        return round(1e9 / self.control_rate_hz)

    @property
    def chunk_ns(self) -> int:
        """Sim time per realtime chunk [ns] (10 ms with 5 substeps at 20 Hz)."""
        return self.period_ns // self.substeps

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.arm_joint_names + self.finger_joint_names

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> BridgeConfig:
        """Parameter name -> value (as declared in :data:`PARAMETERS`) -> config; ValueError
        naming the parameter and the allowed range on any bad value."""
        task = v["task"]
        if task not in SUPPORTED_TASKS:
            raise ValueError(f"parameter 'task' must be one of {list(SUPPORTED_TASKS)}, got {task!r}")
        rate = _float("control_rate_hz", v["control_rate_hz"], 0.0, 1000.0)
        if rate != CONTROL_FREQ_HZ:
            # Sim time must follow the physics: robosuite integrates 1/control_freq per step.
            raise ValueError(
                f"parameter 'control_rate_hz' must equal the robosuite control frequency "
                f"{CONTROL_FREQ_HZ} Hz of the robomimic tasks, got {rate:g}"
            )
        camera = None
        if _bool("camera.enabled", v["camera.enabled"]):
            camera = v["camera.name"]
            if camera not in SUPPORTED_CAMERAS:
                raise ValueError(
                    f"parameter 'camera.name' must be one of {list(SUPPORTED_CAMERAS)}, got {camera!r}"
                )
        width = _int("camera.width", v["camera.width"], 8, 1024)
        height = _int("camera.height", v["camera.height"], 8, 1024)
        if width != height:
            raise ValueError(
                f"parameters 'camera.width' and 'camera.height' must be equal, got {width}x{height}"
            )
        frame = v["frame_id"]
        if not isinstance(frame, str) or not frame:
            raise ValueError(f"parameter 'frame_id' must be a non-empty frame name, got {frame!r}")
        base_frame = v["base_frame_id"]
        if not isinstance(base_frame, str) or not base_frame:
            raise ValueError(f"parameter 'base_frame_id' must be a non-empty frame name, got {base_frame!r}")
        kind = v["observation.kind"]
        if kind not in OBS_KINDS:
            raise ValueError(f"parameter 'observation.kind' must be one of {list(OBS_KINDS)}, got {kind!r}")
        image_size = _int("observation.image_size", v["observation.image_size"], 8, 1024)
        cameras: tuple[str, ...] = ()
        if kind == "pixels":
            cams = v["observation.cameras"]
            if (
                isinstance(cams, str)
                or not isinstance(cams, Sequence)
                or not cams
                or len(set(cams)) != len(cams)
                or not all(c in SUPPORTED_CAMERAS for c in cams)
            ):
                raise ValueError(
                    f"parameter 'observation.cameras' must list distinct cameras from "
                    f"{list(SUPPORTED_CAMERAS)}, got {cams!r}"
                )
            cameras = tuple(cams)
            if camera is not None:
                raise ValueError(
                    "parameter 'camera.enabled' must be false with observation.kind 'pixels' (the "
                    "pixel cameras are published on <camera>/image_raw already)"
                )
        arm = _names("arm_joint_names", v["arm_joint_names"], 7)
        fingers = _names("finger_joint_names", v["finger_joint_names"], 2)
        if set(arm) & set(fingers):
            raise ValueError(f"parameter 'finger_joint_names' {list(fingers)} overlaps 'arm_joint_names'")
        signs = v["finger_signs"]
        if isinstance(signs, str) or not isinstance(signs, Sequence) or len(signs) != 2:
            raise ValueError(f"parameter 'finger_signs' must list 2 values of 1.0 or -1.0, got {signs!r}")
        if not all(not isinstance(x, bool) and x in (1.0, -1.0) for x in signs):
            raise ValueError(f"parameter 'finger_signs' must list 2 values of 1.0 or -1.0, got {signs!r}")
        return cls(
            task=task,
            realtime=_bool("realtime", v["realtime"]),
            control_rate_hz=rate,
            horizon=_int("horizon", v["horizon"], 1),
            seed=_int("seed", v["seed"], 0, 2**31 - 1),
            num_episodes=_int("num_episodes", v["num_episodes"], 0),
            action_timeout_s=_float("action_timeout_s", v["action_timeout_s"], 0.0, 3600.0),
            substeps=_int("realtime_substeps", v["realtime_substeps"], 1, 25),
            clock_every_substep=_bool("realtime_clock_every_substep", v["realtime_clock_every_substep"]),
            ee_pose_every_substep=_bool(
                "realtime_ee_pose_every_substep", v["realtime_ee_pose_every_substep"]
            ),
            max_action_age_ms=_float("max_action_age_ms", v["max_action_age_ms"], 0.0, 60_000.0),
            anchor_deltas=_bool("realtime_anchor_deltas", v["realtime_anchor_deltas"]),
            injected_latency_ms=_non_negative("injected_latency_ms", v["injected_latency_ms"], 10_000.0),
            injected_jitter_ms=_non_negative("injected_jitter_ms", v["injected_jitter_ms"], 10_000.0),
            stall_probability=_non_negative(
                "injected_stall_probability", v["injected_stall_probability"], 1.0
            ),
            stall_ms=_non_negative("injected_stall_ms", v["injected_stall_ms"], 10_000.0),
            plan=PlanConfig(plan_mode(v["plan_mode"]), v["plan_max_age_ms"], v["ensemble_decay"]),
            diagnostics_period_s=_float("diagnostics_period_s", v["diagnostics_period_s"], 0.01, 3600.0),
            learner_pacing_backlog=_int("learner_pacing_backlog", v["learner_pacing_backlog"], 0),
            wait_for_learner=_bool("wait_for_learner", v["wait_for_learner"]),
            learner_wait_timeout_s=_non_negative(
                "learner_wait_timeout_s", v["learner_wait_timeout_s"], 86_400.0
            ),
            frame_id=frame,
            arm_joint_names=arm,
            finger_joint_names=fingers,
            finger_signs=(float(signs[0]), float(signs[1])),
            camera=camera,
            camera_size=width,
            obs_kind=kind,
            cameras=cameras,
            image_size=image_size,
            render_parallel=_bool("observation.render_parallel", v["observation.render_parallel"]),
            base_frame_id=base_frame,
            autostart=_bool("autostart", v["autostart"]),
        )
