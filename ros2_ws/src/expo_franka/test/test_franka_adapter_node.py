"""FrankaAdapterNode on an isolated ROS domain: OSC scaling end to end, e-stop latch and clear,
stale-pose hold, dry run, bad parameters, and the executable with the shipped YAML.

One rclpy context per module on its own domain id; every test puts its nodes in a fresh namespace.
Waits are for conditions with timeouts; fixed windows only show that something does NOT happen.
The topic names are the franka_ros2 defaults (``franka_robot_state_broadcaster/current_pose``...).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_bringup.graph import default_config_dir
from expo_franka.franka_adapter_node import FrankaAdapterNode
from expo_franka.franka_adapter_params import PARAMETERS, TOPICS
from expo_franka.franka_conversions import axis_angle_to_quat, rotation_angle
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from expo_ros.object_state import quat_multiply
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger

pytestmark = pytest.mark.ros

TIMEOUT_S = 15.0
DOMAIN_ID = 1 + os.getpid() % 19  # 1..19: apart from the other test files' ranges
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
FRANKA_DEFAULTS = {p.name: p.default for p in PARAMETERS}
RATE_HZ = 10.0  # adapter tick in these tests: one period = 0.1 s
HOME_POS, DOWN = np.array([0.5, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0])
JOINTS = [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
OUT = {
    "equilibrium": (PoseStamped, TOPICS["equilibrium_pose"]),
    "dry_equilibrium": (PoseStamped, TOPICS["dry_run_equilibrium_pose"]),
    "width": (Float64, TOPICS["gripper_width_cmd"]),
    "dry_width": (Float64, TOPICS["dry_run_gripper_width_cmd"]),
    "diagnostics": (DiagnosticArray, "diagnostics"),
}


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class Harness(NodeHarness):
    """A FrankaAdapterNode plus an ``io`` node playing policy and franka_ros2, in a fresh namespace."""

    timeout_s = TIMEOUT_S

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ns = f"/t_{uuid.uuid4().hex[:8]}"
        defaults = {
            "dry_run": False,
            "control_rate_hz": RATE_HZ,
            "diagnostics_period_s": 0.2,
            # Generous on a loaded 2-core machine; the stale test stops the stream outright.
            "watchdog.current_pose_max_age_s": 0.5,
            "watchdog.joint_states_max_age_s": 0.5,
            "safety.action_max_age_s": 60.0,  # a target stays put unless a rule under test moves it
            "executor.max_action_age_ms": 5000.0,  # commands are stamped when sent: never late here
        }
        overrides = [Parameter(k, value=v) for k, v in {**defaults, **params}.items()]
        self.node = FrankaAdapterNode(context=ctx, namespace=self.ns, parameter_overrides=overrides)
        self.io = rclpy.create_node("io", namespace=self.ns, context=ctx)
        self.got: dict[str, list] = {name: [] for name in OUT}
        for name, (msg_type, topic) in OUT.items():
            self.io.create_subscription(msg_type, topic, self.got[name].append, 100)
        self.pub = {
            "action": self.io.create_publisher(ActionCommand, TOPICS["action"], 10),
            "current_pose": self.io.create_publisher(PoseStamped, TOPICS["current_pose"], 10),
            "joint_states": self.io.create_publisher(JointState, TOPICS["joint_states"], 10),
            "e_stop": self.io.create_publisher(Bool, "e_stop", 10),
        }
        self.streaming = {"current_pose", "joint_states"}  # what the 50 Hz robot stream publishes
        self.stream_pos = HOME_POS.copy()  # the measured position the stream reports
        self.io.create_timer(0.02, self._stream)
        self.attach(ctx, self.node, self.io)

    def _stream(self) -> None:
        ns = self.io.get_clock().now().nanoseconds
        if "current_pose" in self.streaming:
            self.pub["current_pose"].publish(cv.pose_stamped_msg(self.stream_pos, DOWN, ns, "fr3_link0"))
        if "joint_states" in self.streaming:
            self.pub["joint_states"].publish(cv.joint_state_msg(JOINTS, np.r_[np.zeros(7), 0.02, 0.02], ns))

    def start(self, out: str = "equilibrium") -> None:
        """configure + activate, wait for matching and for the first (hold) equilibrium."""
        assert self.node.trigger_configure() == SUCCESS
        assert self.node.trigger_activate() == SUCCESS
        self.spin_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in self.pub.values())
                and self.io.count_publishers(f"{self.ns}/{OUT[out][1]}") >= 1
            ),
            "topic matching",
        )
        self.spin_until(lambda: self.got[out], "the first equilibrium (a hold at the measured pose)")

    def act(
        self, action: list[float], hold: bool = False, age_s: float = 0.0, stamp_ns: int | None = None
    ) -> int:
        """Publish a command stamped ``age_s`` before now (or at ``stamp_ns``); returns its stamp."""
        if stamp_ns is None:
            stamp_ns = self.io.get_clock().now().nanoseconds - round(age_s * 1e9)
        cmd = cv.Command(np.asarray(action, np.float32), stamp_ns, hold=hold)
        self.pub["action"].publish(cv.action_command_msg(cmd))
        return stamp_ns

    def wait_pose(self, pred: Callable[[np.ndarray, np.ndarray], bool], what: str, out: str = "equilibrium"):
        """The first pose on ``out`` received from now on that satisfies ``pred(pos, quat)``."""
        start = len(self.got[out])

        def found():
            return next((m for m in self.got[out][start:] if pred(*cv.pose_stamped_to_numpy(m))), None)

        self.spin_until(found, what)
        return found()

    def diagnostics(self) -> dict[str, str]:
        return cv.diagnostics_values(self.got["diagnostics"][-1]) if self.got["diagnostics"] else {}

    def call(self, service: str) -> Trigger.Response:
        return self.call_trigger(self.io, f"{self.ns}/{service}")


@pytest.fixture
def harness(ros_ctx):
    yield from harness_factory(lambda **params: Harness(ros_ctx, **params))


def _at_home(pos: np.ndarray, quat: np.ndarray) -> bool:
    return bool(np.allclose(pos, HOME_POS, atol=1e-9)) and rotation_angle(DOWN, quat) < 1e-6


def _moved(pos: np.ndarray, quat: np.ndarray) -> bool:
    return not _at_home(pos, quat)


def test_action_becomes_an_equilibrium_pose_with_osc_scaling_and_a_gripper_width(harness) -> None:
    h = harness()
    h.start()
    first = h.got["equilibrium"][0]
    assert _at_home(*cv.pose_stamped_to_numpy(first)) and first.header.frame_id == "fr3_link0"
    h.act([1.0, -0.5, 0.2, 0.0, 0.0, 0.4, -1.0])
    msg = h.wait_pose(_moved, "the target equilibrium")
    pos, quat = cv.pose_stamped_to_numpy(msg)
    # robosuite OSC_POSE: 0.05 m and 0.5 rad per unit; rotation about the BASE z axis (left product).
    np.testing.assert_allclose(pos, HOME_POS + [0.05, -0.025, 0.01], atol=1e-9)
    assert rotation_angle(quat_multiply(axis_angle_to_quat([0, 0, 0.2]), DOWN), quat) < 1e-6
    assert msg.header.frame_id == "fr3_link0"
    # pip mode has no franka_msgs/control_msgs: the gripper goes to the Float64 width topic.
    assert h.node.gripper_interface == "width_topic"
    h.spin_until(lambda: h.got["width"], "the gripper width command")
    assert h.got["width"][0].data == pytest.approx(0.08)  # -1: open
    h.spin_until(lambda: h.diagnostics().get("targets_sent", "0") != "0", "diagnostics counting targets")
    d = h.diagnostics()
    assert d["gripper_state"] == "open" and d["gripper_width_m"] == "0.04" and d["e_stop"] == "false"
    # Deactivation sends a last hold at the measured pose.
    n = len(h.got["equilibrium"])
    assert h.node.trigger_deactivate() == SUCCESS
    h.spin_until(lambda: len(h.got["equilibrium"]) > n, "the final hold")
    assert _at_home(*cv.pose_stamped_to_numpy(h.got["equilibrium"][-1]))


def test_late_and_out_of_order_actions_are_dropped_and_counted(harness) -> None:
    h = harness(**{"executor.max_action_age_ms": 1000.0})
    h.start()
    h.act([1.0, 0, 0, 0, 0, 0, 0], age_s=3.0)  # answers an observation 3 s old: dropped
    h.spin_until(lambda: h.diagnostics().get("actions_dropped_late") == "1", "the late drop counted")
    h.act([0.0] * 7, hold=True, age_s=2.0)  # a hold is never too old to apply
    h.spin_until(lambda: h.diagnostics().get("action_age_count") == "1", "the old hold admitted")
    assert all(_at_home(*cv.pose_stamped_to_numpy(m)) for m in h.got["equilibrium"])
    newer = h.act([0.0, 1.0, 0, 0, 0, 0, 0])
    pos, _ = cv.pose_stamped_to_numpy(h.wait_pose(_moved, "the fresh target"))
    np.testing.assert_allclose(pos, HOME_POS + [0.0, 0.05, 0.0], atol=1e-9)
    n = len(h.got["equilibrium"])
    h.act([0.0, 0.0, 1.0, 0, 0, 0, 0], stamp_ns=newer - 1)  # older than the one in effect: dropped
    h.spin_until(lambda: h.diagnostics().get("actions_dropped_out_of_order") == "1", "the out-of-order drop")
    up = HOME_POS + [0.0, 0.0, 0.05]
    assert not any(np.allclose(cv.pose_stamped_to_numpy(m)[0], up) for m in h.got["equilibrium"][n:])
    d = h.diagnostics()
    assert d["actions_dropped"] == "2" and d["action_age_count"] == "2"
    assert float(d["action_age_max_ms"]) >= 1900.0


def test_e_stop_latches_a_hold_within_one_period_until_cleared(harness) -> None:
    h = harness()
    h.start()
    h.act([1.0, 0, 0, 0, 0, 0, 0])
    h.wait_pose(_moved, "the target equilibrium")
    t0 = h.io.get_clock().now().nanoseconds
    h.pub["e_stop"].publish(Bool(data=True))
    hold = h.wait_pose(_at_home, "the e-stop hold")
    delay = cv.stamp_ns(hold.header.stamp) - t0
    assert 0 < delay < 1e9 / RATE_HZ, f"hold sent {delay * 1e-6:.1f} ms after the e-stop"
    # Latched: actions are refused, e_stop=false does not release it, nothing but the hold goes out.
    n = len(h.got["equilibrium"])
    h.pub["e_stop"].publish(Bool(data=False))
    for _ in range(3):
        h.act([1.0, 0, 0, 0, 0, 0, 1.0])
        h.spin_for(0.1)
    assert len(h.got["equilibrium"]) > n
    assert all(_at_home(*cv.pose_stamped_to_numpy(m)) for m in h.got["equilibrium"][n:])
    assert h.got["width"] == []  # no gripper command while stopped
    h.spin_until(lambda: int(h.diagnostics().get("rejected_e_stop", "0")) >= 3, "rejections in diagnostics")
    d = h.diagnostics()
    assert d["e_stop"] == "true" and d["holding"] == "true"
    assert h.got["diagnostics"][-1].status[0].level == b"\x02"  # ERROR while latched
    # Cleared: still holding until a new action, then acting again.
    response = h.call("clear_e_stop")
    assert response.success and "cleared" in response.message
    n = len(h.got["equilibrium"])
    h.spin_for(0.25)
    assert all(_at_home(*cv.pose_stamped_to_numpy(m)) for m in h.got["equilibrium"][n:])
    h.act([0.0, 1.0, 0, 0, 0, 0, 0])
    pos, _ = cv.pose_stamped_to_numpy(h.wait_pose(_moved, "acting after the clear"))
    np.testing.assert_allclose(pos, HOME_POS + [0.0, 0.05, 0.0], atol=1e-9)
    # The service latches too.
    assert h.call("trigger_e_stop").success
    h.wait_pose(_at_home, "the hold after trigger_e_stop")
    assert h.node.safety.e_stopped


def test_stale_current_pose_holds_and_refuses_actions(harness) -> None:
    h = harness()
    h.start()
    h.act([0.0, 0.0, 1.0, 0, 0, 0, 0])
    h.wait_pose(_moved, "the target equilibrium")
    h.streaming.discard("current_pose")  # the state broadcaster goes quiet; joint_states keep coming
    h.wait_pose(_at_home, "the hold at the last measured pose")
    h.spin_until(lambda: "current_pose" in h.diagnostics().get("hold_reason", ""), "the hold reason")
    assert h.diagnostics()["hold_reason"].startswith("stale_input: current_pose")
    n = len(h.got["equilibrium"])
    h.act([0.0, 0.0, 1.0, 0, 0, 0, 0])
    h.spin_until(lambda: int(h.diagnostics().get("rejected_stale_input", "0")) >= 1, "the counted rejection")
    assert all(_at_home(*cv.pose_stamped_to_numpy(m)) for m in h.got["equilibrium"][n:])


def test_dry_run_publishes_the_would_be_commands_only_on_dry_run_topics(harness) -> None:
    h = harness(dry_run=True)
    h.start(out="dry_equilibrium")
    assert h.io.count_publishers(f"{h.ns}/{TOPICS['equilibrium_pose']}") == 0  # not even created
    assert h.io.count_publishers(f"{h.ns}/{TOPICS['gripper_width_cmd']}") == 0
    h.act([0.0, 0.0, -1.0, 0, 0, 0, 1.0])
    pos, _ = cv.pose_stamped_to_numpy(h.wait_pose(_moved, "the dry-run target", out="dry_equilibrium"))
    np.testing.assert_allclose(pos, HOME_POS - [0.0, 0.0, 0.05], atol=1e-9)
    h.spin_until(lambda: h.got["dry_width"], "the dry-run gripper command")
    assert h.got["dry_width"][0].data == pytest.approx(0.0)  # +1: close (grasp at width 0)
    h.spin_for(0.3)
    assert h.got["equilibrium"] == [] and h.got["width"] == []
    assert h.diagnostics()["dry_run"] == "true"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"gripper.interface": "franka_actions"}, "franka_actions needs franka_msgs"),
        ({"safety.max_rotation_step_rad": 4.0}, "parameter 'safety.max_rotation_step_rad'"),
    ],
)
def test_bad_parameters_fail_configure_with_a_clear_message(
    harness, capfd, params: dict, message: str
) -> None:
    if "gripper.interface" in params:
        try:
            import franka_msgs  # noqa: F401

            pytest.skip("franka_msgs is installed here")
        except ImportError:
            pass
    h = harness(**params)
    assert h.node.trigger_configure() == FAILURE
    assert h.node.cfg is None and h.node.safety is None
    assert message in capfd.readouterr().err
    h.node.set_parameters([Parameter(k, value=FRANKA_DEFAULTS[k]) for k in params])
    assert h.node.trigger_configure() == SUCCESS  # a failed configure leaves it re-configurable


def test_executable_with_the_shipped_yaml_dry_runs_holds_and_exits_cleanly(ros_ctx) -> None:
    ns = f"/t_{uuid.uuid4().hex[:8]}"
    yaml_file = default_config_dir() / "franka_adapter.yaml"
    cmd = [sys.executable, "-m", "expo_franka.franka_adapter_node", "--ros-args", "-r", f"__ns:={ns}"]
    cmd += ["--params-file", str(yaml_file)]
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    io = rclpy.create_node("io", namespace=ns, context=ros_ctx)
    diags: list[DiagnosticArray] = []
    io.create_subscription(DiagnosticArray, "diagnostics", diags.append, 10)
    ex = SingleThreadedExecutor(context=ros_ctx)
    ex.add_node(io)

    def spin_until(done: Callable[[], object], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"timed out waiting for {what}; node output:\n{proc.communicate()[0]}")
            ex.spin_once(timeout_sec=0.05)

    try:
        spin_until(lambda: diags, "diagnostics from the autostarted adapter")
        values = cv.diagnostics_values(diags[-1])
        assert values["dry_run"] == "true" and values["gripper_interface"] == "width_topic"
        proc.send_signal(signal.SIGINT)
        spin_until(lambda: proc.poll() is not None, "the adapter to exit", timeout=15.0)
        out = proc.communicate()[0]
        assert proc.returncode == 0, out
        assert "DRY RUN" in out and "franka_msgs and control_msgs are not installed" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        ex.shutdown()
        io.destroy_node()


def test_receding_plan_rows_take_effect_on_the_ticks_after_a_command(harness) -> None:
    """executor.plan_mode receding: a command with a 2-row plan (500 ms apart) and no command
    after it: the ticks at +500 and +1000 ms apply rows 1 and 2 (relative to the measured pose,
    like new actions), counted as plan_ticks. Rows far apart: a command that arrives a whole
    period after its stamp (a loaded machine) rightly starts at row 1, which would skip the
    first target."""
    h = harness(**{"executor.plan_mode": "receding", "executor.plan_max_age_ms": 5000.0})
    h.start()
    stamp = h.io.get_clock().now().nanoseconds
    plan = np.array([[0, 1.0, 0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0, 0, 0]], np.float32)
    cmd = cv.Command(
        np.array([1.0, 0, 0, 0, 0, 0, 0], np.float32), stamp, plan=plan, plan_period_ns=500_000_000
    )
    start = len(h.got["equilibrium"])
    h.pub["action"].publish(cv.action_command_msg(cmd))
    targets = [HOME_POS + s for s in ([0.05, 0, 0], [0, 0.05, 0], [0, 0, 0.05])]

    def in_order() -> bool:  # the three targets in this order (several may arrive in one spin)
        poses = iter(cv.pose_stamped_to_numpy(m)[0] for m in h.got["equilibrium"][start:])
        return all(any(np.allclose(p, t, atol=1e-9) for p in poses) for t in targets)

    h.spin_until(in_order, "the action, then plan rows 1 and 2")
    h.spin_until(lambda: h.diagnostics().get("plan_ticks") == "2", "two plan ticks in diagnostics")
    assert h.diagnostics()["plan_mode"] == "receding" and h.diagnostics()["plan_rows_dropped"] == "0"


@pytest.mark.parametrize("anchored", [True, False])
def test_a_delta_applies_to_the_pose_measured_at_the_commands_stamp(harness, anchored: bool) -> None:
    """executor.anchor_deltas: the target is the pose measured at the command's stamp (what its
    policy saw) plus the delta; off, the pose measured when it arrives plus the delta."""
    h = harness(**{"executor.anchor_deltas": anchored})
    h.start()
    seen = h.io.get_clock().now().nanoseconds  # the policy's observation: the arm at HOME
    h.spin_until(lambda: h.node.poses.at(seen) is not None, "the pose at that stamp remembered")
    h.stream_pos = HOME_POS + [0.03, 0.0, 0.0]  # the arm moved on while the command was on its way
    h.spin_until(
        lambda: h.node._measured is not None and h.node._measured.position[0] > HOME_POS[0] + 0.02,
        "the moved pose measured",
    )
    h.act([1.0, 0, 0, 0, 0, 0, 0], stamp_ns=seen)
    pos, _ = cv.pose_stamped_to_numpy(h.wait_pose(lambda p, q: p[0] > HOME_POS[0] + 0.04, "the target"))
    expected = HOME_POS + [0.05 if anchored else 0.08, 0.0, 0.0]
    np.testing.assert_allclose(pos, expected, atol=1e-9)
    h.spin_until(lambda: "anchored" in h.diagnostics(), "diagnostics")
    assert h.diagnostics()["anchor_deltas"] == str(anchored).lower()
