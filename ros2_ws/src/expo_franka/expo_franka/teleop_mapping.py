"""Teleoperation input (sensor_msgs/Joy) -> the policy's normalized 7-D action. Pure, no ROS.

One :class:`TeleopMapping` describes a device (SpaceMouse via ``spacenav``, a gamepad via
``joy``, the keyboard tool); :class:`TeleopMapper` turns its Joy messages into the operator's
:class:`~expo_ros.conversions.TeleopState`: deadman, validity, action. The action follows
robosuite's OSC_POSE convention (``expo_core.spec``): ``[dx, dy, dz, droll, dpitch, dyaw,
gripper]`` in [-1, 1], deltas in the robot base frame (x away from the robot, y to its left, z
up), scaled by the controller (0.05 m and 0.5 rad per unit per step), gripper -1 open, +1 close.

Pose dimension ``i`` = ``scales[i] * (deadzoned axes[axes[i]] + plus_buttons[i] -
minus_buttons[i])``, clipped to [-1, 1] (index -1 = unused). The gripper is a latched state,
changed only while the deadman is held: a toggle button, or close/open buttons; on engagement
it starts from the gripper command last sent to the arm (``on_sent_gripper``), so taking over
never drops what the policy holds.

Safety rules (a state that is not ``valid`` must never move the arm; the policy node holds):

- a message with the wrong number of axes, too few buttons, or a non-finite axis is rejected:
  the deadman keeps its last known state and the output is invalid (operator holding control ->
  hold; not holding -> the policy keeps acting);
- the Joy stream is lost (no message for ``joy_timeout_s``) while the deadman was held: invalid,
  "joy stream lost";
- arming: the deadman must be seen released before it can take control (at start and after an
  e-stop is cleared), so a stuck or taped button never takes over;
- the e-stop latch (the ``e_stop`` topic, or the mapping's e-stop button): invalid until cleared
  and re-armed.

Buttons. ``joy``'s driver sends every button's state in every message (``button_events``
false). ``spacenav`` sends buttons only in the message of a button event, as a list whose last
entry is the button that changed (``[0, 1]`` = button 1 pressed; motion messages carry none):
``button_events`` true latches each button from its events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from expo_ros.conversions import JoyInput, TeleopState

POSE_DIMS = 6
ACTION_DIM = POSE_DIMS + 1
_NS = 1_000_000_000


def _ints(name: str, values: tuple[int, ...], n: int, lo: int = -1) -> tuple[int, ...]:
    vals = tuple(values)
    if len(vals) != n or not all(isinstance(v, int) and not isinstance(v, bool) and v >= lo for v in vals):
        raise ValueError(f"TeleopMapping.{name} must be {n} integers >= {lo} (-1 = unused), got {values!r}")
    return vals


@dataclass(frozen=True)
class TeleopMapping:
    """A device's Joy layout and scaling, validated.

    device: label carried in TeleopCommand.device ('spacenav', 'joy', 'keyboard').
    num_axes: exact number of axes every message must have.
    min_buttons: buttons a message must have at least (state mode; 0 in event mode).
    button_events: buttons arrive as events (spacenav), not as a full state (joy).
    axes: (6,) axis index per pose dimension, -1 = none.
    scales: (6,) finite multipliers per pose dimension (the sign sets the direction).
    plus_buttons, minus_buttons: (6,) button indices adding +1 / -1 to a pose dimension, -1 = none.
    deadzone: axis values with ``|v| <= deadzone`` read as 0, the rest rescaled to keep 1 at 1;
        in [0, 1).
    deadman_button: the button that must be held to take control.
    gripper_toggle_button, gripper_close_button, gripper_open_button: -1 = none.
    e_stop_button: latches the e-stop (and the teleop node publishes ``e_stop``), -1 = none.
    gripper_initial: gripper state before any engagement or command: -1 (open) or 1 (closed).
    """

    device: str
    num_axes: int
    axes: tuple[int, ...]
    scales: tuple[float, ...]
    deadman_button: int
    min_buttons: int = 0
    button_events: bool = False
    plus_buttons: tuple[int, ...] = (-1,) * POSE_DIMS
    minus_buttons: tuple[int, ...] = (-1,) * POSE_DIMS
    deadzone: float = 0.0
    gripper_toggle_button: int = -1
    gripper_close_button: int = -1
    gripper_open_button: int = -1
    e_stop_button: int = -1
    gripper_initial: float = -1.0

    def __post_init__(self) -> None:
        if not self.device.strip():
            raise ValueError("TeleopMapping.device must be a non-empty label")
        for name in ("num_axes", "min_buttons"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"TeleopMapping.{name} must be an integer >= 0, got {v!r}")
        axes = _ints("axes", self.axes, POSE_DIMS)
        if any(a >= self.num_axes for a in axes):
            raise ValueError(f"TeleopMapping.axes {axes} name an axis >= num_axes ({self.num_axes})")
        scales = tuple(float(s) for s in self.scales)
        if len(scales) != POSE_DIMS or not all(np.isfinite(scales)):
            raise ValueError(f"TeleopMapping.scales must be {POSE_DIMS} finite numbers, got {self.scales!r}")
        plus, minus = (
            _ints("plus_buttons", self.plus_buttons, POSE_DIMS),
            _ints("minus_buttons", self.minus_buttons, POSE_DIMS),
        )
        singles = {
            "deadman_button": (self.deadman_button, 0),
            "gripper_toggle_button": (self.gripper_toggle_button, -1),
            "gripper_close_button": (self.gripper_close_button, -1),
            "gripper_open_button": (self.gripper_open_button, -1),
            "e_stop_button": (self.e_stop_button, -1),
        }
        for name, (v, lo) in singles.items():
            _ints(name, (v,), 1, lo)
        used = [v for v, _ in singles.values() if v >= 0] + [b for b in plus + minus if b >= 0]
        roles = [v for v, _ in singles.values() if v >= 0]
        if len(set(roles)) != len(roles) or set(roles) & {b for b in plus + minus if b >= 0}:
            raise ValueError(
                f"TeleopMapping: a button has two roles (deadman, gripper, e-stop, motion): {used}"
            )
        if not self.button_events and used and max(used) >= self.min_buttons:
            raise ValueError(
                f"TeleopMapping.min_buttons ({self.min_buttons}) must exceed every button index used "
                f"({max(used)})"
            )
        if not (0.0 <= self.deadzone < 1.0):
            raise ValueError(f"TeleopMapping.deadzone must be in [0, 1), got {self.deadzone!r}")
        if self.gripper_initial not in (-1.0, 1.0):
            raise ValueError(f"TeleopMapping.gripper_initial must be -1 or 1, got {self.gripper_initial!r}")
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "plus_buttons", plus)
        object.__setattr__(self, "minus_buttons", minus)


class TeleopMapper:
    """Joy messages -> TeleopState for one device (see the module docstring); one thread."""

    def __init__(self, mapping: TeleopMapping, joy_timeout_s: float = 0.25) -> None:
        if not (np.isfinite(joy_timeout_s) and joy_timeout_s > 0):
            raise ValueError(f"joy_timeout_s must be > 0 s, got {joy_timeout_s!r}")
        self.m = mapping
        self.joy_timeout_s = float(joy_timeout_s)
        self._buttons: dict[int, bool] = {}  # latched button states
        self._axes = np.zeros(mapping.num_axes)
        self._last_joy_ns: int | None = None
        self._problem = ""  # why the latest message was rejected
        self.deadman = False
        self.armed = False
        self.e_stop_reason: str | None = None
        self.gripper = float(mapping.gripper_initial)
        self._sent_gripper: float | None = None
        self.messages = 0
        self.rejected: Counter[str] = Counter()

    # --- inputs ---------------------------------------------------------------------------
    def on_joy(self, joy: JoyInput, now_ns: int) -> bool:
        """One Joy message, received at ``now_ns``. Returns True when it pressed the e-stop
        button (the caller publishes ``e_stop``)."""
        self.messages += 1
        self._last_joy_ns = int(now_ns)
        axes, buttons = np.asarray(joy.axes, dtype=np.float64), np.asarray(joy.buttons).reshape(-1)
        problem = ""
        if axes.shape != (self.m.num_axes,):
            problem = f"{axes.size} axes, expected {self.m.num_axes}"
        elif not np.all(np.isfinite(axes)):
            problem = f"non-finite axes {np.flatnonzero(~np.isfinite(axes)).tolist()}"
        elif not self.m.button_events and buttons.size < self.m.min_buttons:
            problem = f"{buttons.size} buttons, expected at least {self.m.min_buttons}"
        self._problem = problem
        if problem:
            self.rejected[problem] += 1
            return False
        before = dict(self._buttons)
        if self.m.button_events:
            if buttons.size:
                self._buttons[buttons.size - 1] = bool(buttons[-1])
        else:
            self._buttons = {i: bool(b) for i, b in enumerate(buttons.tolist())}
        self._axes = axes

        def pressed(i: int) -> bool:  # rising edge of button i in this message
            return i >= 0 and self._buttons.get(i, False) and not before.get(i, False)

        deadman = self._buttons.get(self.m.deadman_button, False)
        if not deadman and self.e_stop_reason is None:
            self.armed = True  # released: may take control next time
        if deadman and not self.deadman and self._sent_gripper is not None:
            self.gripper = self._sent_gripper  # engage from the arm's current grip
        self.deadman = deadman
        if deadman:
            if pressed(self.m.gripper_toggle_button):
                self.gripper = -self.gripper
            if pressed(self.m.gripper_close_button):
                self.gripper = 1.0
            if pressed(self.m.gripper_open_button):
                self.gripper = -1.0
        if pressed(self.m.e_stop_button):
            self.e_stop("e-stop button")
            return True
        return False

    def on_sent_gripper(self, command: float) -> None:
        """The gripper command last sent to the arm (ActionCommand.action[-1]); sign = state."""
        if np.isfinite(command) and command != 0.0:
            self._sent_gripper = 1.0 if command > 0 else -1.0

    def e_stop(self, reason: str) -> None:
        """Latch the e-stop: invalid until :meth:`clear_e_stop` and a deadman release."""
        self.e_stop_reason = reason
        self.armed = False

    def clear_e_stop(self) -> None:
        self.e_stop_reason = None
        self.armed = False  # re-arm: the deadman must be seen released first
        if not self.deadman:
            self.armed = True

    # --- output ---------------------------------------------------------------------------
    def action(self) -> np.ndarray:
        """``(7,)`` float32 from the latest accepted axes and buttons."""
        out = np.zeros(ACTION_DIM, dtype=np.float64)
        dz = self.m.deadzone
        for i in range(POSE_DIMS):
            v = 0.0
            if self.m.axes[i] >= 0:
                a = float(self._axes[self.m.axes[i]])
                v = 0.0 if abs(a) <= dz else np.sign(a) * (abs(a) - dz) / (1.0 - dz)
            v += float(self._buttons.get(self.m.plus_buttons[i], False))
            v -= float(self._buttons.get(self.m.minus_buttons[i], False))
            out[i] = self.m.scales[i] * v
        out[:POSE_DIMS] = np.clip(out[:POSE_DIMS], -1.0, 1.0)
        out[POSE_DIMS] = self.gripper
        return out.astype(np.float32)

    def state(self, now_ns: int) -> TeleopState:
        """The operator's state at ``now_ns`` (publication time = the stamp)."""
        device = self.m.device
        reason = self._invalid_reason(now_ns)
        if reason:
            return TeleopState(
                int(now_ns), self.deadman, False, np.zeros(ACTION_DIM, np.float32), reason, device
            )
        return TeleopState(int(now_ns), self.deadman, True, self.action(), "", device)

    def joy_age_s(self, now_ns: int) -> float | None:
        return None if self._last_joy_ns is None else abs(int(now_ns) - self._last_joy_ns) / _NS

    def _invalid_reason(self, now_ns: int) -> str:
        if self.e_stop_reason is not None:
            return f"e-stopped ({self.e_stop_reason}): clear_e_stop, then release the deadman"
        age = self.joy_age_s(now_ns)
        if age is None:
            return "no Joy message yet"
        if age > self.joy_timeout_s:
            limit = self.joy_timeout_s * 1e3
            return f"joy stream lost: no Joy message for {age * 1e3:.0f} ms (limit {limit:.0f} ms)"
        if self._problem:
            return f"bad Joy message: {self._problem}"
        if self.deadman and not self.armed:
            return "not armed: release the deadman once before taking control"
        return ""
