"""launch/sim.launch.py without launch: launch arguments -> graph, graph node -> launch_ros kwargs."""

from __future__ import annotations

import sys

import pytest
from expo_bringup.graph import sim_graph


def test_launch_arguments_are_the_documented_ones_with_sim_graph_defaults(sim_launch) -> None:
    names = [name for name, _, _ in sim_launch.LAUNCH_ARGUMENTS]
    assert names == [
        "task",
        "checkpoint",
        "backend",
        "realtime",
        "namespace",
        "rviz",
        "learner",
        "learner_dir",
        "offline_dataset",
    ]
    assert sim_launch.graph_from_launch_arguments({}) == sim_graph()


def test_launch_argument_texts_map_onto_sim_graph(sim_launch) -> None:
    args = {"task": "can", "checkpoint": "/c/x.pt", "backend": "torch", "realtime": "True", "namespace": "r1"}
    g = sim_launch.graph_from_launch_arguments(args)
    assert g == sim_graph(task="can", checkpoint="/c/x.pt", realtime=True, namespace="r1")
    lockstep = sim_launch.graph_from_launch_arguments({"realtime": "0"})
    assert lockstep.node("sim_bridge").parameters["realtime"] is False


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"realtime": "maybe"}, "launch argument 'realtime'"),
        ({"rviz": "sometimes"}, "launch argument 'rviz'"),
        ({"learner": "true", "checkpoint": "/b.safetensors"}, "learner_dir"),
        ({"speed": "1"}, "unknown launch arguments ['speed']"),
        ({"task": "towel"}, "task 'towel' unknown"),
        ({"namespace": "bad-ns"}, "namespace"),
    ],
)
def test_bad_launch_arguments_raise_naming_them(sim_launch, values: dict, needle: str) -> None:
    with pytest.raises(ValueError) as e:
        sim_launch.graph_from_launch_arguments(values)
    assert needle in str(e.value)


def test_node_kwargs_use_the_ament_package_when_installed_else_python_m(sim_launch) -> None:
    g = sim_graph(checkpoint="/c/x.safetensors", namespace="robot1")
    policy = sim_launch.node_kwargs(g.node("policy_node"), {"expo_policy"}, python="/py")
    assert (policy["package"], policy["executable"]) == ("expo_policy", "policy_node")
    assert policy["name"] == "policy_node"
    assert "arguments" not in policy
    bridge = sim_launch.node_kwargs(g.node("sim_bridge"), {"expo_policy"}, python="/py")
    assert "package" not in bridge
    assert (bridge["executable"], bridge["arguments"]) == ("/py", ["-m", "expo_sim.ros.bridge_node"])
    assert bridge["namespace"] == policy["namespace"] == "/robot1"


def test_node_kwargs_parameters_files_first_then_overrides(sim_launch) -> None:
    node = sim_graph(task="square", realtime=True).node("policy_node")
    kw = sim_launch.node_kwargs(node, set())
    assert kw["parameters"][:-1] == list(node.params_files)
    assert kw["parameters"][-1] == node.parameters
    assert kw["parameters"][-1]["lockstep"] is False and kw["parameters"][-1]["task"] == "square"
    assert "namespace" not in kw and "remappings" not in kw
    assert kw["additional_env"]["PYTHONUNBUFFERED"] == "1"
    assert kw["executable"] == sys.executable


def _has_launch() -> bool:
    # Not find_spec("launch"): colcon's symlink build of this package puts a launch/ folder on
    # sys.path, which imports as an empty namespace package where the real one is missing.
    try:
        from launch import LaunchDescription  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_launch(), reason="launch is installed here")
def test_launch_is_only_needed_to_build_the_description(sim_launch) -> None:
    with pytest.raises(ImportError):
        sim_launch.generate_launch_description()


def test_rviz_layout_is_installed_and_shows_the_graph_topics(sim_launch) -> None:
    import yaml

    path = sim_launch.rviz_config()
    layout = yaml.safe_load(open(path))
    manager = layout["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "world"  # the bridge's and markers' frame
    shown = {d["Class"].split("/")[-1]: d.get("Topic", {}).get("Value") for d in manager["Displays"]}
    assert shown["MarkerArray"] == "markers" and shown["Image"] == "image_raw"
    assert shown["Pose"] == "ee_pose" and shown["PoseArray"] == "object_poses"
    namespaces = next(d for d in manager["Displays"] if d["Class"].endswith("MarkerArray"))["Namespaces"]
    assert set(namespaces) == {"candidates", "sent", "status"}  # what expo_policy.markers draws


def test_learner_launch_arguments_add_the_learner(sim_launch, tmp_path) -> None:
    args = {"checkpoint": "/b.safetensors", "learner": "true", "learner_dir": str(tmp_path)}
    g = sim_launch.graph_from_launch_arguments({**args, "offline_dataset": "/d.hdf5"})
    assert g == sim_graph(
        checkpoint="/b.safetensors", learner=True, learner_dir=str(tmp_path), offline_dataset="/d.hdf5"
    )
    assert g.node("learner_node").parameters["offline_dataset"] == "/d.hdf5"
