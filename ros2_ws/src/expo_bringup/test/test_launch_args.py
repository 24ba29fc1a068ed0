"""launch/sim.launch.py and expo_bringup.launch_graph without launch: launch arguments ->
graph, graph node -> launch_ros kwargs, params files, the default-policy result line."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from expo_bringup.graph import sim_graph
from expo_bringup.launch_graph import (
    NodeFailed,
    default_policy_actions,
    graph_with_params_file,
    node_kwargs,
    node_label,
    parse_default_policy,
    read_params_file,
    rviz_config,
)


def test_launch_arguments_are_the_documented_ones_with_sim_graph_defaults(sim_launch) -> None:
    names = [name for name, _, _ in sim_launch.LAUNCH_ARGUMENTS]
    assert names == [
        "task",
        "checkpoint",
        "algo",
        "backend",
        "realtime",
        "namespace",
        "rviz",
        "foxglove",
        "foxglove_port",
        "foxglove_host",
        "learner",
        "learner_dir",
        "offline_dataset",
        "intervene",
        "obs",
        "plan_mode",
        "params_file",
    ]
    assert sim_launch.graph_from_launch_arguments({}) == sim_graph()


def test_launch_argument_texts_map_onto_sim_graph(sim_launch) -> None:
    args = {"task": "can", "checkpoint": "/c/x.pt", "backend": "torch", "realtime": "True", "namespace": "r1"}
    g = sim_launch.graph_from_launch_arguments(args)
    assert g == sim_graph(task="can", checkpoint="/c/x.pt", backend="torch", realtime=True, namespace="r1")
    lockstep = sim_launch.graph_from_launch_arguments({"realtime": "0"})
    assert lockstep.node("sim_bridge").parameters["realtime"] is False
    assert sim_launch.graph_from_launch_arguments({"intervene": "true"}) == sim_graph(intervene=True)
    chunks = sim_launch.graph_from_launch_arguments({"realtime": "true", "plan_mode": "receding"})
    assert chunks.node("sim_bridge").parameters["plan_mode"] == "receding"


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"realtime": "maybe"}, "launch argument 'realtime'"),
        ({"rviz": "sometimes"}, "launch argument 'rviz'"),
        ({"intervene": "often"}, "launch argument 'intervene'"),
        ({"foxglove": "please"}, "launch argument 'foxglove'"),
        ({"foxglove_port": "http"}, "launch argument 'foxglove_port'"),
        ({"foxglove_port": "70000"}, "launch argument 'foxglove_port'"),
        ({"learner": "true", "checkpoint": "/b.safetensors"}, "learner_dir"),
        ({"params_file": "/no/such.yaml"}, "no such file"),
        ({"speed": "1"}, "unknown launch arguments ['speed']"),
        ({"task": "towel"}, "task 'towel' unknown"),
        ({"namespace": "bad-ns"}, "namespace"),
        ({"plan_mode": "chunky"}, "launch argument 'plan_mode'"),
        ({"algo": "expo-n5", "checkpoint": "/c.safetensors"}, "a checkpoint:= carries its own"),
    ],
)
def test_bad_launch_arguments_raise_naming_them(sim_launch, values: dict, needle: str) -> None:
    with pytest.raises(ValueError) as e:
        sim_launch.graph_from_launch_arguments(values)
    assert needle in str(e.value)


def test_node_kwargs_use_the_ament_package_when_installed_else_python_m() -> None:
    g = sim_graph(checkpoint="/c/x.safetensors", namespace="robot1")
    policy = node_kwargs(g.node("policy_node"), {"expo_policy"}, python="/py")
    assert (policy["package"], policy["executable"]) == ("expo_policy", "policy_node")
    assert policy["name"] == "policy_node"
    assert "arguments" not in policy
    bridge = node_kwargs(g.node("sim_bridge"), {"expo_policy"}, python="/py")
    assert "package" not in bridge
    assert (bridge["executable"], bridge["arguments"]) == ("/py", ["-m", "expo_sim.ros.bridge_node"])
    assert bridge["namespace"] == policy["namespace"] == "/robot1"
    # launch output names each process after its node (not python3-1)
    assert (policy["exec_name"], bridge["exec_name"]) == ("robot1/policy_node", "robot1/sim_bridge")
    assert node_label(sim_graph().node("sim_bridge")) == "sim_bridge"


def test_node_kwargs_parameter_files_first_then_the_graph_values_on_the_command_line() -> None:
    node = sim_graph(task="square", realtime=True).node("policy_node")
    kw = node_kwargs(node, set())
    args = kw["ros_arguments"]
    files = [args[i + 1] for i, a in enumerate(args) if a == "--params-file"]
    values = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    assert files == list(node.params_files)
    assert max(i for i, a in enumerate(args) if a == "--params-file") < args.index("-p")  # later wins in rcl
    assert 'task:="square"' in values and "lockstep:=false" in values
    # no `parameters` dict: launch_ros would write a /tmp/launch_params_* file and leave it there
    assert "parameters" not in kw
    assert "namespace" not in kw and "remappings" not in kw
    assert kw["additional_env"]["PYTHONUNBUFFERED"] == "1"
    assert kw["executable"] == sys.executable
    assert float(kw["sigterm_timeout"]) > 0 and float(kw["sigkill_timeout"]) > 0


def test_a_params_file_applies_last_per_node_name(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "sim_bridge:\n  ros__parameters:\n    num_episodes: 3\n    realtime:\n      substeps: 1\n"
        "/**:\n  ros__parameters:\n    use_sim_time: true\n"
        "/**/policy_node:\n  ros__parameters:\n    task: can\n"
    )
    assert read_params_file(path)["sim_bridge"] == {"num_episodes": 3, "realtime.substeps": 1}
    g = graph_with_params_file(sim_graph(realtime=True, namespace="r1"), path)
    assert g.node("sim_bridge").parameters["num_episodes"] == 3
    assert g.node("sim_bridge").parameters["realtime.substeps"] == 1
    assert g.node("policy_node").parameters["task"] == "can"  # wins over the graph's own value
    assert all(n.parameters["use_sim_time"] is True for n in g.nodes)
    path.write_text("learner_node:\n  ros__parameters:\n    warmup_transitions: 1\n")
    with pytest.raises(ValueError, match="'learner_node' names no node"):
        graph_with_params_file(sim_graph(), path)
    path.write_text("sim_bridge:\n  num_episodes: 3\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        read_params_file(path)


def test_sim_launch_applies_the_params_file_argument(sim_launch, tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("sim_bridge:\n  ros__parameters:\n    autostart: false\n")
    g = sim_launch.graph_from_launch_arguments({"params_file": str(path), "checkpoint": "/c.safetensors"})
    assert g.node("sim_bridge").parameters["autostart"] is False


def test_default_policy_process_is_asked_for_the_variant() -> None:
    pytest.importorskip("launch", reason="launch is not installed")
    from launch.actions import ExecuteProcess

    def command(**kwargs: str) -> list[str]:
        (prep,) = [
            a
            for a in default_policy_actions("lift", lambda c, d: [], **kwargs)
            if isinstance(a, ExecuteProcess)
        ]
        return ["".join(getattr(s, "text", "?") for s in part) for part in prep.cmd]

    assert "--algo" not in command()
    cmd = command(algo="expo-n5-rewarded-bc-beta05-min")
    assert cmd[cmd.index("--algo") + 1] == "expo-n5-rewarded-bc-beta05-min"
    assert cmd[1:3] == ["-m", "expo_sim.session.policy"]


def test_default_policy_result_is_the_last_json_line() -> None:
    out = 'pretraining...\n{"checkpoint": "/d/base.safetensors", "dataset": "/d/lift.hdf5"}\n'
    assert parse_default_policy(out) == ("/d/base.safetensors", "/d/lift.hdf5")
    with pytest.raises(ValueError, match="no result line"):
        parse_default_policy("Traceback ...\n")


def test_a_node_exiting_non_zero_fails_the_launch() -> None:
    pytest.importorskip("launch.actions", reason="needs launch")
    from expo_bringup.launch_graph import _on_node_exit

    on_exit = _on_node_exit("policy_node")
    with pytest.raises(NodeFailed, match="policy_node exited with code 1"):
        on_exit(SimpleNamespace(returncode=1), None)
    assert type(on_exit(SimpleNamespace(returncode=0), None)).__name__ == "Shutdown"


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


def test_rviz_layout_is_installed_and_shows_the_graph_topics() -> None:
    import yaml

    path = rviz_config()
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
