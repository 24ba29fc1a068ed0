"""TeleopNode on an isolated ROS domain: Joy in -> TeleopCommand out; NaN input, a lost Joy stream
and the e-stop are never usable (with the reason in the command and in diagnostics); the e-stop
button publishes e_stop; deactivate leaves a held deadman holding.

One rclpy context per module on its own domain id; each test in a fresh namespace; waits are for
conditions with timeouts.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_franka.teleop_node import TeleopNode
from expo_interfaces.msg import ActionCommand, TeleopCommand
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

pytestmark = pytest.mark.ros

DOMAIN_ID = 20  # apart from the other test files' ranges
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
KEYBOARD = {  # the keyboard tool's layout: 6 axes, buttons 0 control, 1 gripper, 2 e-stop
    "device": "keyboard",
    "topics.joy": "joy",
    "num_axes": 6,
    "min_buttons": 3,
    "button_events": False,
    "deadzone": 0.0,
    "scales": [0.5, 0.5, 0.5, 0.3, 0.3, 0.3],
    "deadman_button": 0,
    "gripper_toggle_button": 1,
    "e_stop_button": 2,
    "joy_timeout_s": 0.3,
    "publish_rate_hz": 20.0,
}


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    timeout_s = 15.0

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        overrides = [Parameter(k, value=v) for k, v in {**KEYBOARD, **params}.items()]
        self.node = TeleopNode(context=ctx, namespace=self.ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.teleop: list[TeleopCommand] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.e_stops: list[Bool] = []
        self.io.create_subscription(TeleopCommand, "teleop", self.teleop.append, 10)
        self.io.create_subscription(DiagnosticArray, "diagnostics", self.diagnostics.append, 10)
        self.io.create_subscription(Bool, "e_stop", self.e_stops.append, 10)
        self.joy = self.io.create_publisher(Joy, "joy", 10)
        self.e_stop = self.io.create_publisher(Bool, "e_stop", 10)
        self.action = self.io.create_publisher(ActionCommand, "action", 10)
        self.attach(ctx, self.node, self.io)

    def start(self) -> None:
        assert self.node.trigger_configure() == SUCCESS and self.node.trigger_activate() == SUCCESS
        self.spin_until(
            lambda: (
                self.joy.get_subscription_count() >= 1
                and self.e_stop.get_subscription_count() >= 1
                and self.teleop
            ),
            "matching and the first TeleopCommand",
        )

    def send(self, axes, buttons) -> cv.TeleopState:
        """Publish one Joy and return the TeleopCommand that answers it."""
        n = self.node.mapper.messages
        self.joy.publish(cv.joy_msg(axes, buttons, 0))
        self.spin_until(lambda: self.node.mapper.messages > n, "the Joy taken")
        count = self.node.published
        self.spin_until(lambda: self.node.published > count and self.teleop, "a TeleopCommand after it")
        return self.latest()

    def latest(self) -> cv.TeleopState:
        want = self.node.published
        self.spin_until(lambda: len(self.teleop) >= want, "the TeleopCommands received")
        return cv.teleop_to_numpy(self.teleop[-1])


@pytest.fixture
def harness(ros_ctx):
    yield from harness_factory(lambda **p: Harness(ros_ctx, **p))


def test_joy_to_teleop_bad_input_and_stream_loss(harness) -> None:
    h = harness()
    h.start()
    assert not h.latest().valid and "no Joy message yet" in h.latest().reason
    s = h.send([0] * 6, [0, 0, 0])
    assert not s.deadman and s.valid and s.device == "keyboard"
    h.action.publish(cv.action_command_msg(cv.Command(np.r_[np.zeros(6), 1.0].astype(np.float32), 0)))
    h.spin_until(lambda: h.node.mapper._sent_gripper == 1.0, "the policy's gripper command seen")
    s = h.send([1, 0, 0, 0, 0, -1], [1, 0, 0])
    assert s.deadman and s.valid
    np.testing.assert_allclose(s.action, [0.5, 0, 0, 0, 0, -0.3, 1.0])  # engaged with the arm's grip
    s = h.send([np.nan, 0, 0, 0, 0, 0], [1, 0, 0])
    assert s.deadman and not s.valid and "non-finite axes [0]" in s.reason and not np.any(s.action)
    s = h.send([0, 0, 0, 0, 0], [1, 0, 0])
    assert not s.valid and "5 axes, expected 6" in s.reason
    h.send([0] * 6, [1, 0, 0])
    # The Joy stream stops with the deadman held: the periodic commands say so, as diagnostics do.
    h.spin_until(lambda: "joy stream lost" in cv.teleop_to_numpy(h.teleop[-1]).reason, "stream lost")
    assert h.teleop[-1].deadman and not h.teleop[-1].valid

    def warned() -> bool:
        return bool(h.diagnostics) and "joy stream lost" in h.diagnostics[-1].status[0].message

    h.spin_until(warned, "diagnostics naming the lost stream", timeout=5.0)
    values = cv.diagnostics_values(h.diagnostics[-1])
    assert values["deadman"] == "true" and values["valid"] == "false" and float(values["joy_age_ms"]) > 300
    assert h.diagnostics[-1].status[0].level == b"\x01"  # WARN
    assert h.diagnostics[-1].status[0].name == f"{h.ns}/teleop: teleop"


def test_e_stop_topic_button_clear_and_deactivate(harness) -> None:
    h = harness()
    h.start()
    h.send([0] * 6, [0, 0, 0])
    assert h.send([0] * 6, [1, 0, 0]).valid
    h.e_stop.publish(Bool(data=True))
    h.spin_until(lambda: h.node.mapper.e_stop_reason is not None, "the e-stop latched")
    s = h.send([1, 1, 1, 0, 0, 0], [1, 0, 0])  # input while e-stopped never moves the arm
    assert not s.valid and "e-stopped (e_stop topic)" in s.reason
    response = h.call_trigger(h.io, f"{h.ns}/teleop/clear_e_stop")
    assert response.success and "release the deadman" in response.message
    assert "not armed" in h.send([0] * 6, [1, 0, 0]).reason
    h.send([0] * 6, [0, 0, 0])
    assert h.send([0] * 6, [1, 0, 0]).valid
    h.send([0] * 6, [1, 0, 1])  # the e-stop button: latched and published for the adapter
    h.spin_until(lambda: h.e_stops and h.e_stops[-1].data, "e_stop published")
    assert "e-stop button" in h.latest().reason
    n = len(h.teleop)
    assert h.node.trigger_deactivate() == SUCCESS
    h.spin_until(lambda: len(h.teleop) > n and "stopped" in h.teleop[-1].reason, "the last command")
    last = h.teleop[-1]
    assert last.deadman and not last.valid  # an operator who held control keeps the arm held


def test_bad_parameters_fail_configure(harness) -> None:
    assert harness(axes=[0, 1, 2]).node.trigger_configure() == FAILURE
    assert harness(gripper_close_button=0).node.trigger_configure() == FAILURE  # deadman's button
