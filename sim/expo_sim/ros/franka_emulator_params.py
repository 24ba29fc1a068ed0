"""The Franka emulator's parameters: declared in one table, converted once into a validated dataclass.

Values come from ``expo_bringup/config/franka_emulator.yaml`` (and ``-p`` overrides); the defaults
below equal that file except ``autostart`` (False here, as for the other lifecycle nodes: the
YAML sets it True for the pip-mode runner, which has no lifecycle manager). Topic names are
franka_ros2's, relative (they resolve in the emulator's namespace, like franka_ros2's own nodes
and the Franka adapter). The OSC scaling and the gripper widths must equal the adapter's
(``franka_adapter.yaml``): the emulator inverts the adapter's conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from expo_franka.franka_conversions import GripperConfig, OscScaling
from expo_ros.params import ParamSpec, as_bool, as_float, as_topic

TOPICS: dict[str, str] = {
    "equilibrium_pose": "cartesian_impedance_example_controller/equilibrium_pose",
    "gripper_width_cmd": "gripper_width_cmd",
    "current_pose": "franka_robot_state_broadcaster/current_pose",
    "action": "action",
    "env_feedback": "env_feedback",
}
_OSC, _GRIP = OscScaling(), GripperConfig()

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", False, "configure and activate at startup (no lifecycle manager)"),
    ParamSpec("diagnostics_period_s", 1.0, "diagnostics publish period, wall clock [s]"),
    *(
        ParamSpec(f"topics.{k}", v, f"topic name of {k} (relative: in the node's namespace)")
        for k, v in TOPICS.items()
    ),
    ParamSpec("osc.pos_scale", _OSC.pos_scale, "m per unit translational action (robosuite OSC_POSE)"),
    ParamSpec("osc.rot_scale", _OSC.rot_scale, "rad per unit rotational action (robosuite OSC_POSE)"),
    ParamSpec("gripper.open_width", _GRIP.open_width, "finger distance of 'open' [m] (the adapter's)"),
    ParamSpec("gripper.closed_width", _GRIP.closed_width, "grasp target width [m] (the adapter's)"),
    ParamSpec(
        "reaim_on_equilibrium",
        True,
        "also send the bridge a command when a new equilibrium arrives (from the newest measured "
        "pose, stamped 1 ns after it), as franka's controller takes a new equilibrium at once; "
        "false: only once per measured pose (up to a control period later)",
    ),
)


@dataclass(frozen=True)
class FrankaEmulatorConfig:
    """Every parameter of the Franka emulator, typed and validated (see :data:`PARAMETERS`)."""

    autostart: bool
    diagnostics_period_s: float
    topics: dict[str, str]
    osc: OscScaling
    gripper: GripperConfig
    reaim_on_equilibrium: bool = True

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> FrankaEmulatorConfig:
        """Convert raw parameter values (name -> value); ValueError names the bad parameter."""
        pos_scale = as_float("osc.pos_scale", v["osc.pos_scale"], 0.0)
        rot_scale = as_float("osc.rot_scale", v["osc.rot_scale"], 0.0)
        try:
            osc = OscScaling(pos_scale, rot_scale)
        except ValueError as e:
            raise ValueError(f"parameter 'osc.*': {e}") from e
        open_w = as_float("gripper.open_width", v["gripper.open_width"], 0.0)
        closed_w = as_float("gripper.closed_width", v["gripper.closed_width"], 0.0, lo_open=False)
        try:
            gripper = GripperConfig(open_width=open_w, closed_width=closed_w)
        except ValueError as e:
            raise ValueError(f"parameter 'gripper.*': {e}") from e
        return cls(
            autostart=as_bool("autostart", v["autostart"]),
            diagnostics_period_s=as_float("diagnostics_period_s", v["diagnostics_period_s"], 0.0),
            topics={k: as_topic(f"topics.{k}", v[f"topics.{k}"]) for k in TOPICS},
            osc=osc,
            gripper=gripper,
            reaim_on_equilibrium=as_bool("reaim_on_equilibrium", v["reaim_on_equilibrium"]),
        )
