"""Arm safety filter: the last code between the policy and the real Franka. Pure, no ROS.

It works on *poses*, after the action was turned into a target (:mod:`franka_conversions`), and
is independent of the policy node's action filter (:mod:`expo_policy.safety`): whatever the
policy sends, what leaves the adapter satisfies these limits. :class:`ArmSafety` decides, on each
new action and on each control tick, the equilibrium pose and gripper command actually sent,
says why they differ from the proposal, and counts every rejection and limit for diagnostics.

Rules, in order (the first that applies decides):

1. no usable measured pose yet -> nothing can be sent (``no_pose``);
2. e-stop latched -> hold (``e_stop``); latched by :meth:`ArmSafety.e_stop` (topic or service)
   until :meth:`ArmSafety.clear_e_stop`. Clearing does not resume by itself: the next *new*
   action does;
3. an input stale or missing (the node's watchdog on ``current_pose`` / ``joint_states`` age)
   -> hold (``stale_input``);
4. the policy's own hold flag -> hold (``policy_hold``); a non-finite action -> hold
   (``bad_action``);
5. a tick with no new action: keep sending the last target (each action is applied exactly
   once: re-deriving it from a newer measured pose would repeat the step); once the last action
   is older than ``action_max_age_s`` -> hold (``action_timeout``);
6. a new action: the target is clipped into the workspace box (``workspace``), then its distance
   from the *measured* pose is limited to ``max_translation_step_m`` (``translation_step``,
   direction kept) and its rotation from the measured orientation to ``max_rotation_step_rad``
   (``rotation_step``, axis kept). The box is convex, so a step from inside stays inside; from
   outside, the target moves toward the box by at most one step. A gripper toggle sooner than
   ``min_gripper_toggle_interval_s`` after the previous one is refused (``gripper_rate``); the
   gripper keeps its state and the arm part is still sent.

A hold sends the measured pose at the moment the hold began (latched: an arm pushed during a
hold is pulled back, it does not drift with the push) and no gripper command. An e-stop
re-latches the hold at the newest measured pose.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from expo_ros.object_state import quat_multiply

from .franka_conversions import GripperState, Pose, axis_angle_to_quat, relative_rotation, unit_quat

#: Counter keys, for diagnostics (``rejected_<code>`` / ``limited_<code>`` / the events).
REJECTIONS = ("no_pose", "e_stop", "stale_input", "bad_action", "gripper_rate")
LIMITS = ("workspace", "translation_step", "rotation_step")
EVENTS = (
    "actions",
    "targets_sent",
    "holds_sent",
    "policy_holds",
    "action_timeouts",
    "e_stops",
    "e_stop_clears",
)
#: Every counter key, in report order.
COUNTERS = (*(f"rejected_{c}" for c in REJECTIONS), *(f"limited_{c}" for c in LIMITS), *EVENTS)


@dataclass(frozen=True)
class ArmSafetyLimits:
    """Validated limits.

    Attributes:
        workspace_low, workspace_high: ``(3,)`` box for the target position [m], in the measured
            pose's frame (franka: ``fr3_link0``, the robot base). Set for the cell.
        max_translation_step_m: largest distance target - measured position [m], (0, 0.2].
            A full OSC_POSE step is 0.05 m per axis (0.087 m diagonally).
        max_rotation_step_rad: largest rotation target vs measured orientation [rad], (0, pi].
        min_gripper_toggle_interval_s: least time between two gripper state changes [s], >= 0.
        action_max_age_s: a tick later than this after the last action holds [s], > 0.
    """

    workspace_low: tuple[float, float, float] = (0.25, -0.35, 0.03)
    workspace_high: tuple[float, float, float] = (0.75, 0.35, 0.60)
    max_translation_step_m: float = 0.06
    max_rotation_step_rad: float = 0.5
    min_gripper_toggle_interval_s: float = 1.0
    action_max_age_s: float = 0.5

    def __post_init__(self) -> None:
        low, high = (tuple(float(v) for v in b) for b in (self.workspace_low, self.workspace_high))
        if len(low) != 3 or len(high) != 3 or not all(map(math.isfinite, low + high)):
            raise ValueError(f"ArmSafetyLimits.workspace_low/high must be 3 finite values, got {low}, {high}")
        for ax, lo, hi in zip("xyz", low, high, strict=True):
            if not lo < hi:
                raise ValueError(
                    f"ArmSafetyLimits.workspace_low.{ax} ({lo}) must be < workspace_high.{ax} ({hi})"
                )
        object.__setattr__(self, "workspace_low", low)
        object.__setattr__(self, "workspace_high", high)
        for name, lo, hi, unit in (
            ("max_translation_step_m", 0.0, 0.2, "m"),
            ("max_rotation_step_rad", 0.0, math.pi, "rad"),
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and lo < v <= hi):
                raise ValueError(f"ArmSafetyLimits.{name} must be in ({lo}, {hi:.4g}] {unit}, got {v}")
        if not (
            math.isfinite(self.min_gripper_toggle_interval_s) and self.min_gripper_toggle_interval_s >= 0
        ):
            raise ValueError(
                f"ArmSafetyLimits.min_gripper_toggle_interval_s must be >= 0 s, got "
                f"{self.min_gripper_toggle_interval_s}"
            )
        if not (math.isfinite(self.action_max_age_s) and self.action_max_age_s > 0):
            raise ValueError(f"ArmSafetyLimits.action_max_age_s must be > 0 s, got {self.action_max_age_s}")


@dataclass(frozen=True)
class Decision:
    """What to send now.

    Attributes:
        pose: equilibrium pose to publish, or None (nothing can be sent: no measured pose).
        gripper: gripper state to command now, or None (no change).
        hold: ``pose`` is a hold, not a policy target.
        reasons: one line per rule that changed or rejected the proposal, in rule order.
    """

    pose: Pose | None
    gripper: GripperState | None
    hold: bool
    reasons: tuple[str, ...]


def limit_target(target: Pose, measured: Pose, limits: ArmSafetyLimits) -> tuple[Pose, list[str], list[str]]:
    """Workspace clip, then translation and rotation step limits relative to ``measured``.

    Returns (limited target, codes of the limits that fired, one reason line per code).
    Inputs must be finite with non-degenerate quaternions (ValueError otherwise).
    """
    codes: list[str] = []
    reasons: list[str] = []
    pos = np.asarray(target.position, dtype=np.float64).reshape(3)
    meas_pos = np.asarray(measured.position, dtype=np.float64).reshape(3)
    meas_q, quat = unit_quat(measured.quat), unit_quat(target.quat)

    low, high = np.asarray(limits.workspace_low), np.asarray(limits.workspace_high)
    clipped = np.clip(pos, low, high)
    if np.any(clipped != pos):
        axes = "".join("xyz"[i] for i in np.flatnonzero(clipped != pos))
        codes.append("workspace")
        reasons.append(f"workspace: target {axes} clipped to the box at {np.round(clipped, 3).tolist()}")
        pos = clipped

    step = pos - meas_pos
    dist = float(np.linalg.norm(step))
    if dist > limits.max_translation_step_m:
        pos = meas_pos + step * (limits.max_translation_step_m / dist)
        codes.append("translation_step")
        reasons.append(f"translation_step: {dist:.4f} m > {limits.max_translation_step_m:g} m, shortened")

    rotvec = relative_rotation(meas_q, quat)
    angle = float(np.linalg.norm(rotvec))
    if angle > limits.max_rotation_step_rad:
        quat = quat_multiply(axis_angle_to_quat(rotvec * (limits.max_rotation_step_rad / angle)), meas_q)
        codes.append("rotation_step")
        reasons.append(f"rotation_step: {angle:.4f} rad > {limits.max_rotation_step_rad:g} rad, shortened")
    return Pose(pos, quat), codes, reasons


def _usable(pose: Pose | None) -> Pose | None:
    """The pose with a unit quaternion, or None if it has non-finite values or a zero quaternion."""
    if pose is None:
        return None
    pos = np.asarray(pose.position, dtype=np.float64).reshape(-1)
    if pos.shape != (3,) or not np.all(np.isfinite(pos)):
        return None
    try:
        return Pose(pos, unit_quat(pose.quat))
    except ValueError:
        return None


class ArmSafety:
    """The stateful filter: e-stop latch, hold latch, last target, gripper toggle timing, counters.

    Times are seconds on the caller's clock (the node clock: sim time works); ``now`` must not
    go backwards between calls except after :meth:`reset`.
    """

    def __init__(self, limits: ArmSafetyLimits) -> None:
        self.limits = limits
        self.counters: Counter[str] = Counter()
        self._e_stop_reason: str | None = None
        self.reset()

    # --- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget targets, holds and gripper timing (deactivate); the e-stop latch stays."""
        self._target: Pose | None = None  # last policy target sent (None while holding)
        self._hold: Pose | None = None
        self.hold_reason = ""
        self._last_action_s: float | None = None
        self._gripper: GripperState | None = None
        self._last_toggle_s: float | None = None

    @property
    def e_stopped(self) -> bool:
        return self._e_stop_reason is not None

    @property
    def e_stop_reason(self) -> str:
        return self._e_stop_reason or ""

    @property
    def gripper_state(self) -> GripperState | None:
        """The last gripper state sent (None: never commanded)."""
        return self._gripper

    @property
    def holding(self) -> bool:
        return self._hold is not None

    @property
    def last_sent(self) -> Pose | None:
        """The equilibrium currently commanded (hold or target)."""
        return self._hold if self._hold is not None else self._target

    def e_stop(self, reason: str, measured: Pose | None) -> bool:
        """Latch the e-stop; re-latch the hold at ``measured``. True if it was not latched."""
        newly = self._e_stop_reason is None
        self._e_stop_reason = reason or "e-stop"
        if newly:
            self.counters["e_stops"] += 1
        m = _usable(measured)
        if m is not None:
            self._enter_hold(m, f"e_stop: {self._e_stop_reason}", relatch=True)
        return newly

    def clear_e_stop(self) -> bool:
        """Release the latch; the hold stays until the next new action. True if it was latched."""
        if self._e_stop_reason is None:
            return False
        self._e_stop_reason = None
        self.counters["e_stop_clears"] += 1
        if self._hold is not None:
            self.hold_reason = "e-stop cleared: waiting for a new action"
        return True

    # --- decisions ---------------------------------------------------------------------------
    def on_action(
        self,
        now: float,
        target: Pose | None,
        gripper: GripperState | None,
        measured: Pose | None,
        stale_reason: str = "",
        policy_hold: str | None = None,
    ) -> Decision:
        """A new action arrived: decide what to send.

        Args:
            now: node clock [s].
            target: the converted target pose (:func:`osc_target_pose`), or None if the action
                could not be converted (non-finite values): a ``bad_action`` hold.
            gripper: the gripper state asked for (after hysteresis), or None for no change.
            measured: the newest measured end-effector pose, or None if none yet.
            stale_reason: non-empty when the node's input watchdog says hold.
            policy_hold: the policy's hold reason when its command is a hold, else None.
        """
        self.counters["actions"] += 1
        self._last_action_s = now
        m = _usable(measured)
        gate = self._gate(m, stale_reason)
        if gate is not None:
            return gate
        if policy_hold is not None:
            return self._hold_decision(m, "policy_holds", f"policy_hold: {policy_hold or 'no reason given'}")
        target = _usable(target)
        if target is None:
            return self._hold_decision(m, "rejected_bad_action", "bad_action: non-finite action or target")
        pose, codes, reasons = limit_target(target, m, self.limits)
        for c in codes:
            self.counters[f"limited_{c}"] += 1
        send_gripper = None
        if gripper is not None and gripper != self._gripper:
            last = self._last_toggle_s
            wait = self.limits.min_gripper_toggle_interval_s
            if last is None or now - last >= wait:
                send_gripper, self._gripper, self._last_toggle_s = gripper, gripper, now
            else:
                self.counters["rejected_gripper_rate"] += 1
                reasons.append(
                    f"gripper_rate: {gripper.value} refused, {now - last:.3f} s since the last toggle"
                    f" < {wait:g} s"
                )
        self._hold, self.hold_reason, self._target = None, "", pose
        self.counters["targets_sent"] += 1
        return Decision(pose, send_gripper, hold=False, reasons=tuple(reasons))

    def on_tick(self, now: float, measured: Pose | None, stale_reason: str = "") -> Decision:
        """A control tick without a new action: keep the last command, or start holding."""
        m = _usable(measured)
        gate = self._gate(m, stale_reason, counting=False)
        if gate is not None:
            return gate
        if self._hold is not None:
            self.counters["holds_sent"] += 1
            return Decision(self._hold, None, hold=True, reasons=())
        age = None if self._last_action_s is None else now - self._last_action_s
        if self._target is None or age is None or age > self.limits.action_max_age_s:
            self.counters["action_timeouts"] += 1
            why = (
                "no action yet"
                if age is None
                else f"last action {age:.3f} s ago > {self.limits.action_max_age_s:g} s"
            )
            return self._hold_decision(m, None, f"action_timeout: {why}")
        self.counters["targets_sent"] += 1
        return Decision(self._target, None, hold=False, reasons=())

    def hold(self, measured: Pose | None, reason: str) -> Decision:
        """Hold now (deactivation, shutdown): the current hold pose, or ``measured`` latched."""
        m = _usable(measured)
        if m is None and self._hold is None:
            return Decision(None, None, hold=True, reasons=(f"{reason}: no usable measured pose to hold at",))
        if self._hold is None:
            self._enter_hold(m, reason)
        self.counters["holds_sent"] += 1
        return Decision(self._hold, None, hold=True, reasons=(reason,))

    def _gate(self, m: Pose | None, stale_reason: str, counting: bool = True) -> Decision | None:
        """Rules 1-3; ``counting``: count a rejected proposal (ticks propose nothing)."""
        if m is None:
            if counting:
                self.counters["rejected_no_pose"] += 1
            return Decision(None, None, hold=True, reasons=("no_pose: no usable measured pose yet",))
        if self._e_stop_reason is not None:
            if counting:
                self.counters["rejected_e_stop"] += 1
            if self._hold is None:  # e.g. latched before the first pose arrived
                self._enter_hold(m, f"e_stop: {self._e_stop_reason}")
            self.counters["holds_sent"] += 1
            return Decision(self._hold, None, hold=True, reasons=(f"e_stop: {self._e_stop_reason}",))
        if stale_reason:
            key = "rejected_stale_input" if counting else None
            return self._hold_decision(m, key, f"stale_input: {stale_reason}")
        return None

    def _hold_decision(self, m: Pose, counter: str | None, reason: str) -> Decision:
        if counter is not None:
            self.counters[counter] += 1
        self._enter_hold(m, reason)
        self.counters["holds_sent"] += 1
        return Decision(self._hold, None, hold=True, reasons=(reason,))

    def _enter_hold(self, m: Pose, reason: str, relatch: bool = False) -> None:
        if self._hold is None or relatch:
            self._hold = m
        self._target = None
        self.hold_reason = reason
