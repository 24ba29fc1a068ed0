"""EpisodeManagerNode on an isolated ROS domain: commands in -> feedback out with the commands'
indices, label_success ends the episode (reward 1, terminated), start_episode starts the next,
bad parameters fail configure.

One rclpy context per module on its own domain id; every test puts its nodes in a fresh namespace.
Waits are for conditions with timeouts; fixed windows only show that something does NOT happen.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
import rclpy
from expo_franka.episode_manager_node import EpisodeManagerNode
from expo_interfaces.msg import ActionCommand, EnvFeedback
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

pytestmark = pytest.mark.ros

TIMEOUT_S = 15.0
DOMAIN_ID = 76 + os.getpid() % 5  # 76..80: apart from the other test files' ranges
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    """An EpisodeManagerNode plus an ``io`` node playing the policy, in a fresh namespace."""

    timeout_s = TIMEOUT_S

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = EpisodeManagerNode(context=ctx, namespace=self.ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.feedback: list[EnvFeedback] = []
        self.io.create_subscription(EnvFeedback, "env_feedback", self.feedback.append, 50)
        self.pub = self.io.create_publisher(ActionCommand, "action", 10)
        self.attach(ctx, self.node, self.io)

    def start(self) -> None:
        assert self.node.trigger_configure() == SUCCESS
        assert self.node.trigger_activate() == SUCCESS
        self.spin_until(
            lambda: (
                self.pub.get_subscription_count() >= 1
                and self.io.count_publishers(f"{self.ns}/env_feedback") >= 1
            ),
            "topic matching",
        )

    def command(self, episode: int, step: int, stamp_ns: int, hold: bool = False) -> None:
        cmd = cv.Command(np.zeros(7, np.float32), stamp_ns, hold=hold, episode=episode, step=step)
        self.pub.publish(cv.action_command_msg(cmd))

    def commands(self, episode: int, steps: range) -> None:
        """Publish and wait until the manager has taken each one (it counts what it sees)."""
        for s in steps:
            want = self.node.manager.commands + 1
            self.command(episode, s, 1_000_000 * (s + 1))
            self.spin_until(
                lambda want=want: self.node.manager.commands >= want, f"command ({episode}, {s}) taken"
            )

    def call(self, service: str) -> Trigger.Response:
        return self.call_trigger(self.io, f"{self.ns}/{service}")


@pytest.fixture
def harness(ros_ctx):
    yield from harness_factory(lambda **params: Harness(ros_ctx, **params))


def test_feedback_echoes_the_commands_and_labels_end_and_start_episodes(harness) -> None:
    h = harness(horizon=100)
    h.start()
    h.commands(0, range(2))  # before start_episode: nothing
    h.spin_for(0.2)
    assert h.feedback == [] and h.node.manager.ignored == 2
    assert h.call("label_success").success is False  # nothing running

    r = h.call("start_episode")
    assert r.success and "horizon 100" in r.message
    assert h.call("start_episode").success is False  # already running
    h.commands(0, range(2, 6))
    h.spin_until(lambda: len(h.feedback) == 3, "feedback of steps 2..4")
    assert [(f.episode, f.step) for f in h.feedback] == [(0, 2), (0, 3), (0, 4)]
    # each step's feedback carries the stamp of the next command (the post-step observation's)
    assert [cv.stamp_ns(f.header.stamp) for f in h.feedback] == [4_000_000, 5_000_000, 6_000_000]
    assert all(f.reward == 0.0 and not (f.terminated or f.truncated or f.success) for f in h.feedback)

    r = h.call("label_success")
    assert r.success and "success" in r.message
    h.spin_until(lambda: len(h.feedback) == 4, "the terminal feedback")
    last = h.feedback[-1]
    assert (last.episode, last.step) == (0, 5)
    assert last.reward == 1.0 and last.terminated and last.success and not last.truncated

    h.commands(1, range(3))  # the policy acts on while the scene is reset: no feedback
    h.spin_for(0.2)
    assert len(h.feedback) == 4
    assert h.call("start_episode").success
    h.commands(1, range(3, 6))
    h.spin_until(lambda: len(h.feedback) == 6, "feedback of the second episode")
    assert [(f.episode, f.step) for f in h.feedback[4:]] == [(1, 3), (1, 4)]
    assert h.call("label_failure").success
    h.spin_until(lambda: len(h.feedback) == 7, "the truncating feedback")
    fail = h.feedback[-1]
    assert (fail.step, fail.truncated, fail.terminated, fail.reward) == (5, True, False, 0.0)


def test_horizon_truncates_and_bad_parameters_fail_configure(harness) -> None:
    h = harness(horizon=2)
    h.start()
    assert h.call("start_episode").success
    h.commands(4, range(3))
    h.spin_until(lambda: len(h.feedback) == 2, "feedback up to the horizon")
    assert [(f.step, f.truncated) for f in h.feedback] == [(0, False), (1, True)]
    assert h.node.manager.outcome.value == "timeout"

    bad = harness(horizon=0)
    assert bad.node.trigger_configure() == FAILURE
    bad_topic = harness(**{"topics.env_feedback": "env feedback"})
    assert bad_topic.node.trigger_configure() == FAILURE
