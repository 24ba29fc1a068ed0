"""The emulated franka_ros2 controller's maths, pure (no ROS): equilibrium pose -> OSC_POSE action.

franka_ros2's ``cartesian_impedance_example_controller`` pulls the arm toward the last
*equilibrium pose* it received; robosuite's OSC_POSE controller moves the arm by a normalized
delta relative to the pose measured when the action is applied
(:func:`expo_franka.franka_conversions.osc_target_pose`). Emulating the first with the second
means inverting that conversion: each control period the commanded equilibrium, relative to the
pose measured now, becomes the delta action whose OSC goal is that equilibrium. The sim then
tracks the equilibrium like a (stiff) impedance controller: exactly within one step while the
offset is within one step's range (0.05 m per axis, 0.5 rad per axis-angle component), along a
straight line at that speed otherwise.

Inverse of ``osc_target_pose`` (the round trip ``action -> pose -> action`` is the identity for
actions in [-1, 1], tested):

* position: ``a[0:3] = (p_target - p_measured) / pos_scale``;
* orientation: ``q_target = q_delta * q_measured`` (base frame), so
  ``a[3:6] = axis_angle(q_target * conj(q_measured)) / rot_scale``, the shortest rotation.

Beyond one step's range the translation and the rotation parts are each scaled down so that
their largest component is 1 (direction kept, counted as *saturated*), where robosuite would clip
each component on its own and bend the direction. The one case the inverse cannot undo:
``osc_target_pose`` keeps the previous goal orientation when all rotation components are exactly
zero (robosuite's rule); the emulator always commands the rotation toward the equilibrium.

Gripper: the adapter's width command (``gripper_width_cmd``, std_msgs/Float64, meters) becomes
robosuite's gripper action: -1 (open) for a width at or above the midpoint of the open and closed
widths, +1 (close) below it, 0 (robosuite: fingers keep still) before any width was commanded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from expo_franka.franka_conversions import (
    GRIPPER_DIM,
    GripperConfig,
    OscScaling,
    Pose,
    relative_rotation,
    unit_quat,
)

ACTION_DIM = 7


@dataclass(frozen=True)
class OscDelta:
    """One emulated control command.

    Attributes:
        action: ``(6,)`` float64 normalized OSC_POSE pose delta, each component in [-1, 1].
        saturated: the equilibrium was further than one step: the delta was scaled down.
        translation_error_m: distance equilibrium - measured position [m].
        rotation_error_rad: angle of the rotation measured -> equilibrium [rad], in [0, pi].
    """

    action: np.ndarray
    saturated: bool
    translation_error_m: float
    rotation_error_rad: float


_ROUNDING = 1e-9  # a full step recovered as 1.0000000000000002 is a full step, not saturation


def _fit_unit_box(v: np.ndarray) -> tuple[np.ndarray, bool]:
    """``v`` scaled so that ``max|v_i| <= 1``, direction kept; True if it had to be scaled."""
    peak = float(np.max(np.abs(v)))
    if peak <= 1.0 + _ROUNDING:
        return np.clip(v, -1.0, 1.0), False
    return v / peak, True


def osc_delta_action(target: Pose, measured: Pose, scaling: OscScaling) -> OscDelta:
    """The normalized OSC_POSE delta whose goal, applied at ``measured``, is ``target``.

    The inverse of :func:`expo_franka.franka_conversions.osc_target_pose` (see the module
    docstring). Both poses in one frame (positions m, quaternions x, y, z, w). Raises ValueError
    on non-finite positions or degenerate quaternions.
    """
    p_t = np.asarray(target.position, dtype=np.float64).reshape(3)
    p_m = np.asarray(measured.position, dtype=np.float64).reshape(3)
    if not (np.all(np.isfinite(p_t)) and np.all(np.isfinite(p_m))):
        raise ValueError(f"positions must be finite, got target {p_t.tolist()}, measured {p_m.tolist()}")
    dpos = p_t - p_m
    rotvec = relative_rotation(unit_quat(measured.quat), unit_quat(target.quat))
    pos, pos_sat = _fit_unit_box(dpos / scaling.pos_scale)
    rot, rot_sat = _fit_unit_box(rotvec / scaling.rot_scale)
    return OscDelta(
        action=np.concatenate([pos, rot]),
        saturated=pos_sat or rot_sat,
        translation_error_m=float(np.linalg.norm(dpos)),
        rotation_error_rad=float(np.linalg.norm(rotvec)),
    )


def gripper_action_from_width(width: float | None, cfg: GripperConfig) -> float:
    """Commanded finger width [m] -> robosuite gripper action: -1 open, +1 close, 0 keep.

    The midpoint of ``cfg.open_width`` and ``cfg.closed_width`` separates the two; None (nothing
    commanded yet) or a non-finite width keeps the fingers still (0).
    """
    if width is None or not math.isfinite(width):
        return 0.0
    return -1.0 if width >= 0.5 * (cfg.open_width + cfg.closed_width) else 1.0


def emulated_action(
    equilibrium: Pose, measured: Pose, width: float | None, scaling: OscScaling, gripper: GripperConfig
) -> tuple[np.ndarray, OscDelta]:
    """The full ``(7,)`` float64 action sent to the sim bridge, and the pose part's details."""
    delta = osc_delta_action(equilibrium, measured, scaling)
    action = np.zeros(ACTION_DIM)
    action[:GRIPPER_DIM] = delta.action
    action[GRIPPER_DIM] = gripper_action_from_width(width, gripper)
    return action, delta


class EpisodeIndices:
    """(episode, step) stamped on the emulator's commands, so the sim bridge's feedback echoes
    indices the policy node can follow: the episode advances with each done feedback of the
    current episode (the bridge resets the env then); the step is the env step the command will
    take effect in, from the measured pose's stamp: the steps reported so far in this episode
    plus the whole control periods between the newest report and the pose (a pose stamped at a
    period's end, published just before that period's feedback, belongs to the next step). The
    several commands the emulator sends within one period (one per measured pose) share it."""

    def __init__(self, period_ns: int = 50_000_000) -> None:
        self.period_ns = int(period_ns)
        self.episode = 0
        self._steps = 0  # feedbacks (env steps) of the current episode so far
        self._last_ns: int | None = None  # stamp of the newest of them

    def next(self, stamp_ns: int) -> tuple[int, int]:
        """Indices for a command answering a measured pose stamped ``stamp_ns``."""
        if self._last_ns is None:
            return self.episode, 0
        ahead = max(stamp_ns - self._last_ns, 0) // self.period_ns
        return self.episode, self._steps + ahead

    def feedback(self, episode: int, done: bool, stamp_ns: int) -> None:
        if done and episode >= self.episode:
            self.episode, self._steps, self._last_ns = episode + 1, 0, None
        elif episode == self.episode:
            self._steps += 1
            self._last_ns = stamp_ns if self._last_ns is None else max(self._last_ns, stamp_ns)
