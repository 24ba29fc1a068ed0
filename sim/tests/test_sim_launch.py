"""launch/sim.launch.py under launch_pytest: the scenario of ``sim/tests/test_sim_graph.py``
(three lift episodes in lockstep with a tiny policy, checked from a test-side node) started by
``launch`` (:func:`expo_bringup.launch_graph.launch_actions`, what sim.launch.py starts).
launch_pytest comes with ``make setup`` (.ros_tools) or a full ROS 2 install.
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
from expo_bringup.graph import Graph, sim_graph  # noqa: E402
from expo_bringup.launch_graph import launch_actions  # noqa: E402
from expo_core.agent import ExpoAgent  # noqa: E402
from expo_core.checkpoint import save_checkpoint  # noqa: E402
from expo_core.presets import preset_config  # noqa: E402
from expo_core.spec import task_obs_spec  # noqa: E402
from expo_sim.ros.graph_observer import GraphObserver  # noqa: E402
from launch import LaunchDescription  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 231 + os.getpid() % 2  # 231..232: apart from the other test files' ranges
NAMESPACE = f"t_{uuid.uuid4().hex[:8]}"
CLOCK_TOPIC = f"/{NAMESPACE}/clock"
EPISODES, HORIZON = 3, 40
OBS_DIM = task_obs_spec("lift").dim
RUN_TIMEOUT_S = 240.0
STARTUP_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained EXPO agent for lift (plumbing, not learning)."""
    path = tmp_path_factory.mktemp("policy") / "ckpt"
    save_checkpoint(path, ExpoAgent(preset_config("tiny", OBS_DIM, 7), seed=0))
    return path.with_suffix(".safetensors")


@launch_pytest.fixture
def launch_description(checkpoint: Path) -> LaunchDescription:
    overrides = {
        # The test is the bridge's lifecycle manager: no autostart, it activates the bridge.
        "sim_bridge": {
            "horizon": HORIZON,
            "num_episodes": EPISODES,
            "action_timeout_s": 10.0,
            "autostart": False,
        },
        "policy_node": {"diagnostics_period_s": 0.2},
    }
    graph = sim_graph(task="lift", checkpoint=str(checkpoint), namespace=NAMESPACE)
    graph = graph.with_overrides(CLOCK_TOPIC, **overrides)  # sim time of this test only
    graph = Graph(
        tuple(dataclasses.replace(n, env={**n.env, "ROS_DOMAIN_ID": str(DOMAIN_ID)}) for n in graph.nodes)
    )
    return LaunchDescription([*launch_actions(graph), launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=launch_description)
def test_three_lockstep_episodes_through_the_launch_file():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    obs = GraphObserver(ctx, f"/{NAMESPACE}", clock_topic=CLOCK_TOPIC)
    try:
        # Activate the bridge only once every publisher is heard: nothing of the run is missed.
        obs.configure_bridge(timeout=STARTUP_TIMEOUT_S)
        obs.spin_until(obs.matched, "the observer to hear every publisher", STARTUP_TIMEOUT_S)
        obs.activate_bridge(timeout=STARTUP_TIMEOUT_S)
        obs.spin_until(lambda: obs.episodes_done() >= EPISODES, f"{EPISODES} episodes", RUN_TIMEOUT_S)
        n_steps = len(obs.got["env_feedback"])
        obs.spin_until(lambda: len(obs.got["transitions"]) >= n_steps, "a transition per step", 10.0)
        # Every step's action is in its transition and in the bridge's count (below); this
        # observer's own copies may lag or be lost on a loaded machine (not required).
        obs.wait_for_action_copies(10.0)
        final = lambda: obs.latest_status(": sim").get("env_steps") == str(n_steps)  # noqa: E731
        obs.spin_until(final, "the bridge's final diagnostics (every step counted)", 10.0)
        n_feedback = len(obs.got["env_feedback"])
        problems = obs.lockstep_problems(EPISODES, HORIZON, OBS_DIM)
        loop, sim = obs.latest_status(": control loop"), obs.latest_status(": sim")
    finally:
        obs.close()
        rclpy.try_shutdown(context=ctx)

    assert not problems, "\n".join(problems)
    assert int(loop.get("actions", 0)) > 0, "no control-loop diagnostics from the policy node"
    assert int(sim.get("env_steps", 0)) > 0, "no diagnostics from the sim bridge"
    # every observation the bridge published was answered by an action (the bridge's own count)
    assert int(float(sim["obs_to_action_count"])) == n_feedback == int(sim["env_steps"]), sim
    yield  # the bridge exits after its episodes; every node is required, so launch shuts down
