"""The Franka adapter's parameters: declared in one table, converted once into validated dataclasses.

Values come from ``expo_bringup/config/franka_adapter.yaml`` (and ``-p`` overrides); the defaults
below equal that file except ``autostart`` (False here, as for the policy node: a lifecycle node
waits for its manager unless told otherwise). Defaults are for an FR3 with franka_ros2's names;
a Panda uses ``panda_joint1..7`` / ``panda_finger_joint1..2`` (see the YAML). Topic and action
names are relative: they resolve in the adapter's namespace, like franka_ros2's own nodes.
:meth:`FrankaAdapterConfig.from_values` checks every type and range and raises ValueError
naming the parameter; the node turns that into a failed configure transition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from expo_ros.params import ParamSpec, as_bool, as_float, as_floats, as_names, as_str, as_topic, bad_value

from .arm_safety import ArmSafetyLimits
from .franka_conversions import GripperConfig, OscScaling

#: How gripper commands leave the adapter (see :mod:`expo_franka.franka_gripper_io`).
GRIPPER_INTERFACES = ("auto", "franka_actions", "gripper_action", "width_topic")
_LIMITS, _GRIP, _OSC = ArmSafetyLimits(), GripperConfig(), OscScaling()

TOPICS: dict[str, str] = {
    "action": "action",
    "current_pose": "franka_robot_state_broadcaster/current_pose",
    "joint_states": "joint_states",
    "equilibrium_pose": "cartesian_impedance_example_controller/equilibrium_pose",
    "gripper_width_cmd": "gripper_width_cmd",
    "dry_run_equilibrium_pose": "dry_run/equilibrium_pose",
    "dry_run_gripper_width_cmd": "dry_run/gripper_width_cmd",
}
GRIPPER_ACTIONS: dict[str, str] = {
    "move_action": "franka_gripper/move",
    "grasp_action": "franka_gripper/grasp",
    "gripper_action": "franka_gripper/gripper_action",
}

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", False, "configure and activate at startup (no lifecycle manager)"),
    ParamSpec(
        "dry_run", True, "publish would-be commands on the dry_run topics only; nothing reaches the arm"
    ),
    ParamSpec("control_rate_hz", 20.0, "hold/keep-alive tick on the node clock [Hz]"),
    ParamSpec("diagnostics_period_s", 1.0, "diagnostics publish period, wall clock [s]"),
    *(
        ParamSpec(f"topics.{k}", v, f"topic name of {k} (relative: in the node's namespace)")
        for k, v in TOPICS.items()
    ),
    ParamSpec(
        "joints.arm", [f"fr3_joint{i}" for i in range(1, 8)], "arm joints that must be in joint_states"
    ),
    ParamSpec("joints.fingers", ["fr3_finger_joint1", "fr3_finger_joint2"], "finger joints (measured width)"),
    ParamSpec("gripper.interface", "auto", f"one of {GRIPPER_INTERFACES}; auto: franka actions if installed"),
    *(ParamSpec(f"gripper.{k}", v, f"{k.replace('_', ' ')} name") for k, v in GRIPPER_ACTIONS.items()),
    ParamSpec("gripper.open_width", _GRIP.open_width, "finger distance when open [m]"),
    ParamSpec("gripper.closed_width", _GRIP.closed_width, "grasp target width [m]"),
    ParamSpec("gripper.speed", _GRIP.speed, "finger speed [m/s]"),
    ParamSpec("gripper.force", _GRIP.force, "grasp force [N]"),
    ParamSpec("gripper.epsilon_inner", _GRIP.epsilon_inner, "grasp tolerance below the width [m]"),
    ParamSpec("gripper.epsilon_outer", _GRIP.epsilon_outer, "grasp tolerance above the width [m]"),
    ParamSpec("gripper.close_threshold", _GRIP.close_threshold, "gripper action >= this closes"),
    ParamSpec("gripper.open_threshold", _GRIP.open_threshold, "gripper action <= this opens"),
    ParamSpec("osc.pos_scale", _OSC.pos_scale, "m per unit translational action (robosuite OSC_POSE)"),
    ParamSpec("osc.rot_scale", _OSC.rot_scale, "rad per unit rotational action (robosuite OSC_POSE)"),
    ParamSpec("safety.workspace_low", list(_LIMITS.workspace_low), "target box lower corner, base frame [m]"),
    ParamSpec(
        "safety.workspace_high", list(_LIMITS.workspace_high), "target box upper corner, base frame [m]"
    ),
    ParamSpec(
        "safety.max_translation_step_m", _LIMITS.max_translation_step_m, "target - measured distance [m]"
    ),
    ParamSpec(
        "safety.max_rotation_step_rad", _LIMITS.max_rotation_step_rad, "target vs measured rotation [rad]"
    ),
    ParamSpec(
        "safety.min_gripper_toggle_interval_s",
        _LIMITS.min_gripper_toggle_interval_s,
        "least time between toggles [s]",
    ),
    ParamSpec("safety.action_max_age_s", _LIMITS.action_max_age_s, "no action for this long -> hold [s]"),
    ParamSpec("watchdog.current_pose_max_age_s", 0.1, "receive-age limit of current_pose [s]; stale -> hold"),
    ParamSpec("watchdog.joint_states_max_age_s", 0.2, "receive-age limit of joint_states [s]; stale -> hold"),
)


def _dataclass_error(prefix: str, cls_name: str, e: ValueError) -> ValueError:
    """``ArmSafetyLimits.max_rotation_step_rad must ...`` ->
    ``parameter 'safety.max_rotation_step_rad': ArmSafetyLimits.max_rotation_step_rad must ...``."""
    field = re.search(rf"{cls_name}\.(\w+)", str(e))
    return ValueError(f"parameter '{prefix}.{field.group(1) if field else '*'}': {e}")


@dataclass(frozen=True)
class FrankaAdapterConfig:
    """Every parameter of the Franka adapter, typed and validated (see :data:`PARAMETERS`)."""

    autostart: bool
    dry_run: bool
    control_rate_hz: float
    diagnostics_period_s: float
    topics: dict[str, str]
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, str]
    gripper_interface: str
    gripper_actions: dict[str, str]
    gripper: GripperConfig
    osc: OscScaling
    limits: ArmSafetyLimits
    current_pose_max_age_s: float
    joint_states_max_age_s: float

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> FrankaAdapterConfig:
        """Convert raw parameter values (name -> value); ValueError names the bad parameter."""
        interface = as_str("gripper.interface", v["gripper.interface"])
        if interface not in GRIPPER_INTERFACES:
            raise bad_value("gripper.interface", interface, f"one of {GRIPPER_INTERFACES}")
        fingers = as_names("joints.fingers", v["joints.fingers"], 2)
        g = {k: as_float(f"gripper.{k}", v[f"gripper.{k}"]) for k in GripperConfig.__dataclass_fields__}
        try:
            gripper = GripperConfig(**g)
        except ValueError as e:
            raise _dataclass_error("gripper", "GripperConfig", e) from e
        try:
            osc = OscScaling(
                as_float("osc.pos_scale", v["osc.pos_scale"]), as_float("osc.rot_scale", v["osc.rot_scale"])
            )
        except ValueError as e:
            if str(e).startswith("parameter"):
                raise
            raise _dataclass_error("osc", "OscScaling", e) from e
        try:
            limits = ArmSafetyLimits(
                workspace_low=as_floats("safety.workspace_low", v["safety.workspace_low"]),
                workspace_high=as_floats("safety.workspace_high", v["safety.workspace_high"]),
                **{
                    k: as_float(f"safety.{k}", v[f"safety.{k}"])
                    for k in (
                        "max_translation_step_m",
                        "max_rotation_step_rad",
                        "min_gripper_toggle_interval_s",
                        "action_max_age_s",
                    )
                },
            )
        except ValueError as e:
            if str(e).startswith("parameter"):
                raise
            raise _dataclass_error("safety", "ArmSafetyLimits", e) from e
        return cls(
            autostart=as_bool("autostart", v["autostart"]),
            dry_run=as_bool("dry_run", v["dry_run"]),
            control_rate_hz=as_float("control_rate_hz", v["control_rate_hz"], 0.0),
            diagnostics_period_s=as_float("diagnostics_period_s", v["diagnostics_period_s"], 0.0),
            topics={k: as_topic(f"topics.{k}", v[f"topics.{k}"]) for k in TOPICS},
            arm_joints=as_names("joints.arm", v["joints.arm"]),
            finger_joints=(fingers[0], fingers[1]),
            gripper_interface=interface,
            gripper_actions={k: as_topic(f"gripper.{k}", v[f"gripper.{k}"]) for k in GRIPPER_ACTIONS},
            gripper=gripper,
            osc=osc,
            limits=limits,
            current_pose_max_age_s=as_float(
                "watchdog.current_pose_max_age_s", v["watchdog.current_pose_max_age_s"], 0.0
            ),
            joint_states_max_age_s=as_float(
                "watchdog.joint_states_max_age_s", v["watchdog.joint_states_max_age_s"], 0.0
            ),
        )
