"""The teleop node's parameters: one declaration table, converted once into a validated config.

Values come from one YAML per device under ``expo_bringup/config/``: ``teleop_spacemouse.yaml``
(spacenav), ``teleop_gamepad.yaml`` (joy), ``teleop_keyboard.yaml`` (the keyboard tool); the
defaults below are the SpaceMouse's. Every field of :class:`~expo_franka.teleop_mapping.
TeleopMapping` is a parameter of the same name; ValueError names the bad parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expo_ros.params import ParamSpec, as_bool, as_float, as_floats, as_int, as_str, as_topic, bad_value

from .teleop_mapping import POSE_DIMS, TeleopMapping

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", False, "configure and activate at startup (no lifecycle manager)"),
    ParamSpec("device", "spacenav", "label carried in TeleopCommand.device"),
    ParamSpec("topics.joy", "spacenav/joy", "sensor_msgs/Joy input (spacenav/joy, joy, ...)"),
    ParamSpec("topics.action", "action", "the policy node's ActionCommands (gripper at engagement)"),
    ParamSpec("num_axes", 6, "exact number of axes of every Joy message"),
    ParamSpec("min_buttons", 0, "buttons a Joy message must have at least (state mode)"),
    ParamSpec("button_events", True, "buttons arrive as events (spacenav), not full states (joy)"),
    ParamSpec("axes", [0, 1, 2, 3, 4, 5], "axis index of dx, dy, dz, droll, dpitch, dyaw (-1 = none)"),
    ParamSpec(
        "scales", [1.0, 1.0, 1.0, 0.6, 0.6, 0.6], "multiplier of each pose dimension (sign = direction)"
    ),
    ParamSpec("plus_buttons", [-1] * POSE_DIMS, "button adding +1 to each pose dimension (-1 = none)"),
    ParamSpec("minus_buttons", [-1] * POSE_DIMS, "button adding -1 to each pose dimension (-1 = none)"),
    ParamSpec("deadzone", 0.05, "axis values up to this magnitude read as 0, in [0, 1)"),
    ParamSpec("deadman_button", 0, "button held to take control"),
    ParamSpec("gripper_toggle_button", 1, "button toggling the gripper while in control (-1 = none)"),
    ParamSpec("gripper_close_button", -1, "button closing the gripper while in control (-1 = none)"),
    ParamSpec("gripper_open_button", -1, "button opening the gripper while in control (-1 = none)"),
    ParamSpec("e_stop_button", -1, "button latching the e-stop and publishing e_stop (-1 = none)"),
    ParamSpec("gripper_initial", -1.0, "gripper state before any command: -1.0 open or 1.0 closed"),
    ParamSpec("joy_timeout_s", 0.25, "no Joy for this long while the deadman is held = stream lost [s]"),
    ParamSpec("publish_rate_hz", 20.0, "TeleopCommand republication rate on the node clock [Hz]"),
)


def _index_list(name: str, v: Any) -> tuple[int, ...]:
    if isinstance(v, str) or not isinstance(v, Sequence) or len(v) != POSE_DIMS:
        raise bad_value(name, v, f"a list of {POSE_DIMS} integers (-1 = none)")
    return tuple(as_int(f"{name}[{i}]", x, -1) for i, x in enumerate(v))


@dataclass(frozen=True)
class TeleopNodeConfig:
    """Every parameter of the teleop node, typed and validated (see :data:`PARAMETERS`)."""

    autostart: bool
    joy_topic: str
    action_topic: str
    mapping: TeleopMapping
    joy_timeout_s: float
    publish_rate_hz: float

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> TeleopNodeConfig:
        """Raw parameter values (name -> value); ValueError names the bad parameter."""
        scales = as_floats("scales", v["scales"])
        if len(scales) != POSE_DIMS:
            raise bad_value("scales", v["scales"], f"{POSE_DIMS} numbers")
        gripper = as_float("gripper_initial", v["gripper_initial"])
        if gripper not in (-1.0, 1.0):
            raise bad_value("gripper_initial", gripper, "-1.0 (open) or 1.0 (closed)")
        deadzone = as_float("deadzone", v["deadzone"], 0.0, lo_open=False)
        if deadzone >= 1.0:
            raise bad_value("deadzone", deadzone, "< 1")
        fields = dict(
            device=as_str("device", v["device"]).strip(),
            num_axes=as_int("num_axes", v["num_axes"], 1),
            min_buttons=as_int("min_buttons", v["min_buttons"], 0),
            button_events=as_bool("button_events", v["button_events"]),
            axes=_index_list("axes", v["axes"]),
            scales=scales,
            plus_buttons=_index_list("plus_buttons", v["plus_buttons"]),
            minus_buttons=_index_list("minus_buttons", v["minus_buttons"]),
            deadzone=deadzone,
            deadman_button=as_int("deadman_button", v["deadman_button"], 0),
            gripper_toggle_button=as_int("gripper_toggle_button", v["gripper_toggle_button"], -1),
            gripper_close_button=as_int("gripper_close_button", v["gripper_close_button"], -1),
            gripper_open_button=as_int("gripper_open_button", v["gripper_open_button"], -1),
            e_stop_button=as_int("e_stop_button", v["e_stop_button"], -1),
            gripper_initial=gripper,
        )
        try:
            mapping = TeleopMapping(**fields)
        except ValueError as e:  # cross-field rules (roles, counts): name the mapping parameters
            raise ValueError(f"teleop mapping parameters: {e}") from e
        return cls(
            autostart=as_bool("autostart", v["autostart"]),
            joy_topic=as_topic("topics.joy", v["topics.joy"]),
            action_topic=as_topic("topics.action", v["topics.action"]),
            mapping=mapping,
            joy_timeout_s=as_float("joy_timeout_s", v["joy_timeout_s"], 0.0),
            publish_rate_hz=as_float("publish_rate_hz", v["publish_rate_hz"], 0.0),
        )
