"""Sim bridge + policy node, as a LaunchDescription built from the graph data.

    ros2 launch expo_bringup sim.launch.py                         # lift, lockstep, torch
    ros2 launch expo_bringup sim.launch.py task:=can checkpoint:=/runs/can/ckpt.safetensors \\
        realtime:=true namespace:=robot1
    ros2 launch expo_bringup sim.launch.py checkpoint:=/data/base.safetensors learner:=true \\
        learner_dir:=/runs/online offline_dataset:=/data/lift_mixed.hdf5   # online fine-tuning

The nodes, parameter files, overrides and namespaces come from
:func:`expo_bringup.graph.sim_graph`, the same data the pip-mode runner (``expo-bringup sim``)
starts, so both ways of starting the stack cannot drift apart. As with the runner, every node is
required: when one exits (e.g. the bridge after ``num_episodes``), the launch shuts down.

The mapping is pure code (:func:`graph_from_launch_arguments`, :func:`node_kwargs`), importable
and unit-tested without ``launch``; only :func:`launch_actions` and
:func:`generate_launch_description` import ``launch`` / ``launch_ros``, which a full ROS 2
install (the Docker image) provides and pip mode does not.
"""

from __future__ import annotations

import sys
from collections.abc import Container, Mapping
from typing import Any

from expo_bringup.graph import Graph, NodeSpec, sim_graph

#: (name, default, description) of every launch argument; the defaults are sim_graph's.
LAUNCH_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("task", "lift", "robomimic task: lift | can | square"),
    ("checkpoint", "", "policy checkpoint (.safetensors); '' = policy.yaml's value"),
    ("backend", "torch", "inference backend of the policy node"),
    ("realtime", "false", "true: 20 Hz wall-clock control; false: lockstep sim time"),
    ("namespace", "", "ROS namespace of every node ('' = root)"),
    ("rviz", "false", "true: also start RViz with expo_bringup's expo_sim.rviz (not required)"),
    ("learner", "false", "true: add the learner node (online fine-tuning from checkpoint)"),
    ("learner_dir", "", "the learner's bags/checkpoints directory (required with learner:=true)"),
    ("offline_dataset", "", "robomimic HDF5 for the learner's offline half of each batch"),
)
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_bool(name: str, text: str) -> bool:
    """A launch argument's text as a bool; ValueError naming the argument otherwise."""
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"launch argument '{name}' must be true or false, got '{text}'")


def graph_from_launch_arguments(values: Mapping[str, str]) -> Graph:
    """Launch argument texts (missing ones take their defaults) -> the sim graph."""
    unknown = set(values) - {name for name, _, _ in LAUNCH_ARGUMENTS}
    if unknown:
        known = [name for name, _, _ in LAUNCH_ARGUMENTS]
        raise ValueError(f"unknown launch arguments {sorted(unknown)}; known: {known}")
    v = {name: values.get(name, default) for name, default, _ in LAUNCH_ARGUMENTS}
    parse_bool("rviz", v["rviz"])  # checked here, used by generate_launch_description
    return sim_graph(
        task=v["task"],
        checkpoint=v["checkpoint"],
        backend=v["backend"],
        realtime=parse_bool("realtime", v["realtime"]),
        namespace=v["namespace"],
        learner=parse_bool("learner", v["learner"]),
        learner_dir=v["learner_dir"],
        offline_dataset=v["offline_dataset"],
    )


def node_kwargs(
    node: NodeSpec, ament_packages: Container[str], python: str = sys.executable
) -> dict[str, Any]:
    """``launch_ros.actions.Node`` keyword arguments for one node of the graph.

    A node whose package is in the ament index runs as ``package``/``executable`` (e.g.
    ``expo_policy``/``policy_node``); otherwise as ``python -m module``, as the runner does
    (``expo_sim`` is a pip package, not an ament one). Parameter files come first, then the
    graph's overrides, so the overrides win as with ``--params-file ... -p ...``.
    """
    kw: dict[str, Any] = {"name": node.name, "output": "screen"}
    if node.package in ament_packages:
        kw.update(package=node.package, executable=node.executable)
    else:
        kw.update(executable=python, arguments=["-m", node.module])
    if node.namespace:
        kw["namespace"] = node.namespace
    params: list[Any] = list(node.params_files)
    if node.parameters:
        params.append(dict(node.parameters))
    if params:
        kw["parameters"] = params
    if node.remappings:
        kw["remappings"] = [tuple(r) for r in node.remappings]
    # Unbuffered output, as the runner: log lines appear as they happen.
    kw["additional_env"] = {**node.env, "PYTHONUNBUFFERED": "1"}
    return kw


def launch_actions(graph: Graph) -> list[Any]:
    """One required ``launch_ros`` Node per graph node (needs launch, launch_ros, ament_index)."""
    from ament_index_python.packages import get_packages_with_prefixes
    from launch.actions import Shutdown
    from launch_ros.actions import Node

    installed = set(get_packages_with_prefixes())
    return [
        Node(**node_kwargs(n, installed), on_exit=Shutdown(reason=f"{n.name} exited")) for n in graph.nodes
    ]


def rviz_config() -> str:
    """The installed RViz layout (``expo_bringup/config/expo_sim.rviz``)."""
    from expo_bringup.graph import default_config_dir

    return str(default_config_dir() / "expo_sim.rviz")


def rviz_action(namespace: str) -> Any:
    """RViz in the graph's namespace; not required: closing its window leaves the stack running."""
    from launch_ros.actions import Node

    ns = namespace or None
    return Node(package="rviz2", executable="rviz2", namespace=ns, arguments=["-d", rviz_config()])


def generate_launch_description() -> Any:
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    def nodes(context: Any) -> list[Any]:
        values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in LAUNCH_ARGUMENTS}
        actions = launch_actions(graph_from_launch_arguments(values))
        if parse_bool("rviz", values["rviz"]):
            actions.append(rviz_action(values["namespace"]))
        return actions

    declared = [DeclareLaunchArgument(n, default_value=d, description=t) for n, d, t in LAUNCH_ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
