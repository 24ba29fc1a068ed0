"""SimBridge on an isolated ROS domain, driven by a test node playing the policy: the lockstep
protocol (matching, stale answers, holds, episode ends, finishing), timeouts, realtime stepping,
bad parameters, and the executables.

One rclpy context per module on its own domain id; each test uses a fresh namespace. Waits are
for conditions with timeouts; the only fixed windows check that something does *not* happen.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import rclpy
from expo_interfaces.msg import ActionCommand, EnvFeedback
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from expo_sim.ros.bridge_node import SimBridge
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

pytestmark = pytest.mark.ros

TIMEOUT_S = 20.0
DOMAIN_ID = 201 + os.getpid() % 15  # 201..215: apart from the other test files' ranges
PERIOD_NS = 50_000_000
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
MOVE = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], dtype=np.float32)


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    """A SimBridge and an ``io`` node playing the policy, in one fresh namespace."""

    timeout_s = TIMEOUT_S

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ctx = ctx
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        overrides = [Parameter(k, value=v) for k, v in {"autostart": False, **params}.items()]
        # /clock is global: remapped so that no other bridge in this domain is heard.
        remap = ["--ros-args", "-r", f"/clock:={self.ns}/clock"]
        self.bridge = SimBridge(context=ctx, namespace=self.ns, parameter_overrides=overrides, cli_args=remap)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.obs: dict[str, list] = {"joint_states": [], "ee_pose": [], "object_poses": []}
        for name, t in (("joint_states", JointState), ("ee_pose", PoseStamped), ("object_poses", PoseArray)):
            self.io.create_subscription(t, name, self.obs[name].append, 100)
        self.feedback: list[EnvFeedback] = []
        self.io.create_subscription(EnvFeedback, "env_feedback", self.feedback.append, 100)
        self.clock: list[Clock] = []
        self.io.create_subscription(Clock, "clock", self.clock.append, 100)
        self.action_pub = None
        self.attach(ctx, self.bridge, self.io)

    def start(self) -> None:
        assert self.bridge.trigger_configure() == SUCCESS
        assert self.bridge.trigger_activate() == SUCCESS

    def connect_policy(self) -> None:
        self.action_pub = self.io.create_publisher(ActionCommand, "action", 10)

    def sets(self) -> list[int]:
        """Stamps for which all three observation pieces arrived, in arrival order of ee_pose."""
        have = [{cv.stamp_ns(m.header.stamp) for m in msgs} for msgs in self.obs.values()]
        stamps = [cv.stamp_ns(m.header.stamp) for m in self.obs["ee_pose"]]
        return [s for s in stamps if all(s in h for h in have)]

    def ee_at(self, ns: int) -> np.ndarray:
        m = next(m for m in self.obs["ee_pose"] if cv.stamp_ns(m.header.stamp) == ns)
        return cv.pose_stamped_to_numpy(m)[0]

    def wait_set(self, after: int, what: str) -> int:
        self.spin_until(lambda: any(s > after for s in self.sets()), what)
        return min(s for s in self.sets() if s > after)

    def answer(self, stamp: int, episode: int, step: int, hold: bool = False) -> None:
        action = np.zeros(7, np.float32) if hold else MOVE
        cmd = cv.Command(action=action, stamp_ns=stamp, hold=hold, episode=episode, step=step)
        self.action_pub.publish(cv.action_command_msg(cmd))

    def wait_feedback(self, n: int) -> EnvFeedback:
        self.spin_until(lambda: len(self.feedback) >= n, f"feedback #{n}")
        return self.feedback[n - 1]


@pytest.fixture
def harness(ros_ctx):
    yield from harness_factory(lambda **params: Harness(ros_ctx, **params))


def test_lockstep_protocol_holds_stale_answers_episode_end_and_finish(harness) -> None:
    h = harness(horizon=3, num_episodes=2, action_timeout_s=60.0)
    h.start()
    h.spin_for(0.3)
    assert h.sets() == [], "no observation before a policy is connected"
    h.connect_policy()
    s0 = h.wait_set(0, "the first observation")
    assert s0 == PERIOD_NS
    h.spin_until(lambda: any(cv.stamp_ns(c.clock) == s0 for c in h.clock), "/clock at the first stamp")

    h.answer(s0, 0, 0)
    fb0 = h.wait_feedback(1)
    s1 = h.wait_set(s0, "the observation after step 0")
    assert s1 == s0 + PERIOD_NS and cv.stamp_ns(fb0.header.stamp) == s1
    assert (fb0.episode, fb0.step, fb0.terminated, fb0.truncated) == (0, 0, False, False)
    assert h.ee_at(s1)[0] > h.ee_at(s0)[0] + 1e-3, "a +x action moves the end effector"

    h.answer(s0, 0, 1)  # answers an old observation: ignored
    h.spin_for(0.3)
    assert len(h.feedback) == 1 and h.bridge._gate.stale == 1

    h.answer(s1, 0, 1, hold=True)  # a hold is not stepped; a no-op feedback lets the policy go on
    fb1 = h.wait_feedback(2)
    s2 = h.wait_set(s1, "the re-published observation after the hold")
    assert (fb1.episode, fb1.step, fb1.reward, fb1.terminated, fb1.truncated) == (0, 1, 0.0, False, False)
    assert s2 == s1 + PERIOD_NS and cv.stamp_ns(fb1.header.stamp) == s2
    np.testing.assert_array_equal(h.ee_at(s2), h.ee_at(s1))
    assert (h.bridge.stats.env_steps, h.bridge.stats.holds) == (1, 1)

    h.answer(s1, 0, 2)  # the state's first stamp is still a valid answer after the re-publish
    h.wait_feedback(3)
    s3 = h.wait_set(s2, "the observation after step 2")
    h.answer(s3, 0, 3)
    fb3 = h.wait_feedback(4)  # the third env step: horizon reached
    assert fb3.truncated and not fb3.terminated and (fb3.episode, fb3.step) == (0, 3)
    s4 = cv.stamp_ns(fb3.header.stamp)
    h.spin_until(lambda: s4 in h.sets() and any(s > s4 for s in h.sets()), "terminal and reset observations")
    s5 = min(s for s in h.sets() if s > s4)
    assert s5 == s4 + PERIOD_NS, "the reset takes one period: strictly after the terminal observation"
    assert h.bridge.stats.records[0].steps == 3 and not h.bridge.finished

    last = s5
    for step in range(3):
        h.answer(last, 1, step)
        h.wait_feedback(5 + step)
        if step < 2:
            last = h.wait_set(last, f"episode 1 step {step}")
    assert h.feedback[-1].truncated and h.feedback[-1].episode == 1
    h.spin_until(lambda: h.bridge.finished, "the bridge to finish after num_episodes")
    assert len(h.bridge.stats.records) == 2 and h.bridge.stats.env_steps == 6
    n_sets = len(h.sets())
    h.spin_for(0.2)
    assert len(h.sets()) == n_sets, "nothing is published after the last episode"


def test_lockstep_timeout_republishes_the_same_state_later(harness) -> None:
    h = harness(action_timeout_s=0.3)
    h.start()
    h.connect_policy()
    s0 = h.wait_set(0, "the first observation")
    s1 = h.wait_set(s0, "a re-publish after the timeout")
    assert s1 > s0 and h.bridge.stats.timeouts >= 1
    np.testing.assert_array_equal(h.ee_at(s1), h.ee_at(s0))
    assert h.feedback == []
    h.answer(s0, 0, 0)  # an answer to the first publish of the same state is accepted
    fb = h.wait_feedback(1)
    assert (fb.episode, fb.step) == (0, 0) and h.bridge.stats.env_steps == 1


def test_realtime_idles_until_the_first_command_then_steps_every_period(harness) -> None:
    h = harness(realtime=True, horizon=6, num_episodes=1, max_action_age_ms=60_000.0)
    h.start()
    h.spin_until(lambda: len(h.sets()) >= 3, "observations while no policy commands")
    assert h.feedback == [] and h.bridge.stats.env_steps == 0
    stamps = h.sets()
    assert all(b - a == PERIOD_NS for a, b in zip(stamps, stamps[1:]))
    h.connect_policy()
    h.spin_until(lambda: h.action_pub.get_subscription_count() > 0, "the bridge to hear the policy")
    h.answer(stamps[-1], 0, 0)
    h.spin_until(lambda: h.bridge.finished, "one realtime episode")
    h.wait_feedback(6)
    assert len(h.feedback) == 6 and h.feedback[-1].truncated
    # One command, then periods without a new one (the controller keeps its goal) echoing its indices.
    assert all((f.episode, f.step) == (0, 0) for f in h.feedback)
    assert h.bridge.stats.own_holds == 5 and h.bridge.stats.env_steps == 6
    assert h.bridge.stats.action_age.stats().count == 1


@pytest.mark.parametrize("realtime", [False, True])
def test_wait_for_learner_holds_episode_0_until_the_learners_first_report(harness, realtime: bool) -> None:
    """wait_for_learner: with the policy there, lockstep publishes no observation and real time
    steps nothing until a learner_stats report arrives (a transition sent before the learner
    listens would be lost); the diagnostics say so meanwhile."""
    from expo_interfaces.msg import LearnerStats

    h = harness(
        realtime=realtime, horizon=3, num_episodes=1, max_action_age_ms=60_000.0, wait_for_learner=True
    )
    h.start()
    h.connect_policy()
    h.spin_until(lambda: h.action_pub.get_subscription_count() > 0, "the bridge to hear the policy")
    if realtime:  # observations stream; a command waits in the inbox, nothing is stepped
        stamp = h.wait_set(0, "an observation")
        h.answer(stamp, 0, 0)
    h.spin_for(0.5)
    assert h.feedback == [] and h.bridge.stats.env_steps == 0
    assert realtime or h.sets() == []  # lockstep: not even the first observation
    assert not h.bridge._learner_ready("the test")
    pub = h.io.create_publisher(LearnerStats, "learner_stats", 10)
    h.spin_until(lambda: pub.get_subscription_count() > 0, "the bridge's learner_stats subscription")
    pub.publish(LearnerStats(names=["backlog", "warmed_up"], values=[0.0, 0.0]))
    if realtime:
        h.answer(h.wait_set(h.sets()[-1], "an observation after the report"), 0, 0)
    else:
        for step in range(3):  # lockstep: answer each observation
            stamp = h.wait_set(0 if step == 0 else h.sets()[-1] - 1, f"observation {step}")
            h.answer(stamp, 0, step)
            h.wait_feedback(step + 1)
    h.spin_until(lambda: h.bridge.finished, "the episode after the learner's report")
    assert h.bridge.stats.env_steps == 3


@pytest.mark.parametrize("realtime", [False, True])
def test_a_learner_that_never_reports_ends_the_run_with_exit_code_1(harness, realtime: bool) -> None:
    """learner_wait_timeout_s: a learner that never reports does not leave the run waiting without
    end; the bridge says why, finishes and sets exit code 1 (main() exits with it)."""
    h = harness(
        realtime=realtime,
        horizon=3,
        num_episodes=1,
        max_action_age_ms=60_000.0,  # real time: the waiting command stays fresh enough to apply
        wait_for_learner=True,
        learner_wait_timeout_s=0.3,
    )
    h.start()
    h.connect_policy()
    h.spin_until(lambda: h.action_pub.get_subscription_count() > 0, "the bridge to hear the policy")
    if realtime:  # a command waits in the inbox while the bridge waits for the learner
        h.answer(h.wait_set(0, "an observation"), 0, 0)
    assert h.bridge.exit_code == 0
    h.spin_until(lambda: h.bridge.finished, "the bridge to give up on the learner")
    assert h.bridge.exit_code == 1 and h.bridge.stats.env_steps == 0 and h.feedback == []


@pytest.mark.parametrize("realtime", [False, True], ids=["lockstep", "realtime"])
def test_camera_image_goes_out_with_each_observation(harness, realtime: bool) -> None:
    """The monitoring camera (camera.*): in lockstep rendered after the step, in real time by a
    render thread after the proprioception; either way with that observation's stamp."""
    h = harness(realtime=realtime, **{"camera.enabled": True, "camera.width": 32, "camera.height": 32})
    images: list[Image] = []
    h.io.create_subscription(Image, "image_raw", images.append, 10)
    h.start()
    h.connect_policy()
    s0 = h.wait_set(0, "the first observation")
    h.spin_until(lambda: any(cv.stamp_ns(m.header.stamp) >= s0 for m in images), "an image from s0 on")
    img = next(m for m in images if cv.stamp_ns(m.header.stamp) >= s0)
    stamp = cv.stamp_ns(img.header.stamp)
    if realtime:  # a stream: the image of s0 or of a later observation, with that one's stamp
        h.spin_until(lambda: stamp in h.sets(), "the observation of the image's stamp")
    else:
        assert stamp == s0
    assert img.header.frame_id == "agentview"
    pixels = cv.image_to_numpy(img)
    assert pixels.shape == (32, 32, 3) and pixels.std() > 0, "a rendered scene, not a blank frame"


