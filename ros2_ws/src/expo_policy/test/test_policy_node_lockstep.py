"""PolicyNode on an isolated ROS domain in lockstep (the sim waits for each action): the
transitions it publishes and the episode boundary, a done feedback of an earlier step ending the
wait, and acting without a lost feedback after the timeout.

One rclpy context per module on its own domain id; every test puts its nodes in a fresh namespace
so tests never hear each other. Waits are for conditions (matching, messages), with timeouts;
the only fixed windows are the short ones that check that something does *not* happen.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from expo_ros import conversions as cv
from policy_node_harness import EE_POS, SUCCESS, expected_obs, node_fixtures

pytestmark = pytest.mark.ros

DOMAIN_ID = 101 + (os.getpid() + 75) % 100  # test_policy_node's range, never its value in one process


ros_ctx, harness = node_fixtures(DOMAIN_ID)


def test_lockstep_transitions_and_episode_boundary(harness) -> None:
    # Wall-clock stamps in this test: allow for the deliberate waits below.
    ages = {f"watchdog.{n}_max_age_s": 5.0 for n in ("joint_states", "ee_pose", "object_poses", "image_raw")}
    h = harness(lockstep=True, **{"observation.max_age_s": 5.0, **ages})
    h.start()
    step = np.array([0.01, 0.0, 0.0])

    camera = cv.image_msg(np.full((4, 4, 3), 7, np.uint8), h.now_ns(), "agentview")
    h.pub["image_raw"].publish(camera)  # optional: rides along with the transition of its observation
    h.spin_until(lambda: h.node._image is not None, "the camera frame")
    t0 = h.publish_obs()
    a0 = h.wait_command(lambda c: c.stamp_ns == t0, "the action for observation 0")
    assert not a0.hold and (a0.episode, a0.step) == (0, 0)

    h.ee_pos = EE_POS + step
    t1 = h.publish_obs()  # before the feedback of step 0 arrives: the node must wait for it
    h.spin_for(0.3)
    assert all(c.stamp_ns != t1 for c in h.commands())
    h.publish_feedback(0, 0, t1, reward=0.0)
    a1 = h.wait_command(lambda c: c.stamp_ns == t1, "the action for observation 1")
    assert (a1.episode, a1.step) == (0, 1)
    h.spin_until(lambda: h.got["transitions"], "transition 0")
    tr0 = cv.transition_to_numpy(h.got["transitions"][0])
    assert (tr0.episode, tr0.step, tr0.reward, tr0.terminated, tr0.policy_version) == (0, 0, 0.0, False, 0)
    np.testing.assert_allclose(tr0.obs, expected_obs(EE_POS), atol=1e-6)
    np.testing.assert_array_equal(tr0.action, a0.action)
    assert len(tr0.images) == 1 and bytes(tr0.images[0].data) == bytes(camera.data)
    np.testing.assert_allclose(tr0.next_obs, expected_obs(EE_POS + step), atol=1e-6)
    assert h.got["transitions"][0].source == f"{h.ns}/policy_node"

    h.ee_pos = EE_POS + 2 * step
    t2 = h.now_ns()
    h.publish_feedback(0, 1, t2, reward=1.0, terminated=True)
    h.publish_obs(ns=t2)  # the terminal observation: next_obs only, never acted on
    h.spin_until(lambda: len(h.got["transitions"]) >= 2, "transition 1")
    tr1 = cv.transition_to_numpy(h.got["transitions"][1])
    assert (tr1.episode, tr1.step, tr1.reward, tr1.terminated) == (0, 1, 1.0, True)
    np.testing.assert_array_equal(tr1.action, a1.action)
    np.testing.assert_allclose(tr1.next_obs, expected_obs(EE_POS + 2 * step), atol=1e-6)

    h.ee_pos = EE_POS
    t3 = h.publish_obs()  # first observation after the reset
    a3 = h.wait_command(lambda c: c.stamp_ns == t3, "the first action of episode 1")
    assert (a3.episode, a3.step) == (1, 0) and not a3.hold
    assert all(c.stamp_ns != t2 for c in h.commands())
    assert len(h.got["action"]) == 3


def test_lockstep_done_feedback_ends_the_wait_for_a_step_that_is_never_reported(harness) -> None:
    """A sim restarted under the policy ends the interrupted episode with a done feedback of an
    earlier step than the policy's last command: the policy must not wait for that command."""
    ages = {f"watchdog.{n}_max_age_s": 5.0 for n in ("joint_states", "ee_pose", "object_poses")}
    h = harness(lockstep=True, **{"observation.max_age_s": 5.0, **ages})
    h.start()
    t0 = h.publish_obs()
    h.wait_command(lambda c: c.stamp_ns == t0, "action 0/0")
    t1 = h.now_ns()
    h.publish_feedback(0, 0, t1)
    h.publish_obs(ns=t1)
    h.wait_command(lambda c: c.stamp_ns == t1, "action 0/1 (never stepped: the sim stopped)")
    t2 = h.now_ns()
    h.publish_feedback(0, 0, t2, terminated=True)  # the restart's report: episode 0 ended at step 0
    h.publish_obs(ns=t2)  # its terminal observation: not acted on
    t3 = h.publish_obs()  # the new episode's first observation
    a3 = h.wait_command(lambda c: c.stamp_ns == t3, "the first action after the restart")
    assert (a3.episode, a3.step) == (1, 0) and not a3.hold
    assert all(c.stamp_ns != t2 for c in h.commands())


