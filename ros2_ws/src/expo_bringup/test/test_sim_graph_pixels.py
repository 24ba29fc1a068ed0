"""The sim graph in pixel mode (issue 13): ``sim_graph(obs="pixels")`` and ``sim.launch.py
obs:=pixels`` put the bridge in pixel mode and make the policy check the base frame; bad values
are refused naming the argument."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from expo_bringup.graph import SIM_BASE_FRAME, sim_graph

SIM_LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "sim.launch.py"


@pytest.fixture(scope="module")
def sim_launch() -> ModuleType:
    """``launch/sim.launch.py`` as a module (its name has dots, so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location("expo_bringup_sim_launch_px", SIM_LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pixel_graph_sets_the_bridge_and_policy_inputs() -> None:
    g = sim_graph(checkpoint="/ck/pix.safetensors", obs="pixels", learner=True, learner_dir="/tmp/l")
    bridge, policy = g.node("sim_bridge"), g.node("policy_node")
    assert bridge.parameters["observation.kind"] == "pixels"
    assert policy.parameters["observation.base_frame"] == SIM_BASE_FRAME == "robot0_base"
    assert g.node("learner_node").parameters["checkpoint"] == "/ck/pix.safetensors"
    # The safety box follows the pose the policy acts on: policy.yaml's world box in the base frame.
    assert policy.parameters["safety.workspace_low"] == [0.11, -0.4, -0.112]
    assert policy.parameters["safety.workspace_high"] == [0.91, 0.4, 0.438]
    can = sim_graph(task="can", obs="pixels").node("policy_node").parameters
    assert can["safety.workspace_low"] == [0.05, -0.3, -0.112]
    with pytest.raises(ValueError, match="no base-frame safety box"):
        sim_graph(task="stack", obs="pixels")
    state = sim_graph()
    assert "observation.kind" not in state.node("sim_bridge").parameters
    assert "observation.base_frame" not in state.node("policy_node").parameters
    with pytest.raises(ValueError, match="obs 'depth'"):
        sim_graph(obs="depth")


def test_launch_argument_obs(sim_launch) -> None:
    g = sim_launch.graph_from_launch_arguments({"checkpoint": "/ck/pix.safetensors", "obs": "pixels"})
    assert g.node("sim_bridge").parameters["observation.kind"] == "pixels"
    assert "observation.kind" not in sim_launch.graph_from_launch_arguments({}).node("sim_bridge").parameters
    with pytest.raises(ValueError, match="launch argument 'obs'"):
        sim_launch.check_arguments({"obs": "rgb"})