def test_bad_parameters_fail_configure(harness) -> None:
    assert harness(control_rate_hz=10.0).bridge.trigger_configure() == FAILURE
    assert harness(use_sim_time=True).bridge.trigger_configure() == FAILURE
    assert harness(task="towel").bridge.trigger_configure() == FAILURE


def _bridge_env() -> dict[str, str]:
    return {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)}


def test_console_script_fails_with_the_parameter_named() -> None:
    exe = shutil.which("expo-sim-bridge")
    assert exe is not None, "expo-sim-bridge is not installed (run scripts/setup.sh)"
    out = subprocess.run(
        [exe, "--ros-args", "-p", "control_rate_hz:=10.0"],
        env=_bridge_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "parameter 'control_rate_hz'" in out.stdout + out.stderr


def test_module_entry_point_exits_cleanly_on_sigint() -> None:
    ns = f"/t_{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "expo_sim.ros.bridge_node", "--ros-args", "-r", f"__ns:={ns}"]
    proc = subprocess.Popen(
        cmd, env=_bridge_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60.0
        while not any("active: waiting for the policy" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"the bridge never became active:\n{''.join(lines)}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, "".join(lines)
        reader.join(timeout=5)
        assert any("summary: 0 episodes" in line for line in lines), "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_learner_stats_before_activation_are_ignored(ros_ctx) -> None:
    """A learner publishes stats as soon as it is up; a bridge configured but not yet active
    (its manager activates it later) must not fail on them."""
    from expo_interfaces.msg import LearnerStats

    h = Harness(ros_ctx, learner_pacing_backlog=5)
    try:
        assert h.bridge.trigger_configure() == SUCCESS
        pub = h.io.create_publisher(LearnerStats, "learner_stats", 10)
        h.spin_until(lambda: pub.get_subscription_count() > 0, "the bridge's learner_stats subscription")
        pub.publish(LearnerStats(names=["backlog", "warmed_up"], values=[50.0, 1.0]))
        h.spin_for(0.3)  # the callback runs; before the fix it raised AttributeError here
        assert h.bridge.trigger_activate() == SUCCESS
    finally:
        h.close()


def test_realtime_injected_latency_delays_commands_and_a_restart_reports_the_episode(harness) -> None:
    h = harness(realtime=True, injected_latency_ms=120.0, max_action_age_ms=60_000.0, horizon=400)
    h.start()
    h.connect_policy()
    h.spin_until(lambda: h.action_pub.get_subscription_count() > 0, "the bridge to hear the policy")
    s0 = h.wait_set(0, "an observation")
    h.answer(s0, 0, 0)
    h.spin_until(lambda: len(h.feedback) >= 3, "steps under the delayed command")
    age_ms = h.bridge.stats.action_age.stats().p50_s * 1e3
    assert age_ms >= 120.0, f"took effect {age_ms:.0f} ms after its observation, 120 ms injected"
    n = len(h.feedback)
    assert h.bridge.trigger_deactivate() == SUCCESS
    assert h.bridge.trigger_activate() == SUCCESS
    h.spin_until(lambda: any(f.truncated for f in h.feedback[n:]), "the report of the interrupted episode")
    report = next(f for f in h.feedback[n:] if f.truncated)  # after any still on the wire
    assert (report.episode, report.step, report.terminated) == (0, 0, False)
    assert len(h.bridge.stats.records) == 1 and not h.bridge.stats.records[0].success


PLAN = np.array(
    [[0.5, 0, 0, 0, 0, 0, -1], [0.25, 0, 0, 0, 0, 0, -1], [-0.5, 0, 0, 0, 0, 0, -1]], dtype=np.float32
)


@pytest.mark.parametrize("mode", ["off", "receding"])
def test_realtime_plan_rows_fill_the_periods_of_a_stalled_policy(harness, mode: str) -> None:
    """One command with a 3-row plan, then the policy stalls: receding applies the rows in order
    in the next periods (counted as plan periods, reported as the applied action), then holds;
    off ignores the plan exactly as before (every later period a bridge hold)."""
    h = harness(realtime=True, horizon=6, num_episodes=1, max_action_age_ms=60_000.0, plan_mode=mode)
    h.start()
    h.spin_until(lambda: len(h.sets()) >= 2, "observations while no policy commands")
    h.connect_policy()
    h.spin_until(lambda: h.action_pub.get_subscription_count() > 0, "the bridge to hear the policy")
    s = h.sets()[-1]
    cmd = cv.Command(action=MOVE, stamp_ns=s, plan=PLAN, plan_period_ns=PERIOD_NS, episode=0, step=0)
    h.action_pub.publish(cv.action_command_msg(cmd))
    h.spin_until(lambda: h.bridge.finished, "one realtime episode")
    h.wait_feedback(6)
    assert all((f.episode, f.step) == (0, 0) for f in h.feedback)
    st = h.bridge.stats
    applied = [np.asarray(f.applied_action) for f in h.feedback if len(f.applied_action)]
    if mode == "off":
        assert (st.own_holds, st.plan_periods) == (5, 0) and applied == []
        return
    # Rows are due at s + P, s + 2P, s + 3P (s: the command's stamp); the periods from then on
    # without a new command are filled from them, in order, then the last row is kept (holds).
    assert 1 <= st.plan_periods <= 3 and st.plan_periods + st.own_holds == 5
    rows = [int(np.flatnonzero((PLAN == a).all(axis=1))[0]) for a in applied]
    distinct = [r for i, r in enumerate(rows) if i == 0 or r != rows[i - 1]]
    assert distinct == sorted(set(distinct)) and distinct[-1] == 2
    assert h.bridge.stats.counts()["plan_periods"] == st.plan_periods


def test_realtime_injected_stall_delays_a_command(harness) -> None:
    h = harness(
        realtime=True,
        horizon=3,
        num_episodes=1,
        max_action_age_ms=60_000.0,
        injected_stall_probability=1.0,
        injected_stall_ms=150.0,
    )
    h.start()
    h.connect_policy()
    h.spin_until(lambda: h.action_pub.get_subscription_count() > 0, "the bridge to hear the policy")
    h.answer(h.wait_set(0, "an observation"), 0, 0)
    h.spin_until(lambda: h.bridge.finished, "one realtime episode")
    assert h.bridge.stats.stalled == 1
    assert h.bridge.stats.action_age.stats().p50_s >= 0.15


@pytest.mark.parametrize("anchored", [True, False])
def test_realtime_delta_applies_to_the_pose_of_the_answered_observation(harness, anchored: bool) -> None:
    """realtime_anchor_deltas: a late command's goal is the ee pose published with the observation
    it answers plus its delta (0.05 m per unit), not the pose when it lands plus the delta."""
    h = harness(
        realtime=True,
        injected_latency_ms=120.0,
        max_action_age_ms=60_000.0,
        horizon=400,
        realtime_anchor_deltas=anchored,
    )
    h.start()
    h.connect_policy()
    h.spin_until(lambda: h.action_pub.get_subscription_count() > 0, "the bridge to hear the policy")
    s0 = h.wait_set(0, "an observation")
    h.answer(s0, 0, 0)  # the arm starts moving in +x 120 ms later
    x0 = h.ee_at(s0)[0]
    h.spin_until(lambda: any(h.ee_at(s)[0] - x0 > 2e-3 for s in h.sets()), "the arm to move")
    s1 = next(s for s in h.sets() if h.ee_at(s)[0] - x0 > 2e-3)  # observed while moving
    ctrl = h.bridge.env.robosuite_env.robots[0].controller
    first_goal = ctrl.goal_pos.copy()
    h.answer(s1, 0, 1)
    h.spin_until(lambda: h.bridge.stats.action_age.stats().count >= 2, "the second command to land")
    # it sets the controller's goal at the next MuJoCo step, in the bridge's next chunk
    h.spin_until(lambda: not np.array_equal(ctrl.goal_pos, first_goal), "the second goal")
    goal = ctrl.goal_pos.copy()
    expected = h.ee_at(s1) + MOVE[:3] * 0.05
    if anchored:
        np.testing.assert_allclose(goal, expected, atol=1e-6)
    else:  # the motion during the 120 ms on the way is added to the goal
        assert goal[0] - expected[0] > 1e-3
