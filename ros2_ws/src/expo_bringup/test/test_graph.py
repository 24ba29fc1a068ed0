"""Node graph as data: sim graph contents, ros-args rendering, validation, config files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from expo_bringup.graph import Graph, NodeSpec, default_config_dir, sim_graph, to_ros_args
from expo_policy.safety import SafetyLimits


def arg_pairs(args: list[str]) -> list[tuple[str, str]]:
    """['--ros-args', '-r', 'x', '-p', 'y'] -> [('-r', 'x'), ('-p', 'y')]."""
    assert args[0] == "--ros-args"
    rest = args[1:]
    assert len(rest) % 2 == 0
    return list(zip(rest[::2], rest[1::2], strict=True))


def test_sim_graph_nodes_modules_and_parameters() -> None:
    g = sim_graph(task="can", checkpoint="/ckpt/can", backend="torch", realtime=True, namespace="robot1")
    assert [n.name for n in g.nodes] == ["sim_bridge", "policy_node"]
    bridge, policy = g.node("sim_bridge"), g.node("policy_node")
    assert bridge.module == "expo_sim.ros.bridge_node" and bridge.package == "expo_sim"
    assert policy.module == "expo_policy.policy_node" and policy.package == "expo_policy"
    assert bridge.namespace == policy.namespace == "/robot1"
    assert bridge.parameters == {"task": "can", "realtime": True}
    assert policy.parameters["checkpoint"] == "/ckpt/can"
    assert policy.parameters["lockstep"] is False and policy.parameters["use_sim_time"] is True
    assert Path(bridge.params_files[0]).name == "sim_bridge.yaml"
    assert Path(policy.params_files[0]).name == "policy.yaml"
    assert all(Path(f).is_file() and Path(f).is_absolute() for n in g.nodes for f in n.params_files)


def test_empty_checkpoint_leaves_the_yaml_value_alone() -> None:
    policy = sim_graph().node("policy_node")
    assert "checkpoint" not in policy.parameters
    assert policy.parameters["lockstep"] is True and policy.namespace == ""


def test_to_ros_args_order_and_formatting() -> None:
    node = NodeSpec(
        name="policy_node",
        package="expo_policy",
        executable="policy_node",
        module="expo_policy.policy_node",
        namespace="/a/b/",
        parameters={"task": "lift", "rate": 20.0, "n": 8, "on": True, "empty": "", "v": [0.5, 2.0]},
        remappings=(("joint_states", "/franka/joint_states"),),
        params_files=("/cfg/policy.yaml",),
    )
    pairs = arg_pairs(to_ros_args(node))
    assert pairs[:4] == [
        ("-r", "__node:=policy_node"),
        ("-r", "__ns:=/a/b"),
        ("--params-file", "/cfg/policy.yaml"),
        ("-p", 'task:="lift"'),  # strings quoted: "true" or "1.0" must stay strings
    ]
    params = {v.split(":=")[0]: v.split(":=", 1)[1] for k, v in pairs if k == "-p"}
    assert params["rate"] == "20.0" and params["n"] == "8" and params["on"] == "true"
    assert params["empty"] == '""' and json.loads(params["v"]) == [0.5, 2.0]
    assert pairs[-1] == ("-r", "joint_states:=/franka/joint_states")


def test_root_namespace_adds_no_ns_remap() -> None:
    args = to_ros_args(sim_graph().node("sim_bridge"))
    assert not any(a.startswith("__ns:=") for a in args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "bad-name"}, "NodeSpec.name"),
        ({"module": "expo sim"}, "NodeSpec.module"),
        ({"namespace": "/ok/9bad"}, "namespace"),
        ({"parameters": {"x": None}}, "parameter 'x'"),
        ({"parameters": {"x": [1, "a"]}}, "parameter 'x'"),
        ({"parameters": {"x": []}}, "parameter 'x'"),
        ({"remappings": (("a", "b c"),)}, "remapping"),
        ({"env": {"A=B": "1"}}, "env entry"),
    ],
)
def test_node_spec_validation(kwargs: dict, match: str) -> None:
    base = {"name": "n", "package": "p", "executable": "e", "module": "m.n"}
    with pytest.raises(ValueError, match=match):
        NodeSpec(**{**base, **kwargs})


def test_graph_validation_and_immutability() -> None:
    n = NodeSpec("n", "p", "e", "m")
    with pytest.raises(ValueError, match="duplicate"):
        Graph((n, n))
    with pytest.raises(ValueError, match="at least one"):
        Graph(())
    Graph((n, NodeSpec("n", "p", "e", "m", namespace="other")))  # same name, other namespace
    params = {"a": 1}
    spec = NodeSpec("n", "p", "e", "m", parameters=params)
    params["a"] = 2
    assert spec.parameters == {"a": 1}
    with pytest.raises(KeyError, match="no node 'x'"):
        sim_graph().node("x")


def test_sim_graph_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task 'pour'"):
        sim_graph(task="pour")
    with pytest.raises(ValueError, match="backend"):
        sim_graph(backend="torch; rm -rf /")
    g = sim_graph(config_dir=tmp_path)
    assert g.node("policy_node").params_files == (str(tmp_path.resolve() / "policy.yaml"),)


def test_config_files_have_ros_parameters_for_every_node() -> None:
    yaml = pytest.importorskip("yaml")
    for name, keys in (
        ("policy.yaml", {"task", "checkpoint", "backend", "lockstep", "safety"}),
        ("sim_bridge.yaml", {"task", "realtime", "control_rate_hz", "horizon"}),
    ):
        data = yaml.safe_load((default_config_dir() / name).read_text())
        params = data["/**"]["ros__parameters"]
        assert keys <= set(params), f"{name} lacks {keys - set(params)}"
    safety = yaml.safe_load((default_config_dir() / "policy.yaml").read_text())["/**"]["ros__parameters"]
    SafetyLimits(**safety["safety"])  # the shipped limits validate


def test_with_overrides_adds_parameters_and_clock_remap_per_node() -> None:
    graph = sim_graph(task="lift", checkpoint="/tmp/x.safetensors")
    out = graph.with_overrides("/ns1/clock", sim_bridge={"num_episodes": 3, "task": "can"})
    bridge, policy = out.node("sim_bridge"), out.node("policy_node")
    assert bridge.parameters["num_episodes"] == 3 and bridge.parameters["task"] == "can"
    assert "num_episodes" not in policy.parameters
    assert ("/clock", "/ns1/clock") in bridge.remappings and ("/clock", "/ns1/clock") in policy.remappings
    assert graph.node("sim_bridge").parameters["task"] == "lift"  # the original is unchanged
    assert graph.with_overrides().nodes == graph.nodes  # nothing asked, nothing changed
    with pytest.raises(KeyError, match="no node 'learner'"):
        graph.with_overrides(learner={"x": 1})


def test_sim_graph_with_learner_adds_it_in_the_same_namespace(tmp_path: Path) -> None:
    g = sim_graph(
        checkpoint="/b/base.safetensors",
        namespace="r1",
        learner=True,
        learner_dir=str(tmp_path / "learn"),
        offline_dataset="/d/lift.hdf5",
    )
    assert [n.name for n in g.nodes] == ["sim_bridge", "policy_node", "learner_node"]
    node = g.node("learner_node")
    assert node.namespace == "/r1" and node.module == "expo_learner.start"
    p = node.parameters
    assert p["checkpoint"] == "/b/base.safetensors" and p["offline_dataset"] == "/d/lift.hdf5"
    assert p["bag_dir"] == str((tmp_path / "learn" / "bags").resolve())
    assert node.params_files[0].endswith("learner.yaml") and Path(node.params_files[0]).is_file()
    # lockstep: the bridge paces itself on the learner's backlog; realtime cannot wait
    assert g.node("sim_bridge").parameters["learner_pacing_backlog"] > 0 and p["stats_period_s"] < 1.0
    rt = sim_graph(checkpoint="/b/base.safetensors", realtime=True, learner=True, learner_dir=str(tmp_path))
    assert "learner_pacing_backlog" not in rt.node("sim_bridge").parameters
    # both modes: episode 0 waits for the learner's first report; without a learner, no wait
    assert g.node("sim_bridge").parameters["wait_for_learner"] is True
    assert rt.node("sim_bridge").parameters["wait_for_learner"] is True
    assert "wait_for_learner" not in sim_graph().node("sim_bridge").parameters
    with pytest.raises(ValueError, match="learner_dir"):
        sim_graph(checkpoint="/b/base.safetensors", learner=True)
    assert len(sim_graph().nodes) == 2  # no learner unless asked


def test_adapted_adds_parameters_and_remappings_without_touching_the_original() -> None:
    node = sim_graph().node("policy_node")
    out = node.adapted({"lockstep": False, "extra": 1}, (("action", "/a"),))
    assert out.parameters["lockstep"] is False and out.parameters["extra"] == 1
    assert out.remappings == (*node.remappings, ("action", "/a"))
    assert node.parameters["lockstep"] is True and "extra" not in node.parameters
    assert node.adapted() == node
