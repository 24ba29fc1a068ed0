"""The PolicyNode test harness shared by the test_policy_node*.py files that run the lift
(state) policy: a PolicyNode plus an ``io`` node playing robot/sim and learner in a fresh
namespace, the inputs it publishes and the observation the node must build from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_core.spec import task_obs_spec
from expo_interfaces.msg import ActionCommand, EnvFeedback, OtfDecision, PolicyWeights, Transition
from expo_policy.policy_node import PolicyNode
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from expo_ros.object_state import object_vector
from expo_ros.transitions import Feedback
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from visualization_msgs.msg import MarkerArray

TIMEOUT_S = 15.0
SPEC = task_obs_spec("lift")
FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]
JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + FINGERS
QPOS = np.array([0.0] * 7 + [0.04, -0.04])
EE_POS, EE_QUAT = np.array([-0.1, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 0.0])
CUBE_POS, CUBE_QUAT = np.array([-0.05, 0.02, 0.83]), np.array([0.0, 0.0, 0.38268343, 0.92387953])
OUT = {
    "action": ActionCommand,
    "transitions": Transition,
    "otf_decision": OtfDecision,
    "diagnostics": DiagnosticArray,
    "markers": MarkerArray,
}
WEIGHTS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def expected_obs(ee_pos: np.ndarray) -> np.ndarray:
    """The lift observation the node must build from what :meth:`Harness.publish_obs` sends."""
    obj = object_vector("lift", (CUBE_POS[None], CUBE_QUAT[None]), ee_pos, EE_QUAT)
    return SPEC.flatten(
        {
            "robot0_eef_pos": ee_pos,
            "robot0_eef_quat": EE_QUAT,
            "robot0_gripper_qpos": QPOS[-2:],
            "object": obj,
        }
    )


class Harness(NodeHarness):
    """A PolicyNode plus an ``io`` node playing robot/sim and learner, in one fresh namespace."""

    timeout_s = TIMEOUT_S

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        # gc_freeze off: each configure would collect the whole test process (test_policy_node_lifecycle.py
        # tests it)
        defaults = {"lockstep": False, "diagnostics_period_s": 0.2, "deadline_ms": 2000.0, "gc_freeze": False}
        overrides = [Parameter(k, value=v) for k, v in {**defaults, **params}.items()]
        self.node = PolicyNode(context=ctx, namespace=self.ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.got: dict[str, list] = {name: [] for name in OUT}
        for name, msg_type in OUT.items():
            self.io.create_subscription(msg_type, name, self.got[name].append, 100)
        self.pub = {
            "joint_states": self.io.create_publisher(JointState, "joint_states", 10),
            "ee_pose": self.io.create_publisher(PoseStamped, "ee_pose", 10),
            "object_poses": self.io.create_publisher(PoseArray, "object_poses", 10),
            "env_feedback": self.io.create_publisher(EnvFeedback, "env_feedback", 50),
            "policy_weights": self.io.create_publisher(PolicyWeights, "policy_weights", WEIGHTS_QOS),
            "image_raw": self.io.create_publisher(Image, "image_raw", 10),
        }
        self.streaming: set[str] = set()  # pieces the 20 Hz stream publishes
        self.ee_pos = EE_POS.copy()
        self.io.create_timer(
            0.05, lambda: self.publish_obs(pieces=tuple(self.streaming)) if self.streaming else None
        )
        self.attach(ctx, self.node, self.io)

    def start(self) -> None:
        """configure + activate, then wait until every topic is matched both ways."""
        assert self.node.trigger_configure() == SUCCESS
        assert self.node.trigger_activate() == SUCCESS
        self.spin_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in self.pub.values())
                and all(s.get_publisher_count() >= 1 for s in self.io.subscriptions)
                and self.node.count_publishers(f"{self.ns}/env_feedback") >= 1
            ),
            "topic matching",
        )

    def now_ns(self) -> int:
        return self.io.get_clock().now().nanoseconds

    def publish_obs(
        self,
        ns: int | None = None,
        pieces: tuple[str, ...] = ("joint_states", "ee_pose", "object_poses"),
        nan: bool = False,
    ) -> int:
        ns = self.now_ns() if ns is None else ns
        ee = np.full(3, np.nan) if nan else self.ee_pos
        msgs = {
            "joint_states": cv.joint_state_msg(JOINTS, QPOS, ns),
            "ee_pose": cv.pose_stamped_msg(ee, EE_QUAT, ns, "world"),
            "object_poses": cv.pose_array_msg(CUBE_POS[None], CUBE_QUAT[None], ns, "world"),
        }
        for name in pieces:
            self.pub[name].publish(msgs[name])
        return ns

    def publish_feedback(
        self, episode: int, step: int, ns: int, reward: float = 0.0, terminated: bool = False
    ) -> None:
        fb = Feedback(episode, step, reward, terminated, False, terminated, ns)
        self.pub["env_feedback"].publish(cv.env_feedback_msg(fb))

    def commands(self) -> list[cv.Command]:
        return [cv.action_command_to_numpy(m) for m in self.got["action"]]

    def wait_command(self, pred: Callable[[cv.Command], bool], what: str) -> cv.Command:
        self.spin_until(lambda: any(pred(c) for c in self.commands()), what)
        return next(c for c in self.commands() if pred(c))

    def diagnostics(self) -> dict[str, str]:
        return cv.diagnostics_values(self.got["diagnostics"][-1]) if self.got["diagnostics"] else {}


def node_fixtures(domain_id: int) -> tuple[Callable, Callable]:
    """A test module's ``ros_ctx`` (one rclpy context on ``domain_id`` per module) and
    ``harness`` (a factory of :class:`Harness` on it with the ``checkpoint`` fixture's weights,
    parameters as keywords, every one closed at teardown) fixtures:
    ``ros_ctx, harness = node_fixtures(DOMAIN_ID)``."""

    @pytest.fixture(scope="module")
    def ros_ctx() -> Iterator[rclpy.Context]:
        with ros_context(domain_id) as ctx:
            yield ctx

    @pytest.fixture
    def harness(ros_ctx: rclpy.Context, checkpoint: Path) -> Iterator[Callable[..., Harness]]:
        yield from harness_factory(lambda **p: Harness(ros_ctx, **{"checkpoint": str(checkpoint), **p}))

    return ros_ctx, harness
