"""``franka.launch.py emulate:=true`` under launch_pytest: the installed launch file included with
its arguments (a tiny untrained policy, an isolated domain and namespace, two short episodes):
policy node -> Franka adapter -> emulated controller -> sim bridge. The adapter's equilibrium
poses reach the emulator, the emulator's actions step the sim, the episodes end, and the launch
then shuts down cleanly (launch_pytest fails the test if it ends with a non-zero code, which a
node exiting non-zero causes)."""

from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest not installed (make setup builds it unless EXPO_SKIP_ROS_TOOLS=1)"
)

import os  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import rclpy  # noqa: E402
from expo_bringup.franka_graph import EQUILIBRIUM_POSE  # noqa: E402
from expo_core.agent import ExpoAgent  # noqa: E402
from expo_core.checkpoint import save_checkpoint  # noqa: E402
from expo_core.presets import preset_config  # noqa: E402
from expo_sim.ros.graph_observer import GraphObserver  # noqa: E402
from franka_include import franka_launch_description  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from launch import LaunchDescription  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 226 + os.getpid() % 4  # 226..229: apart from the other test files' ranges
NAMESPACE = f"t_{uuid.uuid4().hex[:8]}"
EPISODES, HORIZON = 2, 20
STARTUP_TIMEOUT_S, RUN_TIMEOUT_S = 120.0, 120.0


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
        "checkpoint": str(checkpoint),
        "namespace": NAMESPACE,
        "params_file": str(params),
    }
    # The test is the bridge's lifecycle manager; the bridge exits after its episodes.
    bridge = f"    autostart: false\n    num_episodes: {EPISODES}\n    horizon: {HORIZON}\n"
    return franka_launch_description(args, DOMAIN_ID, bridge)


@pytest.mark.launch(fixture=launch_description)
def test_the_franka_graph_runs_episodes_on_the_emulator():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    obs = GraphObserver(ctx, f"/{NAMESPACE}")
    equilibria: list[PoseStamped] = []
    obs.node.create_subscription(PoseStamped, EQUILIBRIUM_POSE, equilibria.append, 100)
    try:
        obs.configure_bridge(timeout=STARTUP_TIMEOUT_S)
        obs.spin_until(
            lambda: obs.matched(("env_feedback", "action")), "the bridge and emulator", STARTUP_TIMEOUT_S
        )
        obs.activate_bridge(timeout=STARTUP_TIMEOUT_S)
        obs.spin_until(lambda: obs.episodes_done() >= EPISODES, f"{EPISODES} episodes", RUN_TIMEOUT_S)
        stepped = len(obs.got["env_feedback"])
    finally:
        obs.close()
        rclpy.try_shutdown(context=ctx)
    assert equilibria, "no equilibrium pose from the Franka adapter"
    assert len(obs.got["action"]) >= stepped // 2, "the emulator's actions did not drive the sim"
    assert stepped >= EPISODES * 2
    yield  # the bridge exits after its episodes; every node is required, so launch shuts down
