"""Joy -> operator action: the mapping, deadman, arming, gripper, bad input, stream loss, e-stop;
the shipped device YAMLs; the keyboard tool's key -> Joy logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from expo_franka.keyboard_teleop import KeyboardJoy
from expo_franka.teleop_mapping import TeleopMapper, TeleopMapping
from expo_franka.teleop_params import PARAMETERS, TeleopNodeConfig
from expo_ros.conversions import JoyInput

MS = 1_000_000
CONFIG = Path(__file__).resolve().parents[2] / "expo_bringup" / "expo_bringup" / "config"
PAD = TeleopMapping(
    device="joy",
    num_axes=4,
    axes=(1, 0, 3, -1, -1, 2),
    scales=(0.5, 0.5, 1.0, 0.3, 0.3, -1.0),
    deadman_button=4,
    min_buttons=6,
    plus_buttons=(-1, -1, -1, 5, -1, -1),
    deadzone=0.1,
    gripper_close_button=0,
    gripper_open_button=1,
    e_stop_button=2,
)


def joy(axes, buttons, stamp: int = 0) -> JoyInput:
    return JoyInput(stamp, np.asarray(axes, np.float64), np.asarray(buttons, np.int64))


def held(*extra: int, n: int = 6) -> list[int]:
    """Buttons with the deadman (4) and ``extra`` pressed."""
    return [int(i in (4, *extra)) for i in range(n)]


def engaged(mapper: TeleopMapper, t: int = 0) -> None:
    mapper.on_joy(joy([0, 0, 0, 0], [0] * 6), t)  # released once: armed
    mapper.on_joy(joy([0, 0, 0, 0], held()), t + MS)


def test_axes_buttons_deadzone_and_scales_give_the_action() -> None:
    m = TeleopMapper(PAD)
    engaged(m)
    m.on_joy(joy([0.55, 1.0, -0.3, 0.05], held(5)), 2 * MS)
    s = m.state(3 * MS)
    assert s.deadman and s.valid and s.device == "joy" and s.stamp_ns == 3 * MS
    # dx <- axis 1 (1.0 * 0.5); dy <- axis 0 (0.55 past a 0.1 deadzone -> 0.5, * 0.5); dz <- axis 3
    # (0.05 inside the deadzone); droll <- button 5 (+1 * 0.3); dyaw <- axis 2 (-0.3 -> -2/9, * -1)
    np.testing.assert_allclose(s.action, [0.5, 0.25, 0.0, 0.3, 0.0, 0.2 / 0.9, -1.0], rtol=1e-6)
    assert s.action.dtype == np.float32


def test_deadman_release_hands_back_and_arming_blocks_a_stuck_button() -> None:
    m = TeleopMapper(PAD)
    m.on_joy(joy([0, 0, 0, 0], held()), 0)  # held from the first message: not armed
    s = m.state(MS)
    assert s.deadman and not s.valid and "not armed" in s.reason
    m.on_joy(joy([0, 0, 0, 0], [0] * 6), 2 * MS)
    s = m.state(3 * MS)
    assert not s.deadman and s.valid
    m.on_joy(joy([0, 0, 0, 0], held()), 4 * MS)
    assert m.state(5 * MS).valid and m.state(5 * MS).deadman


@pytest.mark.parametrize(
    ("axes", "buttons", "reason"),
    [
        ([0.1, np.nan, 0, 0], held(), "non-finite axes [1]"),
        ([0.1, 0, 0], held(), "3 axes, expected 4"),
        ([0.1, 0, 0, 0, 0], held(), "5 axes, expected 4"),
        ([0.1, 0, 0, 0], [0, 0, 0, 0, 1], "5 buttons, expected at least 6"),
    ],
    ids=["nan", "too_few_axes", "too_many_axes", "too_few_buttons"],
)
def test_bad_messages_never_move_the_arm(axes, buttons, reason: str) -> None:
    m = TeleopMapper(PAD)
    engaged(m)
    m.on_joy(joy(axes, buttons), 2 * MS)
    s = m.state(3 * MS)
    assert s.deadman and not s.valid and reason in s.reason  # operator keeps control: hold
    assert not np.any(s.action[:6]) and sum(m.rejected.values()) == 1
    m.on_joy(joy([0, 0, 0, 0], held()), 4 * MS)  # the next good message is usable again
    assert m.state(5 * MS).valid
    fresh = TeleopMapper(PAD)  # bad input from an idle device: the deadman stays released
    fresh.on_joy(joy([np.inf, 0, 0, 0], held()), 0)
    assert not fresh.state(MS).deadman


def test_stream_loss_while_held_is_invalid_with_the_reason() -> None:
    m = TeleopMapper(PAD, joy_timeout_s=0.25)
    engaged(m)
    assert m.state(250 * MS).valid
    s = m.state(300 * MS)
    assert s.deadman and not s.valid and "joy stream lost" in s.reason and "299 ms" in s.reason
    assert "no Joy message yet" in TeleopMapper(PAD).state(0).reason


def test_gripper_changes_only_in_control_and_starts_from_the_arm() -> None:
    m = TeleopMapper(PAD)
    m.on_joy(joy([0, 0, 0, 0], [1, 0, 0, 0, 0, 0]), 0)  # close pressed without the deadman
    assert m.gripper == -1.0
    m.on_sent_gripper(0.8)  # the policy is holding something
    m.on_joy(joy([0, 0, 0, 0], held()), MS)  # engagement starts from the arm's grip
    assert m.state(2 * MS).action[6] == 1.0
    m.on_joy(joy([0, 0, 0, 0], held(1)), 3 * MS)  # open
    assert m.state(4 * MS).action[6] == -1.0
    m.on_joy(joy([0, 0, 0, 0], held(1)), 5 * MS)  # still held: no new edge, stays open
    assert m.gripper == -1.0


def test_e_stop_latches_until_cleared_and_re_armed() -> None:
    m = TeleopMapper(PAD)
    engaged(m)
    assert m.on_joy(joy([0, 0, 0, 0], held(2)), 2 * MS) is True  # the e-stop button
    s = m.state(3 * MS)
    assert not s.valid and "e-stopped (e-stop button)" in s.reason
    m.on_joy(joy([1, 1, 1, 1], held()), 4 * MS)  # messages while e-stopped never move the arm
    assert not m.state(5 * MS).valid
    m.clear_e_stop()  # the deadman is still held: must be released first
    assert "not armed" in m.state(6 * MS).reason
    m.on_joy(joy([0, 0, 0, 0], [0] * 6), 7 * MS)
    m.on_joy(joy([0, 0, 0, 0], held()), 8 * MS)
    assert m.state(9 * MS).valid
    m.e_stop("e_stop topic")
    assert "e_stop topic" in m.state(10 * MS).reason


def test_spacenav_button_events_latch() -> None:
    """spacenav sends buttons only in button-event messages, the changed button last."""
    spacenav = TeleopMapping(
        device="spacenav", num_axes=6, axes=(0, 1, 2, 3, 4, 5), scales=(1,) * 6, deadman_button=0,
        button_events=True, gripper_toggle_button=1,
    )  # fmt: skip
    m = TeleopMapper(spacenav)
    m.on_joy(joy([0] * 6, []), 0)  # motion message at rest: armed
    m.on_joy(joy([0] * 6, [1]), MS)  # button 0 pressed
    m.on_joy(joy([0.3, 0, 0, 0, 0, 0], []), 2 * MS)  # motion: no buttons, deadman still held
    s = m.state(3 * MS)
    assert s.deadman and s.valid and s.action[0] == pytest.approx(0.3)
    m.on_joy(joy([0.3, 0, 0, 0, 0, 0], [0, 1]), 4 * MS)  # button 1 pressed (button 0 shown 0!)
    assert m.state(5 * MS).deadman and m.state(5 * MS).action[6] == 1.0  # toggled closed
    m.on_joy(joy([0] * 6, [0]), 6 * MS)  # button 0 released
    assert not m.state(7 * MS).deadman


@pytest.mark.parametrize(
    "bad",
    [
        dict(axes=(0, 1, 2, 3, 4, 9)),
        dict(scales=(1.0,) * 5),
        dict(deadman_button=-1),
        dict(gripper_close_button=4),
        dict(plus_buttons=(4, -1, -1, -1, -1, -1)),
        dict(min_buttons=4),
        dict(deadzone=1.0),
        dict(gripper_initial=0.0),
    ],
    ids=[
        "axis_index",
        "scales",
        "deadman",
        "two_roles",
        "motion_and_deadman",
        "min_buttons",
        "deadzone",
        "grip",
    ],
)
def test_mapping_validation(bad: dict) -> None:
    fields = {f: getattr(PAD, f) for f in PAD.__dataclass_fields__}
    with pytest.raises(ValueError, match="TeleopMapping"):
        TeleopMapping(**(fields | bad))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


@pytest.mark.parametrize("name", ["teleop_spacemouse.yaml", "teleop_gamepad.yaml", "teleop_keyboard.yaml"])
def test_shipped_device_configs_are_valid(name: str) -> None:
    values = _flatten(yaml.safe_load((CONFIG / name).read_text())["/**"]["ros__parameters"])
    declared = {p.name: p.default for p in PARAMETERS}
    assert set(values) == set(declared)  # every parameter set explicitly, none unknown
    cfg = TeleopNodeConfig.from_values(values)
    assert cfg.mapping.device in ("spacenav", "joy", "keyboard") and cfg.autostart


def test_the_declared_defaults_are_the_spacemouse_config() -> None:
    """teleop_params says its defaults are the SpaceMouse's: the same values as its shipped YAML
    (but autostart, off in code as for every node, on in the YAML)."""
    values = _flatten(
        yaml.safe_load((CONFIG / "teleop_spacemouse.yaml").read_text())["/**"]["ros__parameters"]
    )
    declared = {p.name: p.default for p in PARAMETERS}
    differ = {k: (declared[k], v) for k, v in values.items() if k != "autostart" and declared[k] != v}
    assert not differ, f"code default vs teleop_spacemouse.yaml: {differ}"


def test_parameter_errors_name_the_parameter() -> None:
    values = {p.name: p.default for p in PARAMETERS}
    assert TeleopNodeConfig.from_values(values).mapping.device == "spacenav"
    for name, bad in (
        ("axes", [0, 1]),
        ("scales", [1.0] * 6 + [2.0]),
        ("joy_timeout_s", 0.0),
        ("topics.joy", "a b"),
    ):
        with pytest.raises(ValueError, match=f"'{name}"):
            TeleopNodeConfig.from_values(values | {name: bad})


def test_keyboard_keys_to_joy() -> None:
    k = KeyboardJoy(hold_s=0.5)
    k.key("w", 0)
    k.key("J", 0)  # case-insensitive
    axes, buttons = k.joy(100 * MS)
    assert axes == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0] and buttons == [0, 0, 0]
    assert k.joy(600 * MS)[0] == [0.0] * 6  # no repeat within hold_s: stops
    k.key(" ", 0)
    k.key("g", 0)
    assert k.joy(MS)[1] == [1, 1, 0]
    assert k.joy(2 * MS)[1] == [1, 0, 0]  # the gripper press is one message
    k.key("x", 0)
    assert k.joy(3 * MS)[1] == [1, 0, 1]
    k.key("q", 0)
    assert k.quit
