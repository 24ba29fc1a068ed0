"""Policy action -> Franka commands: pure maths, no ROS.

The policy speaks robosuite's OSC_POSE delta action, ``(7,)`` normalized to ``[-1, 1]``:
``[dx, dy, dz, ax, ay, az, gripper]``. franka_ros2 accepts, out of the box, an *equilibrium pose*
for ``cartesian_impedance_example_controller`` and gripper goals (``franka_gripper`` move/grasp,
or ``gripper_action``). This module converts one into the other exactly as robosuite 1.4.1's
``OperationalSpaceController.set_goal`` (``robosuite/controllers/osc.py``) does:

* scaling (``Controller.scale_action``): clip to ``[-1, 1]``, then multiply per component by
  ``pos_scale`` (0.05 m) and ``rot_scale`` (0.5 rad): ``output_max`` of the default OSC_POSE
  config. Per component, not by norm: a full diagonal step is 0.05 * sqrt(3) m.
* position (``set_goal_position``): ``goal = measured_pos + dpos``; always relative to the
  position *measured* when the action arrives.
* orientation (``set_goal_orientation``): ``(ax, ay, az)`` is an axis-angle vector in the *base*
  frame; ``R_goal = R(axis-angle) @ R_measured``, i.e. ``q_goal = q_delta * q_measured``
  (Hamilton product, x, y, z, w). Left-multiplication makes the result independent of which
  tool frame the measured orientation refers to (any fixed tool offset multiplies on the
  right), so the Franka's ``current_pose`` (EE/TCP frame in ``fr3_link0``) works as is.
* robosuite updates the goal orientation only when some rotation component is nonzero
  (``math.isclose(x, 0.0)``, i.e. exactly zero); otherwise the *previous goal* orientation is
  kept. :func:`osc_target_pose` does the same when given ``prev_goal_quat``.

Frames: positions in meters and quaternions x, y, z, w (geometry_msgs order), both in the frame
of the measured pose (franka: the robot base ``fr3_link0``; robosuite's world frame has the
same axes as the robot base in the tabletop tasks, so deltas learned in sim mean the same).

Gripper: robosuite's Panda gripper moves the fingers by ``sign(action)`` (-1 opens, +1 closes);
robomimic demonstrations use exactly +-1. The Franka Hand takes discrete goals, so the action
is turned into an open/closed *state* with hysteresis (:func:`gripper_state_from_action`): a
command changes only when the action crosses ``close_threshold`` / ``open_threshold``, and
values in between keep the current state. How often the state may toggle is a safety limit
(:mod:`expo_franka.arm_safety`).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from expo_ros.object_state import quat_conjugate, quat_multiply

#: Indices in the OSC_POSE action.
POS_DIMS, ROT_DIMS, GRIPPER_DIM = slice(0, 3), slice(3, 6), 6
ACTION_DIM = 7


class Pose(NamedTuple):
    """An end-effector pose: ``position (3,)`` m and ``quat (4,)`` x, y, z, w, base frame."""

    position: np.ndarray
    quat: np.ndarray


@dataclass(frozen=True)
class OscScaling:
    """robosuite OSC_POSE ``output_max`` (``output_min`` = -``output_max``, input range [-1, 1]).

    Attributes:
        pos_scale: meters of end-effector motion per unit of translational action, (0, 1].
        rot_scale: radians of rotation per unit of rotational action, (0, pi].
    """

    pos_scale: float = 0.05
    rot_scale: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.pos_scale) and 0.0 < self.pos_scale <= 1.0):
            raise ValueError(f"OscScaling.pos_scale must be in (0, 1] m, got {self.pos_scale}")
        if not (math.isfinite(self.rot_scale) and 0.0 < self.rot_scale <= math.pi):
            raise ValueError(f"OscScaling.rot_scale must be in (0, pi] rad, got {self.rot_scale}")


def scale_osc_delta(action: np.ndarray, scaling: OscScaling) -> tuple[np.ndarray, np.ndarray]:
    """``action[:6]`` normalized -> (``dpos (3,)`` m, ``drot (3,)`` rad axis-angle), float64.

    Clips to [-1, 1] first, as robosuite's ``scale_action``; ``action`` may be ``(6,)`` or
    ``(7,)`` (the gripper is ignored here).
    """
    a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[:6], -1.0, 1.0)
    return a[POS_DIMS] * scaling.pos_scale, a[ROT_DIMS] * scaling.rot_scale


def unit_quat(q: np.ndarray) -> np.ndarray:
    """``q (4,)`` x, y, z, w normalized; raises ValueError if non-finite or of zero norm."""
    q = np.asarray(q, dtype=np.float64).reshape(4)
    n = float(np.linalg.norm(q))
    if not (math.isfinite(n) and n > 1e-9):
        raise ValueError(f"quaternion {q.tolist()} is not a rotation (norm {n})")
    return q / n


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle vector ``(3,)`` rad -> unit quaternion ``(4,)`` x, y, z, w.

    robosuite's ``axisangle2quat``: identity when the angle is (close to) zero.
    """
    v = np.asarray(rotvec, dtype=np.float64).reshape(3)
    angle = float(np.linalg.norm(v))
    if math.isclose(angle, 0.0):
        return np.array([0.0, 0.0, 0.0, 1.0])
    return np.concatenate([v / angle * math.sin(angle / 2.0), [math.cos(angle / 2.0)]])


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(4,)`` x, y, z, w -> axis-angle ``(3,)`` rad, angle in [0, pi]."""
    q = unit_quat(q)
    if q[3] < 0.0:
        q = -q  # same rotation; the shorter way round
    s = float(np.linalg.norm(q[:3]))
    if s < 1e-12:
        return np.zeros(3)
    return q[:3] / s * (2.0 * math.atan2(s, q[3]))


def relative_rotation(q_from: np.ndarray, q_to: np.ndarray) -> np.ndarray:
    """Base-frame rotation ``q_rel`` with ``q_to = q_rel * q_from``, as axis-angle ``(3,)`` rad."""
    return quat_to_axis_angle(quat_multiply(unit_quat(q_to), quat_conjugate(unit_quat(q_from))))


def rotation_angle(q_from: np.ndarray, q_to: np.ndarray) -> float:
    """Angle in rad, [0, pi], of the shortest rotation taking ``q_from`` to ``q_to``."""
    return float(np.linalg.norm(relative_rotation(q_from, q_to)))


def osc_target_pose(
    action: np.ndarray,
    measured: Pose,
    scaling: OscScaling,
    prev_goal_quat: np.ndarray | None = None,
) -> Pose:
    """The pose robosuite's OSC_POSE would drive to for ``action`` (see the module docstring).

    Args:
        action: ``(6,)`` or ``(7,)`` normalized OSC_POSE action; the gripper is ignored.
        measured: the end-effector pose measured when the action is applied (base frame).
        scaling: normalized -> meters / radians.
        prev_goal_quat: orientation of the previous goal, kept when all three rotation
            components are exactly zero (robosuite's rule). None: use the measured one.

    Returns:
        Target pose, float64; the quaternion is unit, on the measured one's hemisphere.
        Raises ValueError on non-finite inputs or a degenerate measured quaternion.
    """
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.size < 6 or not np.all(np.isfinite(a[:6])):
        raise ValueError(f"action must hold 6 finite pose components, got {a.tolist()}")
    pos = np.asarray(measured.position, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(pos)):
        raise ValueError(f"measured position {pos.tolist()} is not finite")
    q_meas = unit_quat(measured.quat)
    dpos, drot = scale_osc_delta(a, scaling)
    if prev_goal_quat is not None and not any(drot):  # robosuite: isclose(x, 0.0) <=> x == 0.0
        goal_quat = unit_quat(prev_goal_quat)
    else:
        goal_quat = quat_multiply(axis_angle_to_quat(drot), q_meas)
    if float(np.dot(goal_quat, q_meas)) < 0.0:
        goal_quat = -goal_quat
    return Pose(pos + dpos, goal_quat)


# --- gripper ------------------------------------------------------------------------------------
class GripperState(enum.Enum):
    """Discrete Franka Hand command."""

    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class GripperConfig:
    """Gripper command values and the hysteresis thresholds.

    Attributes:
        open_width: finger distance of "open" [m]; Franka Hand: at most 0.08.
        closed_width: target width of a grasp [m]; 0 closes fully (the grasp succeeds on any
            object narrower than ``closed_width + epsilon_outer``).
        speed: finger closing/opening speed [m/s], (0, 0.2].
        force: grasp force [N], (0, 140] (Franka Hand: 70 N continuous, 140 N peak).
        epsilon_inner, epsilon_outer: grasp tolerance [m] around ``closed_width``.
        close_threshold: action >= this closes, in (0, 1].
        open_threshold: action <= this opens, in [-1, 0).
    """

    open_width: float = 0.08
    closed_width: float = 0.0
    speed: float = 0.1
    force: float = 40.0
    epsilon_inner: float = 0.005
    epsilon_outer: float = 0.08
    close_threshold: float = 0.5
    open_threshold: float = -0.5

    def __post_init__(self) -> None:
        checks = (
            ("open_width", 0.0 < self.open_width <= 0.1, "in (0, 0.1] m"),
            ("closed_width", 0.0 <= self.closed_width < self.open_width, "in [0, open_width) m"),
            ("speed", 0.0 < self.speed <= 0.2, "in (0, 0.2] m/s"),
            ("force", 0.0 < self.force <= 140.0, "in (0, 140] N"),
            ("epsilon_inner", 0.0 <= self.epsilon_inner <= 0.1, "in [0, 0.1] m"),
            ("epsilon_outer", 0.0 <= self.epsilon_outer <= 0.1, "in [0, 0.1] m"),
            ("close_threshold", 0.0 < self.close_threshold <= 1.0, "in (0, 1]"),
            ("open_threshold", -1.0 <= self.open_threshold < 0.0, "in [-1, 0)"),
        )
        for name, ok, want in checks:
            value = getattr(self, name)
            if not (math.isfinite(value) and ok):
                raise ValueError(f"GripperConfig.{name} must be {want}, got {value}")


@dataclass(frozen=True)
class GripperCommand:
    """One Franka Hand goal. ``state`` OPEN -> move to ``width``; CLOSED -> grasp at ``width``
    with ``force`` and the epsilons. Widths in m, speed in m/s, force in N."""

    state: GripperState
    width: float
    speed: float
    force: float
    epsilon_inner: float
    epsilon_outer: float


def gripper_state_from_action(
    value: float, current: GripperState | None, cfg: GripperConfig
) -> GripperState | None:
    """Hysteresis: the state the gripper action asks for.

    ``value >= close_threshold`` -> CLOSED, ``value <= open_threshold`` -> OPEN, in between (or
    non-finite) -> ``current`` (None while no state was ever commanded: nothing to send).
    """
    v = float(value)
    if not math.isfinite(v):
        return current
    if v >= cfg.close_threshold:
        return GripperState.CLOSED
    if v <= cfg.open_threshold:
        return GripperState.OPEN
    return current


def gripper_command(state: GripperState, cfg: GripperConfig) -> GripperCommand:
    """The goal that realizes ``state``: open = move to ``open_width``, closed = grasp."""
    width = cfg.open_width if state is GripperState.OPEN else cfg.closed_width
    return GripperCommand(state, width, cfg.speed, cfg.force, cfg.epsilon_inner, cfg.epsilon_outer)


def gripper_width_from_joints(
    names: Sequence[str], positions: np.ndarray, finger_names: Sequence[str]
) -> float | None:
    """Finger distance [m] = ``|q_finger1| + |q_finger2|`` from a JointState; None if absent.

    Absolute values: franka_ros2 reports both fingers positive, robosuite's bridge the second
    one negative; either way the sum of magnitudes is the opening width.
    """
    index = {n: i for i, n in enumerate(names)}
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    try:
        vals = [pos[index[f]] for f in finger_names]
    except (KeyError, IndexError):
        return None
    width = float(sum(abs(v) for v in vals))
    return width if math.isfinite(width) else None
