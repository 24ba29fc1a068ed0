"""Arbitration between the policy and the operator: who acts, holds on bad or lost teleop input,
the smooth hand-back, and the operator's actions through the same safety filter."""

from __future__ import annotations

import numpy as np
import pytest
from expo_policy.intervention import InterventionArbiter, InterventionConfig, Mode
from expo_policy.safety import SafetyLimits, filter_action
from expo_ros.conversions import TeleopState

MS = 1_000_000
T0 = 1_000_000_000_000
POLICY = np.array([0.5, -0.5, 0.25, 0.0, 0.0, 0.1, -1.0], np.float32)
OPERATOR = np.array([-0.2, 0.3, 0.0, 0.0, 0.1, 0.0, 1.0], np.float32)


def teleop(
    deadman: bool, action=OPERATOR, valid: bool = True, reason: str = "", stamp: int = T0
) -> TeleopState:
    return TeleopState(stamp, deadman, valid, np.asarray(action, np.float32), reason, "joy")


def step(arb: InterventionArbiter, now: int, policy=POLICY) -> tuple[Mode, np.ndarray | None, str]:
    """One control step as the node runs it: arbitrate, propose, (no filter here), record sent."""
    a = arb.arbitrate(now)
    if a.mode is Mode.HOLD:
        sent = np.r_[np.zeros(6, np.float32), np.float32(1.0)]  # the node's hold keeps the gripper
        arb.on_sent(sent)
        return a.mode, None, a.reason
    sent = a.proposal(policy if a.needs_policy else None)
    arb.on_sent(sent)
    return a.mode, sent, a.reason


def test_policy_acts_until_the_deadman_is_held() -> None:
    arb = InterventionArbiter()
    a = arb.arbitrate(T0)
    assert a.mode is Mode.POLICY and not a.intervention and a.needs_policy
    np.testing.assert_array_equal(a.proposal(POLICY), POLICY)
    arb.on_teleop(teleop(False), T0)  # a stream without the deadman changes nothing
    assert arb.arbitrate(T0 + 10 * MS).mode is Mode.POLICY
    arb.on_teleop(teleop(True), T0 + 20 * MS)
    a = arb.arbitrate(T0 + 30 * MS)
    assert a.mode is Mode.OPERATOR and a.intervention and not a.needs_policy
    np.testing.assert_array_equal(a.proposal(), OPERATOR)
    assert arb.counts["takeovers"] == 1 and arb.counts["operator_steps"] == 1


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (teleop(True, valid=False, reason="joy: NaN in axes 1"), "NaN in axes 1"),
        (teleop(True, valid=False, reason="e-stopped: latched by e_stop"), "e-stopped"),
        (teleop(True, action=[0.1, np.nan, 0, 0, 0, 0, 1]), "non-finite in dims 1"),
        (teleop(True, action=np.zeros(5)), "5 values, expected 7"),
        (teleop(True, action=np.zeros(0)), "0 values"),
    ],
    ids=["invalid", "e_stopped", "nan", "wrong_length", "empty"],
)
def test_bad_operator_input_holds_and_never_falls_back_to_the_policy(msg: TeleopState, expected: str) -> None:
    arb = InterventionArbiter()
    arb.on_teleop(msg, T0)
    a = arb.arbitrate(T0)
    assert a.mode is Mode.HOLD and expected in a.reason and not a.intervention
    with pytest.raises(ValueError, match="HOLD"):
        a.proposal(POLICY)
    assert arb.status(T0)["intervention/hold_reason"] == a.reason


def test_watchdog_holds_when_the_stream_stops_while_the_deadman_is_held() -> None:
    arb = InterventionArbiter(InterventionConfig(teleop_timeout_s=0.25))
    arb.on_teleop(teleop(True), T0)
    assert arb.arbitrate(T0 + 250 * MS).mode is Mode.OPERATOR  # at the limit: still fresh
    a = arb.arbitrate(T0 + 400 * MS)
    assert a.mode is Mode.HOLD and "stream lost" in a.reason and "400 ms" in a.reason
    assert arb.status(T0 + 400 * MS)["intervention/teleop_age_ms"] == pytest.approx(400.0)
    assert arb.arbitrate(T0 + 900 * MS).mode is Mode.HOLD  # latched until a fresh message
    arb.on_teleop(teleop(True), T0 + 950 * MS)
    assert arb.arbitrate(T0 + 960 * MS).mode is Mode.OPERATOR
    arb.on_teleop(teleop(False), T0 + 1000 * MS)  # released, then the stream stops: the policy acts
    assert arb.arbitrate(T0 + 5000 * MS).mode is Mode.POLICY  # (nothing sent here: no blend anchor)
    assert arb.counts["takeovers"] == 1  # one continuous claim


