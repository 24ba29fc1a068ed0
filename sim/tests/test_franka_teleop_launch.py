"""``franka.launch.py emulate:=true teleop:=keyboard`` under launch_pytest: the teleop node in the
Franka graph, remapped onto the policy's commands (``policy_action``), and the policy node
arbitrating. A stand-in for the keyboard tool publishes ``sensor_msgs/Joy`` on ``joy``: released
(the operator arms), then the deadman held pushing +x, then released again. The transitions
carry ``intervention`` false before the hold and true during it; the teleop node's commands claim
control with a valid action; once acting, the policy publishes no hold."""

from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest not installed (make setup builds it unless EXPO_SKIP_ROS_TOOLS=1)"
)

import os  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import rclpy  # noqa: E402
from expo_bringup.franka_graph import POLICY_ACTION  # noqa: E402
from expo_core.agent import ExpoAgent  # noqa: E402
from expo_core.checkpoint import save_checkpoint  # noqa: E402
from expo_core.presets import preset_config  # noqa: E402
from expo_interfaces.msg import ActionCommand, TeleopCommand  # noqa: E402
from expo_sim.ros.graph_observer import GraphObserver  # noqa: E402
from franka_include import franka_launch_description  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from sensor_msgs.msg import Joy  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 96 + os.getpid() % 2  # 96..97: apart from the other test files' ranges
NAMESPACE = f"t_{uuid.uuid4().hex[:8]}"
HORIZON = 400  # one episode, longer than the test's steps: launch_pytest shuts the launch down
STARTUP_TIMEOUT_S, RUN_TIMEOUT_S = 120.0, 60.0
BEFORE, HELD = 8, 20  # transitions seen released, then with the deadman held


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "ckpt"
    save_checkpoint(path, ExpoAgent(preset_config("tiny", 19, 7), seed=0))
    return path.with_suffix(".safetensors")


@launch_pytest.fixture
def launch_description(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> LaunchDescription:
    params = tmp_path_factory.mktemp("params") / "params.yaml"
    args = {
        "emulate": "true",
        "teleop": "keyboard",
        "checkpoint": str(checkpoint),
        "namespace": NAMESPACE,
        "params_file": str(params),
    }
    return franka_launch_description(args, DOMAIN_ID, f"    autostart: false\n    horizon: {HORIZON}\n")


@pytest.mark.launch(fixture=launch_description)
def test_the_teleop_node_takes_over_on_the_franka_graph():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    obs = GraphObserver(ctx, f"/{NAMESPACE}")
    node = obs.node
    commands: list[ActionCommand] = []
    teleop: list[TeleopCommand] = []
    node.create_subscription(ActionCommand, POLICY_ACTION, commands.append, 1000)
    node.create_subscription(TeleopCommand, "teleop", teleop.append, 1000)
    joy = node.create_publisher(Joy, "joy", 10)
    held = [False]

    def send_joy() -> None:  # as keyboard_teleop: 20 Hz, button 0 = control, axis 0 = x
        m = Joy()
        m.header.stamp = node.get_clock().now().to_msg()
        m.axes = [1.0 if held[0] else 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        m.buttons = [int(held[0]), 0, 0]
        joy.publish(m)

    node.create_timer(0.05, send_joy)
    transitions = obs.got["transitions"]
    try:
        obs.configure_bridge(timeout=STARTUP_TIMEOUT_S)
        obs.spin_until(
            lambda: obs.matched(("env_feedback", "transitions")) and joy.get_subscription_count() > 0,
            "the bridge, the policy and the teleop node",
            STARTUP_TIMEOUT_S,
        )
        obs.activate_bridge(timeout=STARTUP_TIMEOUT_S)
        obs.spin_until(lambda: len(transitions) >= BEFORE, f"{BEFORE} transitions", RUN_TIMEOUT_S)
        before = len(transitions)
        held[0] = True
        obs.spin_until(lambda: len(transitions) >= before + HELD, f"{HELD} more transitions", RUN_TIMEOUT_S)
        during = len(transitions)
        held[0] = False
        obs.spin_until(
            lambda: len(transitions) >= during + 5, "5 transitions after the release", RUN_TIMEOUT_S
        )
    finally:
        obs.close()
        rclpy.try_shutdown(context=ctx)
    flags = [bool(t.intervention) for t in transitions]
    assert not any(flags[:before]), flags
    # the deadman reaches the policy within a few steps of being pressed, and holds it after
    assert sum(flags[before:during]) >= HELD - 5 and all(flags[during - 5 : during]), flags
    assert any(m.deadman and m.valid for m in teleop) and any(not m.deadman for m in teleop)
    acting = [i for i, m in enumerate(commands) if not m.hold]
    assert acting, "no command from the policy node"
    # before the bridge's first observation the policy holds (stale_input); never after
    assert not [m.hold_reason for m in commands[acting[0] :] if m.hold], "the policy node held"
    yield
