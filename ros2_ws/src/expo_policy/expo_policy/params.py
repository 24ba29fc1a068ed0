"""The policy node's parameters: declared in one table, converted once into a validated dataclass.

Values come from ``expo_bringup/config/policy.yaml`` (and ``-p`` overrides); the defaults below
match that file, except ``autostart`` (False here: a lifecycle node waits for its manager unless
told otherwise; the YAML sets it True for the pip-mode runner, which has no manager).
Parameters are declared with dynamic typing so that e.g. ``control_rate_hz: 20`` (an integer in
YAML) is accepted; :meth:`PolicyNodeConfig.from_values` checks every type and range and raises
ValueError naming the parameter, which the node turns into a failed configure transition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expo_core.spec import TASK_OBJECT_DIMS
from expo_core.tasks import SUPPORTED_CAMERAS
from expo_ros.params import (
    ParamSpec,
    as_bool,
    as_float,
    as_floats,
    as_int,
    as_names,
    as_str,
    as_topic,
    bad_value,
)
from expo_ros.realtime import MAX_PRIORITY

from .intervention import InterventionConfig
from .safety import SafetyLimits

_SAFE = SafetyLimits()
#: Inputs watched by the watchdog: topic -> required (a stale required input holds the arm).
WATCHED_INPUTS: dict[str, bool] = {
    "joint_states": True,
    "ee_pose": True,
    "object_poses": True,
    "image_raw": False,
    "env_feedback": False,
}
#: The same for a pixel policy (checkpoint with cameras): the base-frame pose instead of ee_pose and
#: object_poses; each camera of the checkpoint is watched too (optional, limit
#: observation.max_age_s: a missing camera holds through the observation's own check).
PIXEL_WATCHED_INPUTS: dict[str, bool] = {"joint_states": True, "ee_pose_base": True, "env_feedback": False}
_WATCHDOG = {**WATCHED_INPUTS, **PIXEL_WATCHED_INPUTS}
ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]


#: values of the ``trigger`` parameter (real-time acting).
TRIGGERS = ("observation", "timer")

#: values of the ``backend`` parameter (``backends.make_backend``'s names; a test keeps them equal).
BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt", "torch")


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("task", "lift", f"robomimic task, one of {sorted(TASK_OBJECT_DIMS)}: the observation spec"),
    ParamSpec(
        "checkpoint",
        "",
        "acting weights: a save_checkpoint .safetensors (JSON beside it), its path without suffix, "
        "a policy-weights bundle file, or a directory holding exactly one .safetensors",
    ),
    ParamSpec(
        "backend",
        "auto",
        "inference backend: auto (the fastest available, logged) | torch (CUDA graph on a GPU) | "
        "onnxruntime (CPU, or the CUDA EP where installed) | tensorrt (TensorRT + a CUDA GPU)",
    ),
    ParamSpec("device", "cpu", "torch device: cpu, cuda, cuda:N or auto (CUDA when available)"),
    ParamSpec("seed", 0, "seed of the torch.Generator for diffusion and editor noise"),
    ParamSpec("num_threads", 1, "torch intra-op CPU threads (0 = torch default); 1 keeps latency steady"),
    ParamSpec(
        "lockstep",
        True,
        "true: act once per new synchronized observation after the previous command's step was "
        "reported (sim lockstep); false: real time (see trigger)",
    ),
    ParamSpec(
        "trigger",
        "observation",
        "real time (lockstep false): observation = decide as soon as a new synchronized observation "
        "arrives (its pieces share one stamp), the timer only holds when they stop; timer = decide "
        "every timer period on the latest pieces (for sources whose pieces never share a stamp)",
    ),
    ParamSpec(
        "control_rate_hz",
        20.0,
        "timer rate on the node clock when lockstep is false: the decision rate (trigger timer) or "
        "the watchdog rate (trigger observation) [Hz]",
    ),
    ParamSpec(
        "feedback_timeout_s",
        2.0,
        "lockstep: a newer observation waits at most this long (wall) for the previous command's "
        "feedback; then the node acts without it and counts a feedback timeout [s]",
    ),
    ParamSpec("deadline_ms", 40.0, "latency budget, tick start -> action published [ms]"),
    ParamSpec(
        "rt_priority",
        0,
        "0 = normal scheduling; 1-99: the control thread (the executor's: observations, decisions, "
        "commands) runs SCHED_FIFO at this priority from configure to cleanup, so other processes "
        "on the CPU cannot delay a decision (needs an rtprio limit or CAP_SYS_NICE: configure "
        "fails and says how when refused; docs/sim_to_real.md)",
    ),
    ParamSpec(
        "gc_freeze",
        True,
        "at configure, collect once and move every object then alive (the loaded libraries and "
        "policy) into Python's permanent GC generation (gc.freeze), so that no later collection on "
        "the control thread scans them (a full pass: 128-167 ms before, ~0.02 ms after; false "
        "unfreezes what an earlier configure froze; expo_ros.heap)",
    ),
    ParamSpec("num_base_samples", 8, "OTF: N base diffusion samples, each also edited (2N candidates)"),
    ParamSpec("diagnostics_period_s", 1.0, "diagnostics publish period, wall clock [s]"),
    ParamSpec("latency_window", 1000, "samples in the rolling latency p50/p99 window"),
    ParamSpec("publish_markers", True, "publish RViz markers of candidate and chosen targets"),
    ParamSpec("publish_transitions", True, "assemble and publish transitions for the learner"),
    ParamSpec(
        "plan.max_steps",
        -1,
        "action chunks: at most this many plan rows per ActionCommand (the base's k - 1 after the "
        "action; -1 = all, 0 = never send a plan)",
    ),
    ParamSpec("autostart", False, "configure and activate at startup (no lifecycle manager)"),
    ParamSpec("observation.max_age_s", 0.25, "a piece whose header stamp is older than this holds [s]"),
    ParamSpec("observation.max_skew_s", 0.1, "largest spread of the pieces' header stamps [s]"),
    ParamSpec(
        "observation.finger_joint_names",
        ["panda_finger_joint1", "panda_finger_joint2"],
        "finger joints read from joint_states into robot0_gripper_qpos",
    ),
    ParamSpec("observation.finger_signs", [1.0, 1.0], "sign applied to each finger position (+-1.0)"),
    ParamSpec(
        "observation.best_effort",
        False,
        "subscribe joint_states, ee_pose, object_poses best effort (hears reliable and best-effort "
        "publishers; franka_ros2 publishes current_pose best effort)",
    ),
    ParamSpec(
        "observation.encode_on_arrival",
        True,
        "pixel policies: encode each camera frame as it arrives (backends that can: onnxruntime on "
        "CPU), so a decision only runs what follows the encoder",
    ),
    ParamSpec(
        "observation.arm_joint_names",
        ARM_JOINTS,
        "pixel policies: the 7 arm joints read from joint_states into robot0_joint_pos, in this order",
    ),
    ParamSpec(
        "observation.base_frame",
        "",
        "pixel policies: the frame_id ee_pose_base must carry (the robot base frame, e.g. fr3_link0 "
        "on an FR3, robot0_base in sim); '' = not checked",
    ),
    *(
        ParamSpec(
            f"cameras.{cam}.topic",
            f"{cam}/image_raw",
            f"pixel policies: sensor_msgs/Image topic of camera {cam} (rgb8 or bgr8, the checkpoint's size)",
        )
        for cam in SUPPORTED_CAMERAS
    ),
    *(
        ParamSpec(
            f"watchdog.{name}_max_age_s",
            0.25 if required else (0.5 if name == "image_raw" else 1.0),
            f"receive-age limit of {name} [s]" + ("" if required else " (optional input, never holds)"),
        )
        for name, required in _WATCHDOG.items()
    ),
    ParamSpec("safety.action_low", list(_SAFE.action_low), "normalized action lower bounds, one per dim"),
    ParamSpec("safety.action_high", list(_SAFE.action_high), "normalized action upper bounds, one per dim"),
    ParamSpec("safety.max_delta", list(_SAFE.max_delta), "largest change per step, one per dim (2.0 = none)"),
    ParamSpec("safety.workspace_low", list(_SAFE.workspace_low), "end-effector box lower corner [m]"),
    ParamSpec("safety.workspace_high", list(_SAFE.workspace_high), "end-effector box upper corner [m]"),
    ParamSpec("safety.pos_scale", _SAFE.pos_scale, "m of end-effector motion per unit action per step"),
    ParamSpec(
        "intervention.enabled",
        False,
        "subscribe teleop (expo_interfaces/TeleopCommand): an operator, or the sim's scripted "
        "intervener, acts while its deadman is held, through the same safety filter",
    ),
    ParamSpec(
        "intervention.teleop_timeout_s",
        0.25,
        "no TeleopCommand for this long (receive time, node clock) while the deadman was held: hold, "
        "'teleop stream lost' [s]",
    ),
    ParamSpec(
        "intervention.handback_steps",
        10,
        "steps over which the policy's actions are blended in from the operator's last one (0 = at once)",
    ),
    ParamSpec(
        "intervention.lockstep_wait_s",
        1.0,
        "lockstep with a teleop publisher: wait at most this long (wall) for the TeleopCommand that "
        "answers an observation, then act without it (counted; a hold if the operator had control) [s]",
    ),
)


@dataclass(frozen=True)
class PolicyNodeConfig:
    """Every parameter of the policy node, typed and validated (see :data:`PARAMETERS`)."""

    task: str
    checkpoint: str
    backend: str
    device: str
    seed: int
    num_threads: int
    lockstep: bool
    trigger: str
    control_rate_hz: float
    feedback_timeout_s: float
    deadline_ms: float
    rt_priority: int
    gc_freeze: bool
    num_base_samples: int
    diagnostics_period_s: float
    latency_window: int
    publish_markers: bool
    publish_transitions: bool
    plan_max_steps: int
    autostart: bool
    obs_max_age_s: float
    obs_max_skew_s: float
    finger_joint_names: tuple[str, str]
    finger_signs: tuple[float, float]
    best_effort_inputs: bool
    encode_on_arrival: bool
    watchdog_max_age_s: dict[str, float]
    arm_joint_names: tuple[str, ...]
    base_frame: str
    camera_topics: dict[str, str]
    safety: SafetyLimits
    intervention_enabled: bool
    intervention: InterventionConfig
    intervention_lockstep_wait_s: float

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> PolicyNodeConfig:
        """Convert raw parameter values (name -> value); ValueError names the bad parameter."""
        task = as_str("task", v["task"])
        if task not in TASK_OBJECT_DIMS:
            raise bad_value("task", task, f"one of {sorted(TASK_OBJECT_DIMS)}")
        checkpoint = as_str("checkpoint", v["checkpoint"])
        if not checkpoint.strip():
            raise ValueError(
                "parameter 'checkpoint' is empty: set it to a checkpoint or policy-weights .safetensors file"
            )
        trigger = as_str("trigger", v["trigger"])
        if trigger not in TRIGGERS:
            raise bad_value("trigger", trigger, f"one of {' | '.join(TRIGGERS)}")
        backend = as_str("backend", v["backend"])
        if backend not in BACKEND_NAMES:
            raise bad_value("backend", backend, f"one of {' | '.join(BACKEND_NAMES)}")
        device = as_str("device", v["device"])
        if not re.match(r"^(cpu|cuda(:\d+)?|auto)$", device):
            raise bad_value("device", device, "cpu, cuda, cuda:N or auto")
        fingers = v["observation.finger_joint_names"]
        if (
            isinstance(fingers, str)
            or not isinstance(fingers, Sequence)
            or len(fingers) != 2
            or not all(isinstance(f, str) and f for f in fingers)
            or fingers[0] == fingers[1]
        ):
            raise bad_value("observation.finger_joint_names", fingers, "two distinct joint names")
        arm = as_names("observation.arm_joint_names", v["observation.arm_joint_names"], 7)
        if set(arm) & set(fingers):
            raise bad_value("observation.arm_joint_names", list(arm), "7 names other than the finger joints")
        signs = as_floats("observation.finger_signs", v["observation.finger_signs"])
        if len(signs) != 2 or any(s not in (1.0, -1.0) for s in signs):
            raise bad_value("observation.finger_signs", list(signs), "two values, each 1.0 or -1.0")
        low = as_floats("safety.action_low", v["safety.action_low"])
        try:
            safety = SafetyLimits(
                action_dim=len(low),
                action_low=low,
                action_high=as_floats("safety.action_high", v["safety.action_high"]),
                max_delta=as_floats("safety.max_delta", v["safety.max_delta"]),
                workspace_low=as_floats("safety.workspace_low", v["safety.workspace_low"]),
                workspace_high=as_floats("safety.workspace_high", v["safety.workspace_high"]),
                pos_scale=as_float("safety.pos_scale", v["safety.pos_scale"], 0.0),
            )
        except ValueError as e:
            msg = str(e)
            if msg.startswith("parameter"):
                raise
            field = re.search(r"SafetyLimits\.(\w+)", msg)
            raise ValueError(f"parameter 'safety.{field.group(1) if field else '*'}': {msg}") from e
        rt_priority = as_int("rt_priority", v["rt_priority"], 0)
        if rt_priority > MAX_PRIORITY:
            raise bad_value(
                "rt_priority", rt_priority, f"an integer in [0, {MAX_PRIORITY}] (0 = normal scheduling)"
            )
        intervention = InterventionConfig(
            action_dim=safety.action_dim,
            teleop_timeout_s=as_float(
                "intervention.teleop_timeout_s", v["intervention.teleop_timeout_s"], 0.0
            ),
            handback_steps=as_int("intervention.handback_steps", v["intervention.handback_steps"], 0),
        )
        return cls(
            task=task,
            checkpoint=checkpoint,
            backend=backend,
            device=device,
            seed=as_int("seed", v["seed"], 0),
            num_threads=as_int("num_threads", v["num_threads"], 0),
            lockstep=as_bool("lockstep", v["lockstep"]),
            trigger=trigger,
            control_rate_hz=as_float("control_rate_hz", v["control_rate_hz"], 0.0),
            feedback_timeout_s=as_float("feedback_timeout_s", v["feedback_timeout_s"], 0.0),
            deadline_ms=as_float("deadline_ms", v["deadline_ms"], 0.0),
            rt_priority=rt_priority,
            gc_freeze=as_bool("gc_freeze", v["gc_freeze"]),
            num_base_samples=as_int("num_base_samples", v["num_base_samples"], 1),
            diagnostics_period_s=as_float("diagnostics_period_s", v["diagnostics_period_s"], 0.0),
            latency_window=as_int("latency_window", v["latency_window"], 2),
            publish_markers=as_bool("publish_markers", v["publish_markers"]),
            publish_transitions=as_bool("publish_transitions", v["publish_transitions"]),
            plan_max_steps=as_int("plan.max_steps", v["plan.max_steps"], -1),
            autostart=as_bool("autostart", v["autostart"]),
            obs_max_age_s=as_float("observation.max_age_s", v["observation.max_age_s"], 0.0),
            obs_max_skew_s=as_float(
                "observation.max_skew_s", v["observation.max_skew_s"], 0.0, lo_open=False
            ),
            finger_joint_names=(fingers[0], fingers[1]),
            finger_signs=(signs[0], signs[1]),
            best_effort_inputs=as_bool("observation.best_effort", v["observation.best_effort"]),
            encode_on_arrival=as_bool("observation.encode_on_arrival", v["observation.encode_on_arrival"]),
            watchdog_max_age_s={
                name: as_float(f"watchdog.{name}_max_age_s", v[f"watchdog.{name}_max_age_s"], 0.0)
                for name in _WATCHDOG
            },
            arm_joint_names=arm,
            base_frame=as_str("observation.base_frame", v["observation.base_frame"]).strip(),
            camera_topics={
                cam: as_topic(f"cameras.{cam}.topic", v[f"cameras.{cam}.topic"]) for cam in SUPPORTED_CAMERAS
            },
            safety=safety,
            intervention_enabled=as_bool("intervention.enabled", v["intervention.enabled"]),
            intervention=intervention,
            intervention_lockstep_wait_s=as_float(
                "intervention.lockstep_wait_s", v["intervention.lockstep_wait_s"], 0.0
            ),
        )

    @property
    def deadline_s(self) -> float:
        return self.deadline_ms * 1e-3