def test_lockstep_acts_without_a_lost_feedback_after_the_timeout(harness) -> None:
    ages = {f"watchdog.{n}_max_age_s": 5.0 for n in ("joint_states", "ee_pose", "object_poses")}
    h = harness(lockstep=True, feedback_timeout_s=0.5, **{"observation.max_age_s": 5.0, **ages})
    h.start()
    t0 = h.publish_obs()
    h.wait_command(lambda c: c.stamp_ns == t0, "action 0/0")
    t1 = h.publish_obs()  # its feedback never comes
    h.spin_for(0.3)
    assert all(c.stamp_ns != t1 for c in h.commands())
    h.spin_for(0.4)
    t2 = h.publish_obs()  # a re-publish after the timeout: acted on without the feedback
    a2 = h.wait_command(lambda c: c.stamp_ns in (t1, t2), "an action after the feedback timeout")
    assert (a2.episode, a2.step) == (0, 1)
    h.spin_until(lambda: h.diagnostics().get("feedback_timeouts") == "1", "the timeout counted")


def test_a_stopping_node_completes_the_last_transition_without_acting_again(harness) -> None:
    """Stopped right after the sim's last step (the runner stops the graph when the bridge
    exits): the drain still turns the delivered feedback and next observation into the last
    transition, decides nothing on that observation, and the deactivation ends in a hold."""
    ages = {f"watchdog.{n}_max_age_s": 5.0 for n in ("joint_states", "ee_pose", "object_poses")}
    h = harness(lockstep=True, **{"observation.max_age_s": 5.0, **ages})
    h.start()
    t0 = h.publish_obs()
    a0 = h.wait_command(lambda c: c.stamp_ns == t0, "action 0/0")
    assert h.node.begin_drain() > 0  # node_main's drain: a stop was requested
    h.ee_pos = EE_POS + np.array([0.01, 0.0, 0.0])
    t1 = h.now_ns()
    h.publish_feedback(0, 0, t1, reward=0.5)
    h.publish_obs(ns=t1)  # not the terminal one: a running node would act on it
    h.spin_until(lambda: h.got["transitions"], "the last transition")
    tr = cv.transition_to_numpy(h.got["transitions"][0])
    assert (tr.episode, tr.step, tr.reward) == (0, 0, 0.5)
    np.testing.assert_array_equal(tr.action, a0.action)
    np.testing.assert_allclose(tr.next_obs, expected_obs(h.ee_pos), atol=1e-6)
    h.spin_for(0.3)
    assert [c.stamp_ns for c in h.commands()] == [t0]
    assert h.node.trigger_deactivate() == SUCCESS
    h.spin_until(lambda: len(h.got["action"]) == 2, "the final hold")
    assert h.commands()[-1].hold and h.node.counts["actions"] == 1


def test_a_stopping_node_in_real_time_holds_at_once_and_completes_the_last_transition(harness) -> None:
    """In real time the hold goes out when the stop is requested, not after the drain; the node
    decides nothing more while its inputs keep streaming, and the drain is done as soon as the
    last decided step's feedback and next observation have made its transition."""
    ages = {f"watchdog.{n}_max_age_s": 5.0 for n in ("joint_states", "ee_pose", "object_poses")}
    h = harness(lockstep=False, **{"observation.max_age_s": 5.0, **ages})
    h.start()
    assert h.node.drain_done()  # nothing decided yet: nothing to complete
    h.streaming = {"joint_states", "ee_pose", "object_poses"}  # 20 Hz, as a robot's would
    h.wait_command(lambda c: not c.hold, "a decision")
    assert h.node.begin_drain() > 0 and h.node._draining

    def stop_index() -> int | None:
        return next((i for i, c in enumerate(h.commands()) if c.hold_reason.startswith("stopping")), None)

    h.spin_until(lambda: stop_index() is not None, "the hold at the stop")
    h.spin_for(0.4)  # the inputs keep coming: no decision, no other command
    cmds = h.commands()
    assert all(c.hold for c in cmds[stop_index() :]) and len(cmds) == stop_index() + 1
    last = [c for c in cmds[: stop_index()] if not c.hold][-1]
    assert not h.node.drain_done()  # its feedback has not come
    t = h.now_ns()
    h.publish_feedback(last.episode, last.step, t, reward=0.25)
    h.spin_until(lambda: h.node.drain_done(), "the last transition completed")
    h.spin_until(lambda: h.got["transitions"], "the last transition")
    done = [cv.transition_to_numpy(m) for m in h.got["transitions"]]
    assert [(tr.episode, tr.step, tr.reward) for tr in done][-1] == (last.episode, last.step, 0.25)
    np.testing.assert_array_equal(done[-1].action, last.action)
    assert h.node.trigger_deactivate() == SUCCESS
    assert h.node.counts["actions"] == len([c for c in h.commands() if not c.hold])
