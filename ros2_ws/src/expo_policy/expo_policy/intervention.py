"""Who acts this step: the policy or the operator. Pure arbitration, no ROS, no inference.

The operator's side arrives as :class:`expo_ros.conversions.TeleopState` (topic ``teleop``,
``expo_interfaces/TeleopCommand``: from the teleop node or the sim's scripted intervener). Each
control step the policy node asks :meth:`InterventionArbiter.arbitrate` and gets one of four
modes:

=========  ==================================================================================
POLICY     nobody claims control: the policy's action, unchanged
OPERATOR   the deadman is held, the input is valid and fresh: the operator's action; the step
           is marked ``intervention`` (StepRecord / Transition)
HOLD       the deadman is held but the input cannot be used (``valid`` false: NaN, wrong axis
           count, teleop e-stop, ...; or the action is malformed), or the teleop stream went
           silent for longer than ``teleop_timeout_s`` while the deadman was held (watchdog): the
           node sends its hold (zero motion, gripper kept) with the reason, never the policy's
           action, until a fresh message says otherwise
HANDBACK   the first ``handback_steps`` steps after the operator let go: the policy's action
           blended in from the last action sent under the operator (below)
=========  ==================================================================================

Safety: arbitration only *proposes*. The node hands every proposal, the operator's included, to
the same :func:`expo_policy.safety.filter_action` as the policy's (bounds, per-step delta limit,
workspace box) and sends what the filter returns; an operator never bypasses it.

Smooth hand-back. When the deadman is released, the policy's next actions start from the last
action sent while the operator acted (``anchor``, recorded by :meth:`on_sent`) and reach the
policy's own over ``k = handback_steps`` steps: at the j-th step after release (j = 1..k) the
pose part is ``(1 - w) * anchor + w * policy`` with ``w = j / (k + 1)``, then the policy's alone.
The gripper keeps the anchor's command during the blend (a half-blended binary gripper command
would read as "open" or "no change" mid-way and could drop what the operator grasped) and
follows the policy from step k + 1. These steps are not marked ``intervention``: the policy
chose the direction. ``k = 0`` hands back at once (the safety filter's delta limit still
applies). An episode boundary (:meth:`reset`) ends a blend.

Lockstep (sim): the scripted intervener answers each observation with a TeleopCommand stamped
like it; :meth:`answered` says whether the latest message answers the observation of a given
stamp, so a lockstep node can wait for it (bounded) before it arbitrates.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from expo_ros.conversions import TeleopState

_NS = 1_000_000_000


class Mode(enum.Enum):
    POLICY = "policy"
    OPERATOR = "operator"
    HOLD = "hold"
    HANDBACK = "handback"


@dataclass(frozen=True)
class InterventionConfig:
    """Validated settings of the arbitration (policy node parameters ``intervention.*``).

    action_dim: length of the action (>= 2: pose deltas ... gripper last).
    teleop_timeout_s: a TeleopCommand older than this (receive time, node clock) while its
        deadman was held means the stream is lost: hold. > 0; the teleop node republishes at
        20 Hz by default, so 0.25 s tolerates four lost messages.
    handback_steps: steps over which the policy's actions are blended in after a release (>= 0).
    """

    action_dim: int = 7
    teleop_timeout_s: float = 0.25
    handback_steps: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.action_dim, bool) or not isinstance(self.action_dim, int) or self.action_dim < 2:
            raise ValueError(f"InterventionConfig.action_dim must be an int >= 2, got {self.action_dim!r}")
        t = self.teleop_timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not np.isfinite(t) or t <= 0:
            raise ValueError(f"InterventionConfig.teleop_timeout_s must be > 0 s, got {t!r}")
        k = self.handback_steps
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"InterventionConfig.handback_steps must be an int >= 0, got {k!r}")


@dataclass(frozen=True)
class Arbitration:
    """This step's decision.

    mode: see the module docstring. intervention: mark the step (OPERATOR only).
    reason: why HOLD (for the hold command and diagnostics); '' otherwise.
    operator_action: ``(A,)`` float32 in OPERATOR mode, else None.
    anchor, weight: HANDBACK's blend start (``(A,)`` float32) and the policy's weight in (0, 1).
    """

    mode: Mode
    intervention: bool = False
    reason: str = ""
    operator_action: np.ndarray | None = None
    anchor: np.ndarray | None = None
    weight: float = 1.0

    @property
    def needs_policy(self) -> bool:
        """Whether the policy's action is needed (POLICY, HANDBACK): skip inference otherwise."""
        return self.mode in (Mode.POLICY, Mode.HANDBACK)

    def proposal(self, policy_action: np.ndarray | None = None) -> np.ndarray:
        """The action to hand to the safety filter: ``(A,)`` float32. ``policy_action`` is
        required in POLICY and HANDBACK mode; HOLD has no proposal (ValueError)."""
        if self.mode is Mode.HOLD:
            raise ValueError(f"HOLD has no proposal: send the hold ({self.reason})")
        if self.mode is Mode.OPERATOR:
            return self.operator_action.copy()
        if policy_action is None:
            raise ValueError(f"{self.mode.value} needs the policy's action")
        policy = np.asarray(policy_action, dtype=np.float32).reshape(-1)
        if self.mode is Mode.POLICY:
            return policy.copy()
        out = (1.0 - self.weight) * self.anchor + self.weight * policy
        out[-1] = self.anchor[-1]  # gripper: the operator's until the blend ends
        return out.astype(np.float32)