def test_hand_back_blends_from_the_last_sent_action_without_a_jump() -> None:
    k = 4
    arb = InterventionArbiter(InterventionConfig(handback_steps=k))
    arb.on_teleop(teleop(True), T0)
    mode, last_operator, _ = step(arb, T0)
    assert mode is Mode.OPERATOR
    arb.on_teleop(teleop(False), T0 + 50 * MS)
    sent = [step(arb, T0 + (2 + j) * 50 * MS) for j in range(k + 2)]
    assert [m for m, _, _ in sent] == [Mode.HANDBACK] * k + [Mode.POLICY] * 2
    actions = np.stack([last_operator] + [a for _, a, _ in sent])
    for j in range(1, k + 1):
        w = j / (k + 1)
        np.testing.assert_allclose(actions[j, :6], (1 - w) * OPERATOR[:6] + w * POLICY[:6], rtol=1e-6)
        assert actions[j, 6] == OPERATOR[6]  # the operator's grip is kept during the blend
    np.testing.assert_array_equal(actions[k + 1], POLICY)
    steps = np.abs(np.diff(actions[:, :6], axis=0))
    gap = np.abs(POLICY[:6] - OPERATOR[:6])
    assert np.all(steps <= gap / (k + 1) + 1e-6)  # no step moves more than 1/(k+1) of the gap
    assert arb.counts["handback_steps"] == k


def test_no_hand_back_blend_when_disabled_and_reset_ends_a_blend() -> None:
    arb = InterventionArbiter(InterventionConfig(handback_steps=0))
    arb.on_teleop(teleop(True), T0)
    step(arb, T0)
    arb.on_teleop(teleop(False), T0 + MS)
    assert arb.arbitrate(T0 + 2 * MS).mode is Mode.POLICY
    arb = InterventionArbiter(InterventionConfig(handback_steps=10))
    arb.on_teleop(teleop(True), T0)
    step(arb, T0)
    arb.on_teleop(teleop(False), T0 + MS)
    assert arb.arbitrate(T0 + 2 * MS).mode is Mode.HANDBACK
    arb.reset()  # episode boundary
    assert arb.arbitrate(T0 + 3 * MS).mode is Mode.POLICY


def test_hand_back_after_a_stream_loss_starts_from_the_hold() -> None:
    arb = InterventionArbiter(InterventionConfig(handback_steps=1))
    arb.on_teleop(teleop(True), T0)
    step(arb, T0)
    assert step(arb, T0 + 500 * MS)[0] is Mode.HOLD
    arb.on_teleop(teleop(False), T0 + 550 * MS)
    mode, action, _ = step(arb, T0 + 560 * MS)
    assert mode is Mode.HANDBACK
    np.testing.assert_allclose(action[:6], 0.5 * POLICY[:6])  # from zero motion, halfway
    assert action[6] == 1.0


def test_operator_actions_go_through_the_same_safety_filter() -> None:
    """The operator's proposal is clipped, delta limited and kept inside the workspace box."""
    limits = SafetyLimits()
    arb = InterventionArbiter()
    arb.on_teleop(teleop(True, action=[3.0, 0, -1.0, 0, 0, 0, 1]), T0)
    proposal = arb.arbitrate(T0).proposal()
    at_floor = np.array([0.0, 0.0, limits.workspace_low[2]])  # pushing down at the table
    safe = filter_action(proposal, np.zeros(7), at_floor, limits)
    assert not safe.rejected and safe.modified
    assert safe.action[0] == pytest.approx(0.5)  # 3.0 -> clipped to 1 -> delta limit 0.5 from 0
    assert safe.action[2] == 0.0  # no motion through the floor of the box
    assert any("workspace" in r for r in safe.reasons) and any("clipped" in r for r in safe.reasons)


def test_answered_for_lockstep_and_status() -> None:
    arb = InterventionArbiter()
    assert not arb.answered(T0) and arb.status(T0)["intervention/teleop_age_ms"] == -1.0
    arb.on_teleop(teleop(True, stamp=T0), T0 + MS)
    assert arb.answered(T0) and not arb.answered(T0 + 1)
    arb.arbitrate(T0 + MS)
    status = arb.status(T0 + MS)
    assert status["intervention/mode"] == "operator" and status["intervention/deadman"] is True
    assert status["intervention/device"] == "joy" and status["intervention/operator_steps"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        dict(action_dim=1),
        dict(teleop_timeout_s=0.0),
        dict(teleop_timeout_s=float("nan")),
        dict(handback_steps=-1),
    ],
)
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        InterventionConfig(**bad)


def test_an_unanswered_observation_holds_only_while_the_deadman_is_held() -> None:
    arb = InterventionArbiter()
    assert arb.arbitrate(T0, "teleop stream lost: no answer").mode is Mode.POLICY  # nobody claims
    arb.on_teleop(teleop(True), T0)
    a = arb.arbitrate(T0 + 10 * MS, "teleop stream lost: no answer")
    assert a.mode is Mode.HOLD and a.reason == "teleop stream lost: no answer" and not a.intervention
    assert arb.arbitrate(T0 + 20 * MS).mode is Mode.OPERATOR  # answered again: the operator acts
