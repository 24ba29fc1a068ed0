"""Action safety filter: the last code between the policy and the arm.

Pure numpy, no ROS. :func:`filter_action` takes the action the policy proposed and returns the
action that will actually be sent, plus why it differs. It never raises on bad *data* (NaN,
wrong shape): it rejects and returns the hold action instead. Bad *configuration* raises
``ValueError`` once, when :class:`SafetyLimits` is built (in the node's ``on_configure``).

Actions follow the robosuite OSC_POSE convention (see ``expo_core.spec``): ``(7,)`` normalized,
``[dx, dy, dz, droll, dpitch, dyaw, gripper]``; the controller scales the translational part by
``pos_scale`` (0.05 m per unit) per control step, gripper -1 opens and +1 closes.

Order of the rules, each applied to the output of the previous one:

1. reject: wrong shape or any NaN/inf in the action or the end-effector position -> hold;
2. clip to ``[action_low, action_high]``;
3. limit the change per step: ``|a - prev_action| <= max_delta`` per component;
4. workspace box: translational components whose predicted target
   ``ee_pos + pos_scale * a[:3]`` leaves ``[workspace_low, workspace_high]`` are shrunk so the
   target lands on the boundary, and to zero if the end effector is already outside; motion back
   inside is never limited. The workspace wins over the delta limit (it may shrink a
   component by more than ``max_delta``), and the result is clipped to the bounds once more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Indices of the translational deltas in the action (OSC_POSE x, y, z).
TRANSLATION_DIMS = slice(0, 3)
_AXES = "xyz"

# Defaults: 0.5 per step on the six pose dims (half the range; a full-range swing in one 20 Hz
# step is what a diverging policy looks like) and no limit (2.0 = full range) on the gripper,
# which is a binary open/close command in robomimic demos.
_DEFAULT_MAX_DELTA = (0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 2.0)


def _per_dim(name: str, value: float | tuple[float, ...], dim: int) -> tuple[float, ...]:
    """Broadcast a scalar or check a per-dimension tuple; all finite."""
    vals = (float(value),) * dim if np.isscalar(value) else tuple(float(v) for v in value)
    if len(vals) != dim:
        raise ValueError(f"SafetyLimits.{name} must be a scalar or have {dim} values, got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"SafetyLimits.{name} must be finite, got {vals}")
    return vals


def _frozen(values: tuple[float, ...]) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class _LimitArrays:
    """:class:`SafetyLimits` as read-only arrays (:func:`_limit_arrays`)."""

    low: np.ndarray
    high: np.ndarray
    max_delta: np.ndarray
    ws_low: np.ndarray
    ws_high: np.ndarray


@dataclass(frozen=True)
class SafetyLimits:
    """Validated limits of the safety filter.

    Attributes:
        action_dim: length of the action vector (>= 4: three translations ... gripper last).
        action_low, action_high: normalized action bounds, scalar or ``(action_dim,)``,
            ``-1 <= low <= 0 <= high <= 1`` and low < high (zero, the hold, must be sendable).
        max_delta: largest change of each normalized component between consecutive sent
            actions, scalar or ``(action_dim,)``, in (0, 2]; 2.0 means unlimited.
        workspace_low, workspace_high: ``(3,)`` end-effector box in meters, in the frame of the
            ``ee_pos`` given to :func:`filter_action` (the ``ee_pose`` topic's frame: the robot
            base on hardware, robosuite's world frame in sim). The defaults cover robosuite's
            tabletop (table top at z = 0.8 m, robot base at x = -0.56 m).
        pos_scale: meters of end-effector motion per unit of translational action per step,
            in (0, 1]; 0.05 as robosuite's OSC_POSE ``output_max``.
    """

    action_dim: int = 7
    action_low: float | tuple[float, ...] = -1.0
    action_high: float | tuple[float, ...] = 1.0
    max_delta: float | tuple[float, ...] = _DEFAULT_MAX_DELTA
    workspace_low: tuple[float, float, float] = (-0.45, -0.40, 0.80)
    workspace_high: tuple[float, float, float] = (0.35, 0.40, 1.35)
    pos_scale: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.action_dim, int) or self.action_dim < 4:
            raise ValueError(f"SafetyLimits.action_dim must be an int >= 4, got {self.action_dim}")
        d = self.action_dim
        low, high = _per_dim("action_low", self.action_low, d), _per_dim("action_high", self.action_high, d)
        for i, (lo, hi) in enumerate(zip(low, high, strict=True)):
            if not (-1.0 <= lo <= 0.0 <= hi <= 1.0 and lo < hi):
                raise ValueError(
                    f"SafetyLimits.action_low/high[{i}] must satisfy -1 <= low <= 0 <= high <= 1, low < high"
                    f" (0 is the hold command), got {lo}, {hi}"
                )
        delta = _per_dim("max_delta", self.max_delta, d)
        if not all(0.0 < v <= 2.0 for v in delta):
            raise ValueError(f"SafetyLimits.max_delta must be in (0, 2], got {delta}")
        ws_low, ws_high = (
            _per_dim("workspace_low", self.workspace_low, 3),
            _per_dim("workspace_high", self.workspace_high, 3),
        )
        for ax, lo, hi in zip(_AXES, ws_low, ws_high, strict=True):
            if not lo < hi:
                raise ValueError(
                    f"SafetyLimits.workspace_low.{ax} ({lo}) must be < workspace_high.{ax} ({hi})"
                )
        if not (math.isfinite(self.pos_scale) and 0.0 < self.pos_scale <= 1.0):
            raise ValueError(f"SafetyLimits.pos_scale must be in (0, 1] m per unit, got {self.pos_scale}")
        for name, val in (("action_low", low), ("action_high", high), ("max_delta", delta)):
            object.__setattr__(self, name, val)
        object.__setattr__(self, "workspace_low", ws_low)
        object.__setattr__(self, "workspace_high", ws_high)


@lru_cache(maxsize=16)
def _limit_arrays(limits: SafetyLimits) -> _LimitArrays:
    """The limits as arrays, built once per distinct (hashable, frozen) limits: the filter runs
    every step. Kept out of SafetyLimits itself, so its fields, copies and pickles stay the tuples."""
    fields = (
        limits.action_low,
        limits.action_high,
        limits.max_delta,
        limits.workspace_low,
        limits.workspace_high,
    )
    return _LimitArrays(*(_frozen(v) for v in fields))


@dataclass(frozen=True)
class SafetyResult:
    """What the filter decided.

    Attributes:
        action: ``(action_dim,)`` float32, the action actually to send.
        modified: the sent action differs from the proposed one (always True when rejected).
        rejected: the proposal was unusable and the hold action is sent instead.
        reasons: human-readable reasons, one per rule that fired, in rule order.
    """

    action: np.ndarray
    modified: bool
    rejected: bool
    reasons: tuple[str, ...]


def hold_action(prev_action: np.ndarray | None, action_dim: int = 7) -> np.ndarray:
    """The action that keeps the arm where it is: zero pose deltas, gripper unchanged.

    The gripper keeps the previously sent command if it is known and finite; otherwise 0, which
    robosuite's Panda gripper reads as "no change" (it moves the fingers by ``sign(action)``).
    Returns ``(action_dim,)`` float32.
    """
    out = np.zeros(action_dim, dtype=np.float32)
    if prev_action is not None:
        prev = np.asarray(prev_action, dtype=np.float64).reshape(-1)
        if prev.shape == (action_dim,) and math.isfinite(prev[-1]):
            out[-1] = np.clip(prev[-1], -1.0, 1.0)
    return out


def _dims(mask: np.ndarray) -> str:
    return ",".join(str(i) for i in np.flatnonzero(mask))


def _reject(prev_action: np.ndarray | None, d: int, reason: str) -> SafetyResult:
    return SafetyResult(hold_action(prev_action, d), modified=True, rejected=True, reasons=(reason,))


def filter_action(
    action: np.ndarray,
    prev_action: np.ndarray | None,
    ee_pos: np.ndarray,
    limits: SafetyLimits,
) -> SafetyResult:
    """Make ``action`` safe to send; see the module docstring for the rules.

    Args:
        action: ``(action_dim,)`` normalized action proposed by the policy.
        prev_action: ``(action_dim,)`` the action sent on the previous step, or None at the
            start of an episode / after a hold without history (no delta limit then).
        ee_pos: ``(3,)`` current end-effector position in meters, in the workspace box frame.
        limits: validated limits.

    Returns:
        The action to send (float32) and why it was changed. Never raises on bad values.
    """
    d = limits.action_dim
    prev = None if prev_action is None else np.asarray(prev_action, dtype=np.float64).reshape(-1)
    if prev is not None and (prev.shape != (d,) or not np.isfinite(prev).all()):
        prev = None  # an unusable history is no history: skip the delta limit, hold gripper at 0
    try:
        a = np.array(action, dtype=np.float64).reshape(-1)
        pos = np.array(ee_pos, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        return _reject(prev, d, f"rejected: not numeric ({exc})")
    if a.shape != (d,):
        return _reject(prev, d, f"rejected: action has shape {a.shape}, expected ({d},)")
    finite = np.isfinite(a)
    if not finite.all():
        return _reject(prev, d, f"rejected: non-finite action in dims {_dims(~finite)}")
    if pos.shape != (3,) or not np.isfinite(pos).all():
        return _reject(prev, d, f"rejected: end-effector position unusable ({pos.tolist()})")

    # Every clip below has lower <= upper and finite operands, where np.clip(x, lo, hi) equals
    # np.minimum(np.maximum(x, lo), hi); the latter is several times cheaper on a 7-vector.
    lim = _limit_arrays(limits)
    proposed = a.astype(np.float32)
    reasons: list[str] = []

    out = (a < lim.low) | (a > lim.high)
    if out.any():
        a = np.minimum(np.maximum(a, lim.low), lim.high)
        reasons.append(f"clipped to bounds: dims {_dims(out)}")

    if prev is not None:
        too_fast = np.abs(a - prev) > lim.max_delta
        if too_fast.any():
            a = np.minimum(np.maximum(a, prev - lim.max_delta), prev + lim.max_delta)
            reasons.append(f"delta limited: dims {_dims(too_fast)}")

    t = a[TRANSLATION_DIMS]
    # Largest allowed outward step on each side; 0 once at or beyond the wall.
    up_room = np.maximum(lim.ws_high - pos, 0.0) / limits.pos_scale
    down_room = np.maximum(pos - lim.ws_low, 0.0) / limits.pos_scale
    limited_t = np.minimum(np.maximum(t, -down_room), up_room)
    hit = limited_t != t
    if hit.any():
        a[TRANSLATION_DIMS] = limited_t
        axes = "".join(_AXES[i] for i in np.flatnonzero(hit))
        reasons.append(f"workspace: {axes} limited at ee {np.round(pos, 3).tolist()}")

    # a previous action outside today's bounds cannot leak through
    a = np.minimum(np.maximum(a, lim.low), lim.high)
    sent = a.astype(np.float32)
    modified = bool((sent != proposed).any())
    return SafetyResult(sent, modified=modified, rejected=False, reasons=tuple(reasons))