def _usable(action: np.ndarray, dim: int) -> str:
    """'' when ``action`` is a finite ``(dim,)`` vector, else why not."""
    if action.shape != (dim,):
        return f"teleop action has {action.size} values, expected {dim}"
    if not np.all(np.isfinite(action)):
        return f"teleop action non-finite in dims {','.join(map(str, np.flatnonzero(~np.isfinite(action))))}"
    return ""


class InterventionArbiter:
    """Operator vs policy for one policy node; one thread (the node's executor)."""

    def __init__(self, cfg: InterventionConfig | None = None) -> None:
        self.cfg = cfg or InterventionConfig()
        self.latest: TeleopState | None = None
        self.received_ns = 0
        self._problem = ""  # why the latest message's action cannot be used
        self._operator_had_control = False  # the deadman was held at the last arbitration
        self._handback_left = 0
        self._anchor: np.ndarray | None = None
        self._last_sent: np.ndarray | None = None
        self.mode = Mode.POLICY
        self.last_reason = ""
        self.counts = dict.fromkeys(("operator_steps", "handback_steps", "holds", "takeovers", "rejected"), 0)

    # --- inputs ---------------------------------------------------------------------------
    def on_teleop(self, state: TeleopState, received_ns: int) -> None:
        """A TeleopCommand arrived at node time ``received_ns``."""
        action = np.asarray(state.action, dtype=np.float32).reshape(-1)
        self._problem = ""
        if state.deadman and state.valid:
            self._problem = _usable(action, self.cfg.action_dim)
            if self._problem:
                self.counts["rejected"] += 1
        self.latest = TeleopState(
            state.stamp_ns, bool(state.deadman), bool(state.valid), action, state.reason, state.device
        )
        self.received_ns = int(received_ns)

    def on_sent(self, action: np.ndarray) -> None:
        """The action actually sent this step (after the safety filter, or the hold)."""
        self._last_sent = np.asarray(action, dtype=np.float32).reshape(-1).copy()

    def reset(self) -> None:
        """Episode boundary: a blend in progress ends (the teleop state is kept)."""
        self._handback_left = 0
        self._anchor = None

    # --- decision -------------------------------------------------------------------------
    def answered(self, obs_stamp_ns: int) -> bool:
        """Whether the latest TeleopCommand is stamped at or after ``obs_stamp_ns`` (lockstep)."""
        return self.latest is not None and self.latest.stamp_ns >= int(obs_stamp_ns)

    def age_s(self, now_ns: int) -> float | None:
        """Seconds since the latest TeleopCommand arrived (None before the first)."""
        return None if self.latest is None else abs(int(now_ns) - self.received_ns) / _NS

    def arbitrate(self, now_ns: int, unanswered: str = "") -> Arbitration:
        """This step's decision at node time ``now_ns`` (see the module docstring).

        ``unanswered``: non-empty when the caller waited in vain for the TeleopCommand answering
        this step's observation (lockstep): while the deadman is held the latest command is an
        answer to an older observation, so hold with this reason instead of replaying it."""
        t = self.latest
        claimed = t is not None and t.deadman
        if claimed:
            if not self._operator_had_control:
                self.counts["takeovers"] += 1
            self._operator_had_control = True
            self._handback_left = 0
            if unanswered:  # before the age: the more precise reason in lockstep
                return self._hold(unanswered)
            age = self.age_s(now_ns)
            if age > self.cfg.teleop_timeout_s:
                return self._hold(
                    f"teleop stream lost: no TeleopCommand for {age * 1e3:.0f} ms while the deadman "
                    f"was held (limit {self.cfg.teleop_timeout_s * 1e3:.0f} ms)"
                )
            if not t.valid:
                return self._hold(f"teleop input invalid ({t.device or 'teleop'}): {t.reason or 'no reason'}")
            if self._problem:
                return self._hold(self._problem)
            self.mode, self.last_reason = Mode.OPERATOR, ""
            self.counts["operator_steps"] += 1
            return Arbitration(Mode.OPERATOR, intervention=True, operator_action=t.action.copy())
        if self._operator_had_control:  # released since the last step: start the hand-back
            self._operator_had_control = False
            self._handback_left = self.cfg.handback_steps
            self._anchor = self._anchor_action()
        if self._handback_left > 0 and self._anchor is not None:
            k = self.cfg.handback_steps
            j = k - self._handback_left + 1
            self._handback_left -= 1
            self.mode, self.last_reason = Mode.HANDBACK, ""
            self.counts["handback_steps"] += 1
            return Arbitration(Mode.HANDBACK, anchor=self._anchor.copy(), weight=j / (k + 1))
        self.mode, self.last_reason = Mode.POLICY, ""
        return Arbitration(Mode.POLICY)

    def _anchor_action(self) -> np.ndarray | None:
        sent = self._last_sent
        d = self.cfg.action_dim
        if sent is None or sent.shape != (d,) or not np.all(np.isfinite(sent)):
            return None  # nothing usable was sent: no blend (the safety delta limit still applies)
        return sent.copy()

    def _hold(self, reason: str) -> Arbitration:
        self.mode, self.last_reason = Mode.HOLD, reason
        self.counts["holds"] += 1
        return Arbitration(Mode.HOLD, reason=reason)

    # --- reporting ------------------------------------------------------------------------
    def status(self, now_ns: int) -> dict[str, float | int | str | bool]:
        """Diagnostics key/values (``intervention/...``)."""
        t, age = self.latest, self.age_s(now_ns)
        return {
            "intervention/mode": self.mode.value,
            "intervention/deadman": bool(t is not None and t.deadman),
            "intervention/device": t.device if t is not None else "",
            "intervention/teleop_age_ms": -1.0 if age is None else age * 1e3,
            "intervention/hold_reason": self.last_reason,
            **{f"intervention/{k}": v for k, v in self.counts.items()},
        }
