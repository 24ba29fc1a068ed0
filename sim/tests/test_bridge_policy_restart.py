"""Sim bridge + policy node in one process (lockstep, sim time): deactivating and re-activating
the bridge mid-episode must not leave the policy waiting for a step that never comes.

The deadlock a user found: the bridge stops while the policy's command for the current
observation is on its way; the command is never stepped, so its feedback never comes, and the
policy (which waits for the feedback of its previous command before acting in lockstep) ignored
every observation the re-activated bridge published. Now the bridge ends the interrupted episode
on activate (its state once more + a truncated feedback echoing the newest command received)
and a done feedback ends the policy's wait for any command of that episode. The policy's own
feedback timeout is set far out here, so the test shows the protocol fix, not the fallback.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import rclpy
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import save_checkpoint
from expo_core.presets import preset_config
from expo_core.spec import task_obs_spec
from expo_interfaces.msg import ActionCommand, EnvFeedback
from expo_policy.policy_node import PolicyNode
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, ros_context
from expo_sim.ros.bridge_node import SimBridge
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros

DOMAIN_ID = 96  # apart from the other test files' ranges
SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "ckpt"
    save_checkpoint(path, ExpoAgent(preset_config("tiny", task_obs_spec("lift").dim, 7), seed=0))
    return path.with_suffix(".safetensors")


class Graph(NodeHarness):
    timeout_s = 30.0

    def __init__(self, ctx: rclpy.Context, checkpoint: Path) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        remap = ["--ros-args", "-r", f"/clock:={self.ns}/clock"]  # sim time of this test only
        bridge = {"autostart": False, "horizon": 400, "action_timeout_s": 60.0}
        self.bridge = SimBridge(
            context=ctx,
            namespace=self.ns,
            parameter_overrides=[Parameter(k, value=v) for k, v in bridge.items()],
            cli_args=remap,
        )
        policy = {
            "checkpoint": str(checkpoint),
            "lockstep": True,
            "use_sim_time": True,
            "feedback_timeout_s": 600.0,  # the fallback stays out of the way
            "publish_markers": False,
            "gc_freeze": False,  # no collection of the whole test process per configure
        }
        self.policy = PolicyNode(
            context=ctx,
            namespace=self.ns,
            parameter_overrides=[Parameter(k, value=v) for k, v in policy.items()],
            cli_args=remap,
        )
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.feedback: list[EnvFeedback] = []
        self.actions: list[ActionCommand] = []
        self.io.create_subscription(EnvFeedback, "env_feedback", self.feedback.append, 1000)
        self.io.create_subscription(ActionCommand, "action", self.actions.append, 1000)
        self.attach(ctx, self.bridge, self.policy, self.io)


def test_deactivate_then_activate_the_bridge_resumes_acting(ros_ctx, checkpoint: Path) -> None:
    g = Graph(ros_ctx, checkpoint)
    try:
        assert g.policy.trigger_configure() == SUCCESS and g.policy.trigger_activate() == SUCCESS
        assert g.bridge.trigger_configure() == SUCCESS and g.bridge.trigger_activate() == SUCCESS
        g.spin_until(lambda: len(g.feedback) >= 5, "five lockstep steps")
        # Stop the sim right after it published an observation: the policy's answer to it is
        # never stepped (the bridge is inactive when it arrives).
        g.spin_until(lambda: g.bridge._gate.waiting, "the bridge waiting for an answer")
        assert g.bridge.trigger_deactivate() == SUCCESS
        n_fb = len(g.feedback)
        g.spin_until(lambda: g.policy._awaiting is not None, "the policy's unanswered command")
        g.spin_for(0.3)
        awaited = g.policy._awaiting
        assert len(g.feedback) == n_fb, "no step while the bridge is inactive"

        assert g.bridge.trigger_activate() == SUCCESS
        g.spin_until(lambda: len(g.feedback) >= n_fb + 6, "stepping again after the re-activation")
        report = cv.env_feedback_to_numpy(g.feedback[n_fb])
        assert report.truncated and not report.terminated and report.reward == 0.0
        assert (report.episode, report.step) == awaited, "the report echoes the command never stepped"
        resumed = [cv.env_feedback_to_numpy(m) for m in g.feedback[n_fb + 1 :]]
        assert all(f.episode == awaited[0] + 1 for f in resumed), "a new episode started"
        assert [f.step for f in resumed] == list(range(len(resumed)))
        assert g.bridge.stats.records[0].steps == awaited[1] and not g.bridge.stats.records[0].success
        assert g.bridge.stats.timeouts == 0 and g.policy.counts["feedback_timeouts"] == 0
    finally:
        g.close()
