"""The plan an ActionCommand carries (action chunks, issue 19): the chosen candidate's next
actions, safety-filtered as the continuation of the action sent.

Pure numpy, no ROS. A backend whose base predicts k actions returns ``Decision.plan`` (k - 1, d):
the rest of the chosen candidate's chunk. :func:`safe_plan` caps it to ``plan.max_steps`` rows
and runs every row through :func:`expo_policy.safety.filter_action` in order, as if the previous
rows had been executed: each row's delta limit is taken against the row before it (the first
against the action sent) and its workspace bound at the end-effector position the previous rows
lead to (``ee_pos + pos_scale * sum of their translations``). A row the filter rejects ends the
plan there (the executor then keeps the last row, as without a plan). Holds, the operator's
actions and hand-back blends carry no plan (:func:`command_plan`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .safety import TRANSLATION_DIMS, SafetyLimits, filter_action


def safe_plan(
    plan: np.ndarray | None, sent: np.ndarray, ee_pos: np.ndarray, limits: SafetyLimits, max_steps: int = -1
) -> np.ndarray | None:
    """``plan (m, d)`` -> the filtered rows (m', d) float32, m' <= m (and <= ``max_steps`` when
    >= 0), or None when nothing is left. ``sent (d,)``: the action sent now (after the filter);
    ``ee_pos (3,)``: the end-effector position it was filtered at."""
    if plan is None or max_steps == 0:
        return None
    rows = np.asarray(plan, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != limits.action_dim:
        return None  # not rows of actions: no plan rather than a wrong one
    if max_steps > 0:
        rows = rows[:max_steps]
    prev = np.asarray(sent, dtype=np.float64)
    pos = np.asarray(ee_pos, dtype=np.float64) + limits.pos_scale * prev[TRANSLATION_DIMS]
    out = []
    for row in rows:
        res = filter_action(row, prev, pos, limits)
        if res.rejected:
            break
        out.append(res.action)
        prev = res.action.astype(np.float64)
        pos = pos + limits.pos_scale * prev[TRANSLATION_DIMS]
    return np.stack(out).astype(np.float32) if out else None


def command_plan(
    decision: Any, proposal: np.ndarray, sent: np.ndarray, ee_pos: np.ndarray, cfg: Any
) -> tuple[np.ndarray | None, int]:
    """``(plan rows or None, plan_period_ns)`` for the command sending ``sent``. ``decision``: the
    backend's :class:`~expo_policy.backends.Decision` (None when the operator acted); a plan only
    when ``proposal`` is its own action (not the operator's, not a hand-back blend). ``cfg``: the
    node's :class:`~expo_policy.params.PolicyNodeConfig` (``safety``, ``plan_max_steps``,
    ``control_rate_hz``: the rows are one control period apart)."""
    own = decision is not None and np.array_equal(proposal, decision.action)
    rows = safe_plan(decision.plan, sent, ee_pos, cfg.safety, cfg.plan_max_steps) if own else None
    return rows, (round(1e9 / cfg.control_rate_hz) if rows is not None else 0)
