"""PolicyNode with ``intervention.enabled``: the operator's TeleopCommand takes over through the
same safety filter, bad or lost teleop input holds with the reason, the hand-back blends, the
lockstep wait for the teleop answer, flags in the transitions, and diagnostics.

One rclpy context per module on its own domain id; each test in a fresh namespace.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_interfaces.msg import ActionCommand, EnvFeedback, OtfDecision, TeleopCommand, Transition
from expo_policy.params import PARAMETERS, PolicyNodeConfig
from expo_policy.policy_node import PolicyNode
from expo_policy.safety import SafetyLimits, filter_action
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from expo_ros.transitions import Feedback
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

pytestmark = pytest.mark.ros

DOMAIN_ID = 101 + (os.getpid() + 50) % 100  # test_policy_node's range, never its value in one process
JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
QPOS = np.array([0.0] * 7 + [0.04, -0.04])
EE_POS, EE_QUAT = np.array([-0.1, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 0.0])
CUBE_POS, CUBE_QUAT = np.array([-0.05, 0.02, 0.83]), np.array([0.0, 0.0, 0.38268343, 0.92387953])
OPERATOR = np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.0, 1.0], np.float32)
LIMITS = SafetyLimits()
SUCCESS = TransitionCallbackReturn.SUCCESS
LOCKSTEP_AGES = {
    "observation.max_age_s": 5.0,
    **{f"watchdog.{n}_max_age_s": 5.0 for n in ("joint_states", "ee_pose", "object_poses")},
}
DEFAULTS = {p.name: p.default for p in PARAMETERS}


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    """A PolicyNode with interventions on, plus an ``io`` node playing sim, operator and learner."""

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        defaults = {"diagnostics_period_s": 0.2, "deadline_ms": 2000.0, "intervention.enabled": True}
        defaults["gc_freeze"] = False  # no collection of the whole test process per configure
        overrides = [Parameter(k, value=v) for k, v in {**defaults, **params}.items()]
        self.node = PolicyNode(context=ctx, namespace=self.ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        out = {"action": ActionCommand, "transitions": Transition, "otf_decision": OtfDecision}
        out["diagnostics"] = DiagnosticArray
        self.got: dict[str, list] = {name: [] for name in out}
        for name, msg_type in out.items():
            self.io.create_subscription(msg_type, name, self.got[name].append, 100)
        self.pub = {
            "joint_states": self.io.create_publisher(JointState, "joint_states", 10),
            "ee_pose": self.io.create_publisher(PoseStamped, "ee_pose", 10),
            "object_poses": self.io.create_publisher(PoseArray, "object_poses", 10),
            "env_feedback": self.io.create_publisher(EnvFeedback, "env_feedback", 50),
            "teleop": self.io.create_publisher(TeleopCommand, "teleop", 10),
        }
        self.streaming = False
        self.io.create_timer(0.05, lambda: self.publish_obs() if self.streaming else None)
        self.attach(ctx, self.node, self.io)

    def start(self) -> None:
        assert self.node.trigger_configure() == SUCCESS
        assert self.node.trigger_activate() == SUCCESS
        pubs = [p for name, p in self.pub.items() if name != "teleop" or self.node.arbiter is not None]
        self.spin_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in pubs)
                and all(s.get_publisher_count() >= 1 for s in self.io.subscriptions)
            ),
            "topic matching",
        )

    def now_ns(self) -> int:
        return self.io.get_clock().now().nanoseconds

    def publish_obs(self, ns: int | None = None) -> int:
        ns = self.now_ns() if ns is None else ns
        self.pub["joint_states"].publish(cv.joint_state_msg(JOINTS, QPOS, ns))
        self.pub["ee_pose"].publish(cv.pose_stamped_msg(EE_POS, EE_QUAT, ns, "world"))
        self.pub["object_poses"].publish(cv.pose_array_msg(CUBE_POS[None], CUBE_QUAT[None], ns, "world"))
        return ns

    def teleop(
        self, stamp: int, deadman: bool, action=OPERATOR, valid: bool = True, reason: str = ""
    ) -> None:
        state = cv.TeleopState(stamp, deadman, valid, np.asarray(action, np.float32), reason, "test")
        self.pub["teleop"].publish(cv.teleop_msg(state))

    def feedback(self, step: int, ns: int, done: bool = False) -> None:
        self.pub["env_feedback"].publish(cv.env_feedback_msg(Feedback(0, step, 0.0, done, False, False, ns)))

    def commands(self) -> list[cv.Command]:
        return [cv.action_command_to_numpy(m) for m in self.got["action"]]

    def wait_command(self, pred: Callable[[cv.Command], bool], what: str) -> cv.Command:
        self.spin_until(lambda: any(pred(c) for c in self.commands()), what)
        return next(c for c in self.commands() if pred(c))

    def answer_to(self, stamp: int) -> cv.Command:
        return self.wait_command(lambda c: c.stamp_ns == stamp, f"the command for observation {stamp}")

    def chosen(self, stamp: int) -> np.ndarray:
        """The policy's own action for the observation ``stamp`` (its OtfDecision's winner)."""
        mine = lambda: [m for m in self.got["otf_decision"] if cv.stamp_ns(m.header.stamp) == stamp]  # noqa: E731
        self.spin_until(mine, "the policy's decision")
        m = mine()[0]
        cand, _, index, _, _ = cv.otf_decision_to_numpy(m)
        return cand[index]

    def diagnostics(self) -> dict[str, str]:
        return cv.diagnostics_values(self.got["diagnostics"][-1]) if self.got["diagnostics"] else {}


@pytest.fixture
def harness(ros_ctx, checkpoint: Path):
    yield from harness_factory(lambda **p: Harness(ros_ctx, **{"checkpoint": str(checkpoint), **p}))


def test_parameters_convert_and_bad_values_name_the_parameter() -> None:
    values = {**DEFAULTS, "checkpoint": "x"}
    cfg = PolicyNodeConfig.from_values(values)
    assert not cfg.intervention_enabled and cfg.intervention.handback_steps == 10
    assert cfg.intervention.teleop_timeout_s == 0.25 and cfg.intervention.action_dim == 7
    cfg = PolicyNodeConfig.from_values(
        {**values, "intervention.enabled": True, "intervention.handback_steps": 0}
    )
    assert cfg.intervention_enabled and cfg.intervention.handback_steps == 0
    bad = [
        ("intervention.enabled", "yes", "parameter 'intervention.enabled' must be true or false"),
        ("intervention.teleop_timeout_s", 0.0, "parameter 'intervention.teleop_timeout_s' must be > 0.0"),
        (
            "intervention.handback_steps",
            -1,
            "parameter 'intervention.handback_steps' must be an integer >= 0",
        ),
        ("intervention.lockstep_wait_s", float("nan"), "parameter 'intervention.lockstep_wait_s' must be"),
    ]
    for name, value, match in bad:
        with pytest.raises(ValueError, match=match.replace(".", r"\.")):
            PolicyNodeConfig.from_values({**values, name: value})


def test_lockstep_operator_takes_over_holds_on_bad_input_and_hands_back(harness) -> None:
    h = harness(lockstep=True, **{"intervention.handback_steps": 2, **LOCKSTEP_AGES})
    h.start()
    assert h.node.arbiter is not None

    t0 = h.publish_obs()
    h.spin_for(0.3)  # a teleop publisher is present: the node waits for its answer to t0
    assert all(c.stamp_ns != t0 for c in h.commands())
    h.teleop(t0, deadman=False)
    a0 = h.answer_to(t0)
    assert not a0.hold and a0.candidate_index >= 0  # the policy's

    t1 = h.now_ns()
    h.teleop(t1, deadman=True)  # the answer may come before the observation
    h.feedback(0, t1)
    h.publish_obs(t1)
    a1 = h.answer_to(t1)
    expected = filter_action(OPERATOR, a0.action, EE_POS, LIMITS).action  # the same filter
    assert not a1.hold and a1.candidate_index == -1 and not a1.is_edited
    np.testing.assert_allclose(a1.action, expected, atol=1e-6)

    t2 = h.now_ns()  # released: the first hand-back step, w = 1/3 of the policy's action
    h.feedback(1, t2)
    h.publish_obs(t2)
    h.teleop(t2, deadman=False)
    a2 = h.answer_to(t2)
    policy = h.chosen(t2)
    blend = (2 / 3) * a1.action + (1 / 3) * policy
    blend[-1] = a1.action[-1]  # the gripper stays the operator's during the blend
    np.testing.assert_allclose(a2.action, filter_action(blend, a1.action, EE_POS, LIMITS).action, atol=1e-5)
    assert a2.action[-1] == a1.action[-1] and a2.candidate_index >= 0

    nan = OPERATOR.copy()
    nan[1] = np.nan
    t3 = h.now_ns()  # takes over again with a NaN action: hold, gripper kept
    h.feedback(2, t3)
    h.publish_obs(t3)
    h.teleop(t3, deadman=True, action=nan)
    a3 = h.answer_to(t3)
    assert a3.hold and a3.hold_reason.startswith("teleop: ") and "non-finite in dims 1" in a3.hold_reason
    assert np.all(a3.action[:6] == 0.0) and a3.action[-1] == a2.action[-1]

    t4 = h.now_ns()  # the teleop node says its input is bad (valid false): hold with its reason
    h.feedback(3, t4)
    h.publish_obs(t4)
    h.teleop(t4, deadman=True, action=np.zeros(7), valid=False, reason="joy stream lost")
    a4 = h.answer_to(t4)
    assert a4.hold and "joy stream lost" in a4.hold_reason

    t5 = h.now_ns()
    h.feedback(4, t5, done=True)
    h.publish_obs(t5)  # terminal observation of episode 0: not acted on
    h.spin_until(lambda: len(h.got["transitions"]) >= 3, "the transitions of the acted steps")
    flags = [(t.step, t.intervention) for t in map(cv.transition_to_numpy, h.got["transitions"])]
    assert flags == [(0, False), (1, True), (2, False)]  # holds are not transitions
    h.spin_until(lambda: h.diagnostics().get("intervention/holds") == "2", "diagnostics of the holds")
    d = h.diagnostics()
    assert d["intervention/enabled"] == "true" and d["intervention/mode"] == "hold"
    assert d["intervention/takeovers"] == "2" and d["intervention/operator_steps"] == "1"
    assert "joy stream lost" in d["intervention/hold_reason"] and d["intervention/rejected"] == "1"


def test_lockstep_wait_for_the_teleop_answer_is_bounded(harness) -> None:
    h = harness(lockstep=True, **{"intervention.lockstep_wait_s": 0.3, **LOCKSTEP_AGES})
    h.start()
    t0 = h.publish_obs()  # never answered: acted on after the wait, by the policy
    a0 = h.answer_to(t0)
    assert not a0.hold and a0.candidate_index >= 0
    t1 = h.now_ns()
    h.teleop(t1, deadman=True)
    h.feedback(0, t1)
    h.publish_obs(t1)
    assert h.answer_to(t1).candidate_index == -1  # the operator's
    t2 = h.now_ns()
    h.feedback(1, t2)
    h.publish_obs(t2)  # the operator holds the deadman but does not answer t2: hold, not replay
    a2 = h.answer_to(t2)
    assert a2.hold and "teleop stream lost: no answer to this observation within 0.3 s" in a2.hold_reason
    assert h.node.counts["teleop_timeouts"] == 2


def test_real_time_teleop_stream_lost_while_deadman_held_holds_until_released(harness) -> None:
    h = harness(lockstep=False, **{"intervention.handback_steps": 0})
    h.start()
    h.streaming = True
    h.wait_command(lambda c: not c.hold and c.candidate_index >= 0, "a policy action")
    n = len(h.commands())
    h.teleop(h.now_ns(), deadman=True)  # one message, then silence
    h.spin_until(lambda: any(c.candidate_index == -1 and not c.hold for c in h.commands()[n:]), "operator")
    lost = h.wait_command(lambda c: c.hold and "teleop stream lost" in c.hold_reason, "the watchdog hold")
    assert "while the deadman was held (limit 250 ms)" in lost.hold_reason
    k = len(h.commands())
    h.spin_for(0.3)
    assert all(c.hold for c in h.commands()[k:])  # keeps holding: no policy, no stale replay
    h.teleop(h.now_ns(), deadman=False)
    k = len(h.commands())
    h.spin_until(lambda: any(not c.hold and c.candidate_index >= 0 for c in h.commands()[k:]), "the policy")


def test_disabled_by_default_no_teleop_subscription(harness) -> None:
    h = harness(lockstep=False, **{"intervention.enabled": False})
    h.start()
    assert h.node.arbiter is None
    h.spin_until(lambda: h.diagnostics(), "diagnostics")
    assert h.diagnostics()["intervention/enabled"] == "false"
    assert h.node.count_subscribers(f"{h.ns}/teleop") == 0
