"""The intervention loop in one process, without ROS: a lift episode where a stalled policy gets
the scripted expert, which takes over, hands back (smoothly) and succeeds; every action goes
through the safety filter; the operator's steps are flagged in the transitions and in the bag.

These are the pieces the policy node and the graph compose once wired (docs/interventions.md):
the scripted intervener (ScriptedIntervener), the arbitration (expo_policy.intervention), the
safety filter, the transition assembler and the learner's bag segments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from expo_learner.segment_reader import load_segments
from expo_learner.segments import SegmentWriter
from expo_policy.intervention import InterventionArbiter, InterventionConfig, Mode
from expo_policy.safety import SafetyLimits, filter_action
from expo_ros.conversions import TeleopState
from expo_ros.transitions import Feedback, StepRecord, TransitionAssembler
from expo_sim.envs.robosuite_env import make_env
from expo_sim.ros.bridge_conversions import snapshot_from_env
from expo_sim.ros.intervener_expert import ScriptedIntervener
from expo_sim.ros.intervener_rule import IntervenerConfig

pytestmark = pytest.mark.ros  # the bag goes through rclpy serialization

STEP_NS = 50_000_000


def test_stalled_policy_is_corrected_and_the_steps_are_flagged(tmp_path: Path) -> None:
    env = make_env("lift", horizon=300)
    try:
        obs, info = env.reset(seed=3)
        intervener = ScriptedIntervener(
            env,
            "lift",
            IntervenerConfig(
                grace_steps=10,
                stall_steps=20,
                takeover_steps=20,
                cooldown_steps=5,
                max_takeovers=6,
                max_steps=200,
            ),
        )
        arbiter = InterventionArbiter(InterventionConfig(handback_steps=5))
        limits = SafetyLimits()
        assembler = TransitionAssembler(max_pending=8)
        policy = np.zeros(7, np.float32)  # a policy that does nothing: it stalls
        prev_sent, sent_for_rule = None, None
        modes, transitions = [], []
        stamp = 10**18
        assembler.add_observation(stamp, obs)
        for t in range(300):
            snap = snapshot_from_env(env, info["obs_dict"])
            answer = intervener.answer(
                snap.ee_pos, snap.ee_quat, (snap.object_pos, snap.object_quat), sent_for_rule
            )
            arbiter.on_teleop(TeleopState(stamp, answer.engaged, True, answer.action, "", "scripted"), stamp)
            decision = arbiter.arbitrate(stamp)
            assert decision.mode is not Mode.HOLD
            proposal = decision.proposal(policy if decision.needs_policy else None)
            safe = filter_action(proposal, prev_sent, snap.ee_pos, limits)  # the same filter for both
            assert not safe.rejected
            arbiter.on_sent(safe.action)
            modes.append(decision.mode)
            assembler.add_step(
                StepRecord(0, t, obs, safe.action, 0, stamp, intervention=decision.intervention)
            )
            obs, reward, terminated, truncated, info = env.step(safe.action)
            stamp += STEP_NS
            transitions += assembler.add_observation(stamp, obs)
            fb = Feedback(0, t, reward, terminated, truncated, bool(info["success"]), stamp)
            transitions += assembler.add_feedback(fb)
            prev_sent = sent_for_rule = safe.action
            if terminated or truncated:
                break
    finally:
        env.close()
    takeovers = intervener.rule.total_takeovers
    assert terminated and info["success"], f"no success after {len(modes)} steps, {takeovers} takeovers"
    assert takeovers >= 1 and Mode.HANDBACK in modes and modes[0] is Mode.POLICY
    flags = np.array([t.intervention for t in transitions])
    assert len(transitions) == len(modes)
    assert flags.sum() == sum(m is Mode.OPERATOR for m in modes) == intervener.rule.total_steps
    first = modes.index(Mode.OPERATOR)
    assert first >= 10  # not within the grace period (then the distance rule fires: the expert moves)
    with SegmentWriter(tmp_path) as w:  # what the learner records
        for t in transitions:
            w.write(t, "/actor_0/policy_node")
    table, report = load_segments(tmp_path)
    assert not report.damaged
    np.testing.assert_array_equal(table.intervention, flags)
