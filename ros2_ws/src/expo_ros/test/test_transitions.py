"""Transition assembly (step + feedback + next observation) and exact-stamp synchronization."""

from __future__ import annotations

import numpy as np
from expo_ros.transitions import Feedback, StepRecord, TransitionAssembler


def _step(ep: int, st: int, t: int) -> StepRecord:
    return StepRecord(ep, st, np.full(3, t, np.float32), np.full(2, st, np.float32), 4, t)


def _fb(ep: int, st: int, t: int, done: bool = False, reward: float = 0.0) -> Feedback:
    return Feedback(ep, st, reward, terminated=done, truncated=False, success=done, stamp_ns=t)


def test_feedback_then_observation_completes_with_the_post_step_observation() -> None:
    a = TransitionAssembler()
    assert not a.is_pending(0, 0)  # never recorded
    a.add_step(_step(0, 0, 1000))
    assert a.is_pending(0, 0) and not a.is_pending(0, 1)  # waits for its feedback
    assert a.add_feedback(_fb(0, 0, 1050, reward=0.5)) == []
    assert a.pending == 1 and a.is_pending(0, 0)  # then for its next observation
    assert a.add_observation(1000, np.zeros(3)) == []  # older than the step's end: not s'
    (t,) = a.add_observation(1050, np.ones(3))
    assert (t.episode, t.step, t.reward, t.policy_version, t.stamp_ns) == (0, 0, 0.5, 4, 1050)
    np.testing.assert_array_equal(t.obs, np.full(3, 1000.0))
    np.testing.assert_array_equal(t.next_obs, np.ones(3))
    assert a.pending == 0 and not a.is_pending(0, 0)


def test_observation_before_feedback_and_terminal_picks_the_earliest_later_one() -> None:
    """The terminal observation (stamped like the feedback) wins over the reset one after it."""
    a = TransitionAssembler()
    a.add_step(_step(3, 7, 2000))
    a.add_observation(2050, np.full(3, 5.0))  # terminal observation
    a.add_observation(2100, np.full(3, 9.0))  # first observation of the next episode
    (t,) = a.add_feedback(_fb(3, 7, 2050, done=True, reward=1.0))
    assert t.terminated and not t.truncated and t.reward == 1.0
    np.testing.assert_array_equal(t.next_obs, np.full(3, 5.0))


def test_feedback_without_step_is_counted_and_old_steps_are_dropped() -> None:
    a = TransitionAssembler(max_pending=2)
    assert a.add_feedback(_fb(0, 0, 1000)) == []  # e.g. the step was a hold
    assert a.unmatched_feedback == 1
    for i in range(3):
        a.add_step(_step(0, i, i))
    assert a.dropped == 1 and a.pending == 2
    assert a.add_feedback(_fb(0, 0, 5000)) == [] and a.unmatched_feedback == 2  # step 0 was evicted
    a.reset()
    assert a.pending == 0


def test_intervention_flag_travels_from_step_to_transition() -> None:
    """An operator's step stays marked; the policy's steps (the default) are not."""
    a = TransitionAssembler()
    a.add_step(_step(0, 0, 1000))
    a.add_step(StepRecord(0, 1, np.zeros(3, np.float32), np.ones(2, np.float32), 4, 1050, intervention=True))
    a.add_observation(1050, np.ones(3))
    (policy,) = a.add_feedback(_fb(0, 0, 1050))
    a.add_observation(1100, np.ones(3))
    (operator,) = a.add_feedback(_fb(0, 1, 1100))
    assert policy.intervention is False and operator.intervention is True


def test_the_executor_applied_action_is_the_transition_action() -> None:
    """A plan row or an ensemble blend applied instead of the command's action: the feedback says
    so (EnvFeedback.applied_action) and the transition records it, not what the policy sent."""
    a = TransitionAssembler()
    a.add_step(_step(0, 0, 1000))
    fb = Feedback(0, 0, 0.0, False, False, False, 1050, applied_action=np.array([0.25, -0.5], np.float32))
    a.add_feedback(fb)
    (t,) = a.add_observation(1050, np.ones(3))
    np.testing.assert_array_equal(t.action, [0.25, -0.5])
    a.add_step(_step(0, 1, 1050))
    a.add_feedback(_fb(0, 1, 1100))  # no applied_action: the command's own action
    (t,) = a.add_observation(1100, np.ones(3))
    np.testing.assert_array_equal(t.action, [1.0, 1.0])


def test_real_time_repeats_of_a_command_still_in_effect_are_transitions_of_their_own() -> None:
    """continue_repeats: the executor reports step (0, 0) for three periods (no newer command took
    effect); each period is a transition from the previous period's end observation, with the
    action in effect (a plan row when the feedback says so), and the success at the end is kept."""
    a = TransitionAssembler(continue_repeats=True)
    a.add_step(_step(0, 0, 1000))
    a.add_observation(1050, np.full(3, 1.0))
    (t0,) = a.add_feedback(_fb(0, 0, 1050))
    a.add_observation(1100, np.full(3, 2.0))  # the policy skipped deciding on 1050
    (t1,) = a.add_feedback(_fb(0, 0, 1100))
    row = np.array([0.5, 0.5], np.float32)
    a.add_observation(1150, np.full(3, 3.0))
    fb = Feedback(0, 0, 1.0, True, False, True, 1150, applied_action=row)
    (t2,) = a.add_feedback(fb)
    assert a.continued == 2 and a.unmatched_feedback == 0
    np.testing.assert_array_equal(t1.obs, t0.next_obs)
    np.testing.assert_array_equal(t1.next_obs, np.full(3, 2.0))
    np.testing.assert_array_equal(t1.action, t0.action)
    np.testing.assert_array_equal(t2.obs, np.full(3, 2.0))
    np.testing.assert_array_equal(t2.action, row)
    assert t2.terminated and t2.reward == 1.0 and t2.stamp_ns == 1150
    assert a.add_feedback(_fb(0, 0, 1200)) == []  # nothing follows a terminal step
    assert a.unmatched_feedback == 1


def test_lockstep_keeps_a_repeated_feedback_unmatched() -> None:
    """Without continue_repeats (lockstep: a repeat is the report of an interrupted episode, the
    same state again) a second feedback of a completed step makes no transition."""
    a = TransitionAssembler()
    a.add_step(_step(0, 0, 1000))
    a.add_observation(1050, np.ones(3))
    assert len(a.add_feedback(_fb(0, 0, 1050))) == 1
    a.add_observation(1100, np.ones(3))
    assert a.add_feedback(_fb(0, 0, 1100)) == [] and a.unmatched_feedback == 1 and a.continued == 0
