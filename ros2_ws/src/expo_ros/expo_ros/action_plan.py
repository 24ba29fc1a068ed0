"""Executing action chunks: which action an executor applies when, from the commands' plans.

Pure Python + numpy, no ROS; shared by the sim bridge (realtime mode) and the Franka adapter.
An ActionCommand stamped ``s`` (the observation it answers) carries ``action`` for the control
period starting at ``s`` and, optionally, a plan: m more rows, row i for the period starting at
``s + (i + 1) * p`` (``p`` = ``plan_period_ns``). Counting the action as row 0, command ``c``'s
row for time ``t`` is ``j = (t - s) // p`` when ``0 <= j <= m``.

``plan_mode`` (the executors' parameter):

- ``off`` (default): plans are ignored; the executor does exactly what it did before plans
  existed (the newest fresh command's action, held until the next one).
- ``receding``: a fresh command takes effect as before (its row for that time: its action,
  unless it arrives a whole period or more after its observation); at a time with no fresh command the
  executor applies the newest command's row due then, each row once and in order, as long as
  the command's observation is at most ``plan_max_age_ms`` old (older rows are dropped and
  counted: ``plan_rows_dropped``); once its plan is used up or too old the executor keeps the
  last action, as without a plan. So one late decision is covered by the previous decision's
  plan instead of a hold.
- ``ensemble`` (temporal ensembling, as in ACT, Zhao et al. 2023): the action for time ``t`` is
  the weighted mean of every received command's row for ``t`` (each command within the age
  bound whose plan reaches ``t``), the i-th oldest weighted ``exp(-ensemble_decay * i)``
  (i = 0 the oldest): a positive decay favours the older predictions (ACT's convention, its
  default 0.01 is near uniform), 0 is the plain mean, a negative decay favours the newest. It
  is recomputed when a command arrives and whenever a row boundary passes.

A hold command (``hold``) carries no plan and always takes effect: it ends every plan before it
(in ensemble mode too: older predictions would move the arm the hold stopped). A command without
a plan counts only until the next command (ensemble: no moving average of plain actions).
``reset`` at an episode end forgets everything (a plan never crosses an episode).

Counters: ``plan_steps`` (times a plan row or a blend took effect without a fresh command),
``plan_rows_dropped`` (rows due, not yet applied, but older than the bound; once per row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

PLAN_MODES = ("off", "receding", "ensemble")


@dataclass(frozen=True)
class PlanConfig:
    """``mode``: one of :data:`PLAN_MODES`; ``max_age_ms``: a row is used only while the command's
    observation is at most this old [ms]; ``ensemble_decay``: the weight exponent (module doc)."""

    mode: str = "off"
    max_age_ms: float = 200.0
    ensemble_decay: float = 0.01

    def __post_init__(self) -> None:
        if self.mode not in PLAN_MODES:
            raise ValueError(f"parameter 'plan_mode' must be one of {list(PLAN_MODES)}, got {self.mode!r}")
        age = self.max_age_ms
        if isinstance(age, bool) or not isinstance(age, int | float) or not math.isfinite(age) or age <= 0:
            raise ValueError(f"parameter 'plan_max_age_ms' must be a number > 0, got {age!r}")
        decay = self.ensemble_decay
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not math.isfinite(decay):
            raise ValueError(f"parameter 'ensemble_decay' must be a finite number, got {decay!r}")
        if abs(decay) > 50.0:
            raise ValueError(f"parameter 'ensemble_decay' must be in [-50, 50], got {decay!r}")

    @property
    def max_age_ns(self) -> int:
        return round(self.max_age_ms * 1e6)


@dataclass(frozen=True)
class _Chunk:
    """A command as the executor keeps it: rows (m + 1, d) = action then plan."""

    stamp_ns: int
    rows: np.ndarray
    period_ns: int

    def row_index(self, now_ns: int) -> int:
        """j, the row for time ``now_ns`` (may be < 0 or past the last row)."""
        if self.period_ns <= 0:
            return 0 if now_ns >= self.stamp_ns else -1
        return (now_ns - self.stamp_ns) // self.period_ns


class PlanExecutor:
    """What to apply: :meth:`command` when a fresh command takes effect, :meth:`due` at every
    executor tick without one (module doc). Both return the action to apply now, or None for
    "no change" (``due``) / a hold (``command``: the executor applies its own hold action)."""

    def __init__(self, cfg: PlanConfig) -> None:
        self.cfg = cfg
        self._chunks: list[_Chunk] = []  # oldest first; receding: the newest only
        self._applied: tuple[tuple[int, int], ...] = ()  # (stamp, row) behind the action in effect
        self._dropped_rows: set[tuple[int, int]] = set()
        self.plan_steps = 0
        self.plan_rows_dropped = 0

    @property
    def mode(self) -> str:
        return self.cfg.mode

    def reset(self) -> None:
        """Forget every plan (an episode ended, the executor stopped); counters stay."""
        self._chunks, self._applied = [], ()
        self._dropped_rows.clear()

    def command(self, cmd: Any, now_ns: int) -> np.ndarray | None:
        """A fresh command (``expo_ros.conversions.Command``) takes effect at ``now_ns``; returns
        the action to apply (off/receding: its action; ensemble: the blend), None for a hold."""
        if cmd.hold:
            self.reset()
            return None
        action = np.asarray(cmd.action, dtype=np.float32)
        if self.cfg.mode == "off":
            return action
        rows = action[None, :]
        if cmd.plan is not None and len(cmd.plan) and cmd.plan_period_ns > 0:
            rows = np.concatenate([rows, np.asarray(cmd.plan, dtype=np.float32)], axis=0)
        chunk = _Chunk(int(cmd.stamp_ns), rows, int(cmd.plan_period_ns))
        if self.cfg.mode == "receding":  # its row for now: row 0 unless it arrives a period late
            self._chunks = [chunk]
            j = min(max(chunk.row_index(now_ns), 0), len(rows) - 1)
            if j > 0 and now_ns - chunk.stamp_ns > self.cfg.max_age_ns:
                j = 0  # its plan is too old: the action as sent, as with plan_mode off
            self._applied = ((chunk.stamp_ns, j),)
            return rows[j].copy()
        # A command without a plan predicts nothing past its own period: the next one replaces it.
        self._chunks = [c for c in self._chunks if c.period_ns > 0]
        self._chunks.append(chunk)
        self._chunks.sort(key=lambda c: c.stamp_ns)
        blend = self._blend(now_ns)
        if blend is None:  # its own row 0 is out of the age bound: the bridge applies it as sent
            self._applied = ((chunk.stamp_ns, 0),)
            return action
        return blend

    def due(self, now_ns: int) -> np.ndarray | None:
        """No fresh command at ``now_ns``: the plan's action to apply now if it changed (a row
        boundary passed), else None (keep what is in effect)."""
        if self.cfg.mode == "off" or not self._chunks:
            return None
        if self.cfg.mode == "receding":
            out = self._receding(now_ns)
        else:
            before = self._applied
            out = self._blend(now_ns)
            if out is not None and self._applied == before:
                out = None
        if out is not None:
            self.plan_steps += 1
        return out

    def _usable(self, c: _Chunk, now_ns: int) -> int | None:
        """The row of ``c`` for ``now_ns`` if within its plan and the age bound (a due row past
        the bound is counted once), else None."""
        j = c.row_index(now_ns)
        if j < 0 or j >= len(c.rows):
            return None
        if now_ns - c.stamp_ns > self.cfg.max_age_ns:
            key = (c.stamp_ns, j)
            if j > 0 and key not in self._applied and key not in self._dropped_rows:
                self._dropped_rows.add(key)
                self.plan_rows_dropped += 1
            return None
        return j

    def _receding(self, now_ns: int) -> np.ndarray | None:
        c = self._chunks[-1]
        j = self._usable(c, now_ns)
        if j is None or j == 0 or ((c.stamp_ns, j),) == self._applied:
            return None
        self._applied = ((c.stamp_ns, j),)
        return c.rows[j].copy()

    def _blend(self, now_ns: int) -> np.ndarray | None:
        """Ensemble: the weighted mean of the usable rows for ``now_ns``; None when there is none.
        Sets ``_applied`` to the contributing (stamp, row) pairs and prunes spent commands."""
        used: list[tuple[_Chunk, int]] = []
        for c in self._chunks:
            j = self._usable(c, now_ns)
            if j is not None:
                used.append((c, j))
        self._chunks = [c for c in self._chunks if c.row_index(now_ns) < len(c.rows)]
        if not used:
            return None
        w = ensemble_weights(len(used), self.cfg.ensemble_decay)
        rows = np.stack([c.rows[j] for c, j in used])
        self._applied = tuple((c.stamp_ns, j) for c, j in used)
        return (w[:, None] * rows).sum(axis=0).astype(np.float32)


def plan_mode(value: Any) -> Any:
    """The ``plan_mode`` parameter's value as a mode name: YAML (and ``-p plan_mode:=off``) reads
    an unquoted ``off`` as false, which means "off"; anything else is passed on to be checked."""
    return "off" if value is False else value


def ensemble_weights(n: int, decay: float) -> np.ndarray:
    """(n,) weights summing to 1 for n predictions, oldest first: exp(-decay * i), normalized."""
    if n < 1:
        raise ValueError(f"ensemble_weights needs n >= 1, got {n}")
    w = np.exp(-float(decay) * np.arange(n, dtype=np.float64))
    return w / w.sum()
