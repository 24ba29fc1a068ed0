"""launch/sim.launch.py with the learner (online fine-tuning) under launch_pytest: the scenario of
``sim/tests/test_session.py::test_online_session_learner_updates_and_policy_swaps_weights``
started by ``launch``: the learner trains on the streamed transitions and the policy's weights
version advances at least twice during lockstep episodes. The graph comes from the installed
sim.launch.py's argument mapping; launch_pytest comes with ``make setup`` (.ros_tools) or a full
ROS 2 install.
"""

from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest not installed (make setup builds it unless EXPO_SKIP_ROS_TOOLS=1)"
)

import dataclasses  # noqa: E402
import os  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import rclpy  # noqa: E402
from expo_bringup.graph import Graph  # noqa: E402
from expo_bringup.launch_graph import launch_actions  # noqa: E402
from expo_core.agent import ExpoAgent  # noqa: E402
from expo_core.checkpoint import save_checkpoint  # noqa: E402
from expo_core.presets import preset_config  # noqa: E402
from expo_sim.session.monitor import SessionMonitor  # noqa: E402
from expo_sim.session.stats import SessionStats  # noqa: E402
from launch import LaunchDescription  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 98 + os.getpid() % 3  # 98..100: apart from the other test files' ranges
NAMESPACE = f"t_{uuid.uuid4().hex[:8]}"
EPISODES, HORIZON, TIMEOUT_S = 4, 60, 240.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "base"
    save_checkpoint(path, ExpoAgent(preset_config("tiny", 19, 7), seed=0))
    return path.with_suffix(".safetensors")


@launch_pytest.fixture
def launch_description(sim_launch, checkpoint: Path, tmp_path_factory) -> LaunchDescription:
    args = {
        "checkpoint": str(checkpoint),
        "namespace": NAMESPACE,
        "learner": "true",
        "learner_dir": str(tmp_path_factory.mktemp("learner")),
    }
    graph = sim_launch.graph_from_launch_arguments(args).with_overrides(
        f"/{NAMESPACE}/clock",
        sim_bridge={"horizon": HORIZON, "num_episodes": EPISODES, "autostart": False},
        learner_node={"warmup_transitions": 20, "publish_every_updates": 10, "publish_every_s": 1.0},
    )
    graph = Graph(
        tuple(dataclasses.replace(n, env={**n.env, "ROS_DOMAIN_ID": str(DOMAIN_ID)}) for n in graph.nodes)
    )
    return LaunchDescription([*launch_actions(graph), launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=launch_description)
def test_online_fine_tuning_through_the_launch_file():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    stats = SessionStats(target_episodes=EPISODES)
    monitor = SessionMonitor(ctx, f"/{NAMESPACE}", stats)
    try:
        monitor.start_bridge(TIMEOUT_S, alive=lambda: True)
        monitor.spin_until(lambda: stats.done, 1.0, lambda: None)
    finally:
        monitor.close()
        rclpy.try_shutdown(context=ctx)
    assert stats.episodes == EPISODES
    assert stats.learner.get("updates", 0) > 0, stats.learner
    versions = {int(v) for _, _, v in stats.episode_log} | {int(stats.policy.get("weights_version", 0))}
    assert max(versions) >= 3, versions
    yield
