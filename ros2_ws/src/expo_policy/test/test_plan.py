"""The plan a command carries (expo_policy.plan): capped, filtered row by row as executed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from expo_policy.backends import Decision
from expo_policy.plan import command_plan, safe_plan
from expo_policy.safety import SafetyLimits

LIMITS = SafetyLimits()  # max_delta 0.5 on the pose dims, workspace z in [0.80, 1.35], 0.05 m/unit
EE = np.array([0.0, 0.0, 1.0])


def test_rows_are_delta_limited_against_the_row_before() -> None:
    sent = np.zeros(7, np.float32)
    plan = np.array([[1.0, 0, 0, 0, 0, 0, 1], [-1.0, 0, 0, 0, 0, 0, 1]], np.float32)
    rows = safe_plan(plan, sent, EE, LIMITS)
    np.testing.assert_allclose(rows[:, 0], [0.5, -0.0])  # 0 -> 0.5 (limit), 0.5 -> -0.5 would be -1
    np.testing.assert_allclose(rows[:, 6], [1.0, 1.0])  # the gripper is not delta limited


def test_the_workspace_bound_follows_the_position_the_rows_lead_to() -> None:
    """At z = 0.9 (0.1 m above the floor of the box) going down at -0.5 (0.025 m per step): the
    action reaches 0.875, rows 1-3 reach 0.85, 0.825, 0.80; row 4 must stop at the floor."""
    sent = np.array([0, 0, -0.5, 0, 0, 0, -1], np.float32)
    plan = np.tile(sent, (5, 1))
    rows = safe_plan(plan, sent, np.array([0.0, 0.0, 0.9]), LIMITS)
    np.testing.assert_allclose(rows[:, 2], [-0.5, -0.5, -0.5, 0.0, 0.0], atol=1e-6)


def test_cap_rejection_and_no_plan() -> None:
    sent = np.zeros(7, np.float32)
    plan = np.zeros((3, 7), np.float32)
    assert safe_plan(plan, sent, EE, LIMITS, max_steps=2).shape == (2, 7)
    assert safe_plan(plan, sent, EE, LIMITS, max_steps=0) is None
    assert safe_plan(None, sent, EE, LIMITS) is None
    assert safe_plan(np.zeros((3, 6)), sent, EE, LIMITS) is None  # not rows of actions
    bad = plan.copy()
    bad[1, 0] = np.nan  # a rejected row ends the plan there
    assert safe_plan(bad, sent, EE, LIMITS).shape == (1, 7)
    bad[0, 0] = np.nan
    assert safe_plan(bad, sent, EE, LIMITS) is None


def test_only_the_policy_s_own_action_carries_a_plan() -> None:
    cfg = SimpleNamespace(safety=LIMITS, plan_max_steps=-1, control_rate_hz=20.0)
    own = np.full(7, 0.1, np.float32)
    dec = Decision(own, own[None], np.zeros(1, np.float32), 0, plan=np.zeros((3, 7), np.float32))
    rows, period = command_plan(dec, own, own, EE, cfg)
    assert rows.shape == (3, 7) and period == 50_000_000
    operator = np.full(7, -0.1, np.float32)  # the operator's action or a hand-back blend
    assert command_plan(dec, operator, operator, EE, cfg) == (None, 0)
    assert command_plan(None, operator, operator, EE, cfg) == (None, 0)  # no decision: the operator's
    assert command_plan(dec._replace(plan=None), own, own, EE, cfg) == (None, 0)
