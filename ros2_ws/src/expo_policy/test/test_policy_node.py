"""PolicyNode on an isolated ROS domain: lifecycle, bad parameters, acting, holds, transitions,
weight hot-swap, and the executable with autostart.

One rclpy context per module on its own domain id; every test puts its nodes in a fresh namespace
so tests never hear each other. Waits are for conditions (matching, messages), with timeouts;
the only fixed windows are the short ones that check that something does *not* happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_core.checkpoint import FORMAT, policy_weights_bytes
from expo_core.spec import task_obs_spec
from expo_interfaces.msg import ActionCommand, EnvFeedback, OtfDecision, PolicyWeights, Transition
from expo_policy.plan import safe_plan
from expo_policy.policy_node import PolicyNode
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, ros_context
from expo_ros.object_state import object_vector
from expo_ros.transitions import Feedback
from geometry_msgs.msg import PoseArray, PoseStamped
from lifecycle_msgs.msg import Transition as LifecycleTransition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from visualization_msgs.msg import MarkerArray

pytestmark = pytest.mark.ros

TIMEOUT_S = 15.0
DOMAIN_ID = 101 + os.getpid() % 100  # 101..200: valid, per process, apart from other test files
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


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    """A PolicyNode plus an ``io`` node playing robot/sim and learner, in one fresh namespace."""

    timeout_s = TIMEOUT_S

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        defaults = {"lockstep": False, "diagnostics_period_s": 0.2, "deadline_ms": 2000.0}
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


@pytest.fixture
def harness(ros_ctx, checkpoint: Path):
    made: list[Harness] = []

    def make(**params: object) -> Harness:
        made.append(Harness(ros_ctx, **{"checkpoint": str(checkpoint), **params}))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _call(h: Harness, srv_type, name: str, request):
    client = h.io.create_client(srv_type, f"{h.ns}/policy_node/{name}")
    h.spin_until(client.service_is_ready, f"service {name}")
    future = client.call_async(request)
    h.spin_until(future.done, f"{name} response")
    h.io.destroy_client(client)
    return future.result()


def test_lifecycle_through_the_standard_services(harness) -> None:
    h = harness()

    def change(transition_id: int) -> bool:
        req = ChangeState.Request(transition=LifecycleTransition(id=transition_id))
        return _call(h, ChangeState, "change_state", req).success

    def state() -> str:
        return _call(h, GetState, "get_state", GetState.Request()).current_state.label

    assert state() == "unconfigured"
    assert change(LifecycleTransition.TRANSITION_CONFIGURE) and state() == "inactive"
    assert h.node.cfg is not None and h.node.backend is not None
    h.spin_for(0.3)
    assert h.got["action"] == []  # configured, but not acting
    assert change(LifecycleTransition.TRANSITION_ACTIVATE) and state() == "active"
    hold = h.wait_command(lambda c: c.hold, "a hold (no inputs yet)")
    assert "stale_input" in hold.hold_reason and "joint_states never received" in hold.hold_reason
    assert hold.candidate_index == -1 and np.all(hold.action == 0.0)
    assert change(LifecycleTransition.TRANSITION_DEACTIVATE) and state() == "inactive"
    last = h.commands()[-1]
    assert last.hold and last.hold_reason == "deactivated"
    n = len(h.got["action"])
    h.spin_for(0.3)
    assert len(h.got["action"]) == n  # stopped
    assert change(LifecycleTransition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert h.node.cfg is None and h.node.backend is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"control_rate_hz": 0.0}, "parameter 'control_rate_hz' must be > 0.0"),
        (
            {"backend": "tensorrt"},
            "parameter 'backend': inference backend 'tensorrt' is not available on this machine",
        ),
        ({"task": "can"}, "parameter 'checkpoint': weights expect 19 observation values, task 'can'"),
        ({"checkpoint": "/nonexistent/ckpt"}, "parameter 'checkpoint': no checkpoint or policy-weights file"),
    ],
)
def test_bad_parameters_fail_configure_with_a_clear_message(
    harness, checkpoint, capfd, params, message
) -> None:
    h = harness(**params)
    assert h.node.trigger_configure() == FAILURE
    assert h.node.cfg is None and h.node.backend is None
    assert message in capfd.readouterr().err
    good = {"control_rate_hz": 20.0, "backend": "torch", "task": "lift", "checkpoint": str(checkpoint)}
    h.node.set_parameters([Parameter(k, value=good[k]) for k in params])
    assert h.node.trigger_configure() == SUCCESS  # a failed configure leaves it re-configurable


def test_acts_on_inputs_with_decision_markers_and_diagnostics(harness) -> None:
    h = harness()
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    cmd = h.wait_command(lambda c: not c.hold, "a policy action")
    assert cmd.action.shape == (7,) and np.all(np.abs(cmd.action) <= 1.0)
    assert cmd.policy_version == 0 and cmd.frame_id == "world"
    n = h.node.backend.num_base_samples
    assert n == 8 and 0 <= cmd.candidate_index < 2 * n and cmd.is_edited == (cmd.candidate_index >= n)
    h.spin_until(lambda: h.got["otf_decision"] and h.got["markers"], "otf_decision and markers")
    decisions = [cv.otf_decision_to_numpy(m) for m in h.got["otf_decision"]]
    cand, q, chosen, latency_ms, _ = next(d for d in decisions if d[2] == cmd.candidate_index)
    assert cand.shape == (16, 7) and chosen == int(np.argmax(q)) and latency_ms > 0.0
    if not cmd.safety_modified:
        np.testing.assert_allclose(cmd.action, cand[chosen], atol=1e-6)
    drawn = next(m.markers for m in h.got["markers"] if len(m.markers) == 3)  # holds send one DELETEALL
    assert [m.ns for m in drawn] == ["candidates", "candidates", "sent"]
    assert len(drawn[0].points) == 16 and drawn[0].header.frame_id == "world"
    assert drawn[2].points[0].x == pytest.approx(EE_POS[0])  # the arrow starts at the hand
    h.spin_until(lambda: float(h.diagnostics().get("actions", 0)) >= 3, "diagnostics counting actions")
    d = h.diagnostics()
    assert d["mode"] == "observation" and d["weights_version"] == "0"
    assert float(d["obs_age_count"]) >= 3 and float(d["obs_age_p99_ms"]) >= 0.0
    assert float(d["latency_p99_ms"]) > 0 and float(d["loop_rate_hz"]) > 0
    assert {"deadline_misses", "stale_inputs", "holds", "latency_p50_ms"} <= set(d)
    # The health also shows in RViz: a status text above the hand, at the diagnostics rate.
    texts = lambda: [m.markers[0] for m in h.got["markers"] if m.markers and m.markers[0].ns == "status"]  # noqa: E731
    h.spin_until(texts, "a status text marker")
    status = texts()[-1]
    assert "weights v0" in status.text and "Hz" in status.text and status.header.frame_id == "world"
    assert status.pose.position.z == pytest.approx(EE_POS[2] + 0.15)


def test_nan_and_stale_inputs_hold_with_a_reason(harness) -> None:
    h = harness()
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.wait_command(lambda c: not c.hold, "a policy action")
    h.streaming = set()
    h.publish_obs(nan=True)
    nan_hold = h.wait_command(lambda c: c.hold and "non-finite" in c.hold_reason, "a hold for NaN")
    assert "bad_observation" in nan_hold.hold_reason and "ee_pose" in nan_hold.hold_reason
    assert np.all(nan_hold.action[:6] == 0.0)
    k = len(h.got["action"])
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.spin_until(lambda: any(not c.hold for c in h.commands()[k:]), "acting again after NaN")
    h.streaming = {"joint_states", "ee_pose"}  # object_poses stops
    stale = h.wait_command(
        lambda c: c.hold and "object_poses" in c.hold_reason, "a hold for stale object_poses"
    )
    assert stale.hold_reason.startswith("stale_input: ") and "object_poses" in stale.hold_reason
    assert "s old >" in stale.hold_reason
    h.spin_until(lambda: int(h.diagnostics().get("stale_object_poses", 0)) >= 1, "diagnostics counting it")
    d = h.diagnostics()
    assert int(d["holds"]) >= 2 and "object_poses" in d["last_hold_reason"]


def test_weights_hot_swap_rejects_bad_keeps_old_accepts_new(harness, agent, make_agent) -> None:
    h = harness()
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.wait_command(lambda c: not c.hold, "a policy action")

    def send(bundle: tuple[bytes, str], version: int, sha: str | None = None) -> None:
        w = cv.WeightsPayload(version, bundle[0], sha or bundle[1], FORMAT)
        h.pub["policy_weights"].publish(cv.policy_weights_msg(w))

    def same_state(a) -> bool:
        sa, sb = h.node.backend.policy.state_dict(), a.policy.state_dict()
        return all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)

    new = make_agent(seed=11)
    send(policy_weights_bytes(new), 1, sha="0" * 64)  # corrupted in transit
    h.spin_until(lambda: h.node.weights.rejected == 1, "the corrupted weights to be rejected")
    send(policy_weights_bytes(make_agent(seed=1, critic_hidden=(64, 64))), 2)  # other network sizes
    h.spin_until(lambda: h.node.weights.rejected == 2, "the mismatched weights to be rejected")
    assert h.node.weights_version == 0 and same_state(agent)
    assert all(c.policy_version == 0 for c in h.commands())
    send(policy_weights_bytes(new), 3)
    cmd = h.wait_command(lambda c: c.policy_version == 3 and not c.hold, "an action with weights v3")
    assert cmd.policy_version == 3 and h.node.weights_version == 3 and same_state(new)
    send(policy_weights_bytes(agent), 2)  # older than the running version: ignored
    h.spin_until(lambda: h.node.weights.ignored == 1, "the old version to be ignored")
    h.spin_until(lambda: h.diagnostics().get("weights_ignored") == "1", "diagnostics of the swaps")
    d = h.diagnostics()
    assert (d["weights_version"], d["weights_rejected"], d["weights_accepted"]) == ("3", "2", "1")


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


@pytest.mark.parametrize("lockstep", [False, True], ids=["timer", "lockstep"])
def test_deadline_misses_hold_in_timer_mode_and_are_counted_in_lockstep(harness, lockstep: bool) -> None:
    h = harness(lockstep=lockstep, deadline_ms=1e-6)  # every decision is late
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    if lockstep:  # the sim waits for the policy, so a late action is still the right one to send
        cmd = h.wait_command(lambda c: not c.hold, "a late but sent action")
        assert cmd.candidate_index >= 0
    else:  # on a robot the observation it answers is too old: hold instead
        cmd = h.wait_command(lambda c: c.hold and "inference_late" in c.hold_reason, "a late hold")
        assert "ms > budget" in cmd.hold_reason
        assert not any(not c.hold for c in h.commands())
    h.spin_until(
        lambda: int(h.diagnostics().get("deadline_misses", 0)) >= 1, "deadline misses in diagnostics"
    )
    assert h.got["diagnostics"][-1].status[0].level == DiagnosticStatus.WARN


def _spawn(ns: str, checkpoint: Path, *params: str) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)}
    args = ["--ros-args", "-r", f"__ns:={ns}", "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true"]
    for p in params:
        args += ["-p", p]
    cmd = [sys.executable, "-m", "expo_policy.policy_node", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_executable_autostarts_holds_and_exits_cleanly_on_sigint(ros_ctx, checkpoint: Path) -> None:
    ns = f"/t_{uuid.uuid4().hex[:8]}"
    good = _spawn(ns, checkpoint, "lockstep:=false")
    bad = _spawn(ns + "_bad", checkpoint, "lockstep:=false", "safety.pos_scale:=2.0")
    io = rclpy.create_node("io", namespace=ns, context=ros_ctx)
    got: list[ActionCommand] = []
    io.create_subscription(ActionCommand, "action", got.append, 100)
    ex = SingleThreadedExecutor(context=ros_ctx)
    ex.add_node(io)

    def spin_until(done: Callable[[], object], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                good.kill()
                pytest.fail(f"timed out waiting for {what}; node output:\n{good.communicate()[0]}")
            ex.spin_once(timeout_sec=0.05)

    try:
        spin_until(lambda: any(m.hold for m in got), "a hold from the autostarted node")
        assert "never received" in got[0].hold_reason
        good.send_signal(signal.SIGINT)
        spin_until(lambda: good.poll() is not None, "the node to exit", timeout=15.0)
        out = good.communicate()[0]
        assert good.returncode == 0, out
        spin_until(lambda: got[-1].hold_reason == "deactivated", "the final hold")
        assert bad.wait(timeout=60) == 1
        assert "parameter 'safety.pos_scale'" in bad.communicate()[0]
    finally:
        for p in (good, bad):
            if p.poll() is None:
                p.kill()
                p.communicate()
        ex.shutdown()
        io.destroy_node()


def test_real_time_decides_once_per_synchronized_observation_and_the_timer_only_watches(harness) -> None:
    h = harness(**{"observation.max_age_s": 0.25})
    h.start()
    stamps = []
    for _ in range(4):
        stamps.append(h.publish_obs())
        h.wait_command(lambda c, s=stamps[-1]: c.stamp_ns == s, "the answer to a new observation")
    answered = [c for c in h.commands() if c.stamp_ns in stamps]
    assert [c.stamp_ns for c in answered] == stamps, "one decision per observation, in order"
    assert not any(c.hold for c in answered)
    assert [(c.episode, c.step) for c in answered] == [(0, i) for i in range(4)]
    # Pieces keep coming but never share a stamp: no decision; once the newest complete set is
    # older than observation.max_age_s the watchdog holds and says why.
    n = len(h.commands())
    deadline = time.monotonic() + 10.0
    while not any(c.hold and "no_synchronized_observation" in c.hold_reason for c in h.commands()[n:]):
        assert time.monotonic() < deadline, "no watchdog hold"
        ns = h.now_ns()
        for i, piece in enumerate(("joint_states", "ee_pose", "object_poses")):
            h.publish_obs(ns=ns + i, pieces=(piece,))
        h.spin_for(0.05)
    assert all(c.hold for c in h.commands()[n:])
    h.spin_until(lambda: int(h.diagnostics().get("watchdog_holds", 0)) >= 1, "watchdog holds in diagnostics")
    d = h.diagnostics()
    assert d["mode"] == "observation" and int(float(d["obs_age_count"])) >= 4


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


def test_a_backend_plan_goes_out_capped_and_safety_filtered_holds_carry_none(harness) -> None:
    """A backend that returns a plan (action chunks): the command carries plan.max_steps rows,
    each filtered as the continuation of the action, spaced one control period; a hold none."""
    h = harness(**{"plan.max_steps": 2})
    h.start()
    real = h.node.backend.decide
    plan = np.array([[1.0] * 6 + [1.0], [-1.0] * 6 + [1.0], [0.2] * 6 + [1.0]], np.float32)
    h.node.backend.decide = lambda obs: real(obs)._replace(plan=plan)
    s = h.publish_obs()
    cmd = h.wait_command(lambda c: c.stamp_ns == s and not c.hold, "an action with a plan")
    assert cmd.plan_rows == 2 and cmd.plan_period_ns == 50_000_000
    np.testing.assert_array_equal(cmd.plan, safe_plan(plan, cmd.action, EE_POS, h.node.cfg.safety, 2))
    steps = np.abs(np.diff(np.vstack([cmd.action, cmd.plan]), axis=0))[:, :6]
    assert np.all(steps <= 0.5 + 1e-6), "each row delta-limited against the one before it"
    s = h.publish_obs(nan=True)
    hold = h.wait_command(lambda c: c.stamp_ns == s and c.hold, "a hold on a bad observation")
    assert hold.plan is None and hold.plan_period_ns == 0


def _fifo_refused() -> str:
    """Why SCHED_FIFO cannot be tested here ('' when it can)."""
    from concurrent.futures import ThreadPoolExecutor

    from expo_ros import realtime

    def probe() -> str:
        try:
            realtime.set_fifo(1)
        except realtime.RealtimeError as e:
            return str(e)
        realtime.set_normal()
        return ""

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(probe).result(timeout=10)


def test_rt_priority_holds_the_control_thread_fifo_until_cleanup(harness) -> None:
    from expo_ros import realtime

    why = _fifo_refused()
    if why:
        pytest.skip(f"SCHED_FIFO refused here: {why}")
    h = harness(rt_priority=7)
    try:
        h.start()  # configure runs on this thread, which also spins the node's callbacks
        assert h.node.scheduling == "fifo 7" and realtime.describe() == "fifo 7"
        assert h.node.weights._pool.submit(realtime.describe).result(timeout=10) == "normal"
        h.streaming = {"joint_states", "ee_pose", "object_poses"}
        h.wait_command(lambda c: not c.hold, "a policy action at SCHED_FIFO")
        h.spin_until(lambda: h.diagnostics().get("scheduling") == "fifo 7", "diagnostics saying fifo 7")
        h.streaming = set()
        assert h.node.trigger_deactivate() == SUCCESS and h.node.trigger_cleanup() == SUCCESS
        assert realtime.describe() == "normal" and h.node.scheduling == "normal"
    finally:
        realtime.set_normal()


def test_rt_priority_refused_fails_configure_saying_how(harness, capfd, monkeypatch) -> None:
    def refuse(*_args) -> None:
        raise PermissionError(1, "Operation not permitted")

    h = harness(rt_priority=80)
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert h.node.trigger_configure() == FAILURE
    err = capfd.readouterr().err
    assert "parameter 'rt_priority': SCHED_FIFO priority 80 refused" in err and "rtprio" in err
    assert h.node.cfg is None and h.node.backend is None
