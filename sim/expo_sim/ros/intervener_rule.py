"""When the scripted expert takes over from the policy, and when it hands back. Pure numpy.

The sim's stand-in for a human operator (:mod:`expo_sim.ros.intervener_node`) asks
:meth:`InterventionRule.step` once per observation. Two rules can trigger a takeover, each
switched off by a zero threshold:

- stall: the end effector moved less than ``stall_distance_m`` over the last ``stall_steps``
  policy-controlled steps (a policy hovering or stuck);
- distance from the expert: for ``disagreement_steps`` consecutive steps the policy's
  translational action differed from what the expert would have done in the same state by more
  than ``disagreement`` (L2 norm over dx, dy, dz in normalized units; the largest possible is
  2 * sqrt(3) ~ 3.46): a policy heading somewhere else.

No takeover in the first ``grace_steps`` steps of an episode, within ``cooldown_steps`` after a
hand-back, or once the episode's budget is spent (``max_takeovers`` takeovers or ``max_steps``
steps under the expert). The expert hands back after ``takeover_steps`` steps, when the budget
runs out, or when its script is done; then the stall window starts afresh.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntervenerConfig:
    """Thresholds and budget of the scripted intervener (parameters of the intervener node)."""

    stall_steps: int = 30
    stall_distance_m: float = 0.01
    disagreement: float = 1.0
    disagreement_steps: int = 10
    grace_steps: int = 10
    takeover_steps: int = 40
    cooldown_steps: int = 20
    max_takeovers: int = 2
    max_steps: int = 120

    def __post_init__(self) -> None:
        ints = {
            "stall_steps": 0,
            "disagreement_steps": 1,
            "grace_steps": 0,
            "takeover_steps": 1,
            "cooldown_steps": 0,
            "max_takeovers": 0,
            "max_steps": 0,
        }
        for name, lo in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"IntervenerConfig.{name} must be an integer >= {lo}, got {v!r}")
        for name in ("stall_distance_m", "disagreement"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
                raise ValueError(f"IntervenerConfig.{name} must be a finite number >= 0, got {v!r}")


@dataclass(frozen=True)
class Decision:
    """``engaged``: the expert acts on this observation; ``event``: what changed, '' if nothing."""

    engaged: bool
    event: str = ""


class InterventionRule:
    """One episode's takeover state machine (see the module docstring)."""

    def __init__(self, cfg: IntervenerConfig | None = None) -> None:
        self.cfg = cfg or IntervenerConfig()
        self.total_takeovers = 0
        self.total_steps = 0
        self.reset()

    def reset(self) -> None:
        """A new episode: budget, windows and the grace period start over."""
        self.t = 0
        self.engaged = False
        self.takeovers = 0
        self.steps_used = 0
        self._engaged_for = 0
        self._cooldown = 0
        self._positions: deque[np.ndarray] = deque(maxlen=self.cfg.stall_steps + 1)
        self._prev_expert: np.ndarray | None = None
        self._prev_engaged = False
        self._disagree_run = 0

    @property
    def budget_left(self) -> bool:
        return self.takeovers < self.cfg.max_takeovers and self.steps_used < self.cfg.max_steps

    def step(
        self,
        ee_pos: np.ndarray,
        expert_action: np.ndarray,
        policy_action: np.ndarray | None = None,
        expert_done: bool = False,
    ) -> Decision:
        """One observation: ``ee_pos`` (3,) m; ``expert_action`` (7,) what the expert would do now;
        ``policy_action`` (7,) what the policy did on the previous observation (None if unknown);
        ``expert_done``: the expert's script has run out."""
        cfg = self.cfg
        self.t += 1
        ee = np.asarray(ee_pos, dtype=np.float64).reshape(3)
        if not self._prev_engaged:
            self._positions.append(ee)
            if policy_action is not None and self._prev_expert is not None and cfg.disagreement > 0:
                gap = float(np.linalg.norm(np.asarray(policy_action)[:3] - self._prev_expert[:3]))
                self._disagree_run = self._disagree_run + 1 if gap > cfg.disagreement else 0
        self._prev_expert = np.asarray(expert_action, dtype=np.float64).copy()
        event = ""
        if self.engaged:
            why = ""
            if self._engaged_for >= cfg.takeover_steps:
                why = f"after {self._engaged_for} steps"
            elif self.steps_used >= cfg.max_steps:
                why = f"budget of {cfg.max_steps} steps spent"
            elif expert_done:
                why = "the expert's script is done"
            if why:
                self.engaged, self._cooldown, event = False, cfg.cooldown_steps, f"hand back ({why})"
                self._positions.clear()
                self._disagree_run = 0
        elif self._cooldown > 0:
            self._cooldown -= 1
        elif self.t > cfg.grace_steps and self.budget_left and not expert_done:
            why = self._trigger()
            if why:
                self.engaged, self._engaged_for, event = True, 0, f"take over ({why})"
                self.takeovers += 1
                self.total_takeovers += 1
        if self.engaged:
            self._engaged_for += 1
            self.steps_used += 1
            self.total_steps += 1
        self._prev_engaged = self.engaged
        return Decision(self.engaged, event)

    def _trigger(self) -> str:
        cfg = self.cfg
        if cfg.stall_steps and len(self._positions) == cfg.stall_steps + 1:
            moved = float(np.linalg.norm(self._positions[-1] - self._positions[0]))
            if moved < cfg.stall_distance_m:
                return f"stall: moved {moved * 1e3:.1f} mm in {cfg.stall_steps} steps"
        if cfg.disagreement > 0 and self._disagree_run >= cfg.disagreement_steps:
            return f"distance from the expert > {cfg.disagreement:g} for {self._disagree_run} steps"
        return ""
