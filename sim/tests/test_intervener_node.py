"""IntervenerNode on an isolated ROS domain: one TeleopCommand per observation, stamped like it;
a stalled arm makes the lift expert take over (deadman held, action towards the cube), it hands
back after takeover_steps, respects the budget, and a done step starts a new episode.

Observations are published by the test (the bridge's ee_pose + object_poses with one stamp), so
no simulator steps; the node builds the lift scene once for the expert (~1 s).
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_interfaces.msg import ActionCommand, EnvFeedback, TeleopCommand
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from expo_ros.transitions import Feedback
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros

DOMAIN_ID = 97  # apart from the other test files' ranges
SUCCESS = TransitionCallbackReturn.SUCCESS
STEP_NS = 50_000_000
EE = np.array([-0.1, 0.0, 1.0])
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # x y z w: gripper pointing down
CUBE = np.array([[0.0, 0.0, 0.83]])
RULE = {"grace_steps": 3, "stall_steps": 5, "takeover_steps": 4, "cooldown_steps": 2, "max_takeovers": 2}


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    timeout_s = 30.0

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        from expo_sim.ros.intervener_node import IntervenerNode

        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        overrides = [Parameter(k, value=v) for k, v in {"autostart": False, **RULE, **params}.items()]
        self.node = IntervenerNode(context=ctx, namespace=self.ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.teleop: list[TeleopCommand] = []
        self.io.create_subscription(TeleopCommand, "teleop", self.teleop.append, 50)
        self.diagnostics: list[DiagnosticArray] = []
        self.io.create_subscription(DiagnosticArray, "diagnostics", self.diagnostics.append, 10)
        self.ee = self.io.create_publisher(PoseStamped, "ee_pose", 10)
        self.objects = self.io.create_publisher(PoseArray, "object_poses", 10)
        self.action = self.io.create_publisher(ActionCommand, "action", 10)
        self.feedback = self.io.create_publisher(EnvFeedback, "env_feedback", 50)
        self.stamp = 1_000 * STEP_NS
        self.attach(ctx, self.node, self.io)

    def start(self) -> None:
        assert self.node.trigger_configure() == SUCCESS and self.node.trigger_activate() == SUCCESS
        pubs = (self.ee, self.objects, self.action, self.feedback)
        self.spin_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in pubs)
                and self.io.count_publishers(f"{self.ns}/teleop") >= 1
            ),
            "matching",
        )

    def observe(self, ee: np.ndarray = EE, policy: np.ndarray | None = None) -> TeleopCommand:
        """Publish the policy's action for the previous observation (if any), then the next
        observation; return the TeleopCommand answering it."""
        if policy is not None:
            self.action.publish(cv.action_command_msg(cv.Command(policy.astype(np.float32), self.stamp)))
            self.spin_until(lambda: self.stamp in self.node._actions, "the policy's action taken")
        self.stamp += STEP_NS
        n = len(self.teleop)
        self.ee.publish(cv.pose_stamped_msg(ee, DOWN, self.stamp, "world"))
        self.objects.publish(cv.pose_array_msg(CUBE, np.array([[0.0, 0.0, 0.0, 1.0]]), self.stamp, "world"))
        self.spin_until(lambda: len(self.teleop) > n, "the TeleopCommand answering the observation")
        assert cv.stamp_ns(self.teleop[-1].header.stamp) == self.stamp
        return self.teleop[-1]

    def end_episode(self) -> None:
        fb = Feedback(0, 0, 0.0, terminated=False, truncated=True, success=False, stamp_ns=self.stamp)
        self.feedback.publish(cv.env_feedback_msg(fb))
        self.spin_until(lambda: self.node._done_stamp == self.stamp, "the done feedback taken")


@pytest.fixture
def harness(ros_ctx):
    yield from harness_factory(lambda **p: Harness(ros_ctx, **p))


def test_stalled_policy_gets_the_expert_then_control_back(harness) -> None:
    h = harness()
    h.start()
    msgs = [h.observe() for _ in range(6)]  # 3 grace steps; the 5-step window is full at step 6
    assert [m.deadman for m in msgs] == [False] * 5 + [True]
    for m in msgs:
        assert m.valid and m.device == "scripted" and len(m.action) == 7
    a = np.asarray(msgs[-1].action)
    assert a[0] > 0.5 and a[2] < -0.5 and a[6] == -1.0  # towards above the cube, gripper open
    assert h.node.expert.phase_steps == 1  # the expert's own script advanced once it acted

    def reported() -> bool:
        return bool(h.diagnostics) and cv.diagnostics_values(h.diagnostics[-1]).get("engaged") == "true"

    h.spin_until(reported, "diagnostics: the expert in control", timeout=5.0)
    status = h.diagnostics[-1].status[0]
    values = cv.diagnostics_values(h.diagnostics[-1])
    assert status.name == f"{h.ns}/intervener: intervener" and "take over (stall" in values["last_event"]
    msgs = [h.observe(EE + [0.01 * k, 0, 0]) for k in range(1, 5)]
    assert [m.deadman for m in msgs] == [True, True, True, False]  # 4 steps, then hand back
    assert "hand back" in h.node.last_event
    msgs = [h.observe(EE + [0.04, 0, 0]) for _ in range(6)]  # stalled again
    assert msgs[-1].deadman and h.node.rule.takeovers == 2
    for _ in range(4):
        h.observe(EE + [0.04, 0, 0])
    assert not any(h.observe(EE + [0.04, 0, 0]).deadman for _ in range(12))  # budget spent
    h.end_episode()
    h.observe()  # the first observation after the done step: a new episode, grace again
    assert h.node.episode == 1 and h.node.rule.takeovers == 0 and h.node.expert.phase == "approach"


def test_distance_rule_uses_the_policy_actions(harness) -> None:
    h = harness(stall_steps=0, disagreement=1.0, disagreement_steps=3, grace_steps=0)
    h.start()
    away = np.array([-1.0, 0.0, 1.0, 0, 0, 0, -1.0])  # the expert goes +x, -z
    msgs = [h.observe(EE + [-0.01 * k, 0, 0], policy=away if k else None) for k in range(5)]
    assert [m.deadman for m in msgs] == [False, False, False, True, True]
    assert "distance from the expert" in h.node.last_event
