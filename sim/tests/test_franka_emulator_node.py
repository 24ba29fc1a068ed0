"""The Franka emulator node: one command per measured pose, and (reaim_on_equilibrium) one more
as soon as a new equilibrium arrives, stamped 1 ns after the pose it starts from."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
import rclpy
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from expo_sim.ros.franka_emulator_node import FrankaEmulator
from expo_sim.ros.franka_emulator_params import TOPICS
from geometry_msgs.msg import PoseStamped
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros

DOMAIN_ID = 206 + os.getpid() % 4  # inside test_bridge_node's range: namespaces keep the tests apart
DOWN = np.array([1.0, 0.0, 0.0, 0.0])
HOME = np.array([0.0, 0.0, 1.0])


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    timeout_s = 20.0

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        ns = f"/t_{uuid.uuid4().hex[:8]}"
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = FrankaEmulator(context=ctx, namespace=ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=ns, context=ctx)
        self.commands: list[ActionCommand] = []
        self.io.create_subscription(ActionCommand, TOPICS["action"], self.commands.append, 10)
        self.pose = self.io.create_publisher(PoseStamped, TOPICS["current_pose"], 10)
        self.eq = self.io.create_publisher(PoseStamped, TOPICS["equilibrium_pose"], 10)
        self.attach(ctx, self.node, self.io)

    def start(self) -> None:
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self.spin_until(
            lambda: self.pose.get_subscription_count() and self.eq.get_subscription_count(), "matching"
        )

    def equilibrium(self, pos: np.ndarray) -> None:
        self.eq.publish(cv.pose_stamped_msg(pos, DOWN, self.io.get_clock().now().nanoseconds, "world"))


@pytest.fixture
def harness(ros_ctx):
    yield from harness_factory(lambda **params: Harness(ros_ctx, **params))


@pytest.mark.parametrize("reaim", [True, False])
def test_a_new_equilibrium_is_sent_at_once_from_the_newest_pose(harness, reaim: bool) -> None:
    h = harness(reaim_on_equilibrium=reaim)
    h.start()
    h.equilibrium(HOME)
    h.spin_until(lambda: h.node._equilibrium is not None, "the first equilibrium")
    stamp = h.io.get_clock().now().nanoseconds
    h.pose.publish(cv.pose_stamped_msg(HOME, DOWN, stamp, "world"))
    h.spin_until(lambda: len(h.commands) >= 1, "the command of the measured pose")
    assert cv.stamp_ns(h.commands[0].header.stamp) == stamp
    h.equilibrium(HOME + [0.02, 0.0, 0.0])  # the policy's next target, before the next pose
    if not reaim:
        h.spin_for(0.5)
        assert len(h.commands) == 1 and h.node.counters["reaims"] == 0
        return
    h.spin_until(lambda: len(h.commands) >= 2, "the re-aim")
    reaim_cmd = h.commands[1]
    assert cv.stamp_ns(reaim_cmd.header.stamp) == stamp + 1  # just after the pose it starts from
    np.testing.assert_allclose(np.asarray(reaim_cmd.action)[:3], [0.4, 0.0, 0.0], atol=1e-6)  # 0.02 / 0.05
    assert h.node.counters["reaims"] == 1
