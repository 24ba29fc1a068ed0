"""Sim bridge + policy node (+ learner, + scripted intervener) as a LaunchDescription from the graph.

    ros2 launch expo_bringup sim.launch.py                         # lift, lockstep, make sim's policy
    ros2 launch expo_bringup sim.launch.py task:=can checkpoint:=/runs/can/ckpt.safetensors \\
        realtime:=true namespace:=robot1
    ros2 launch expo_bringup sim.launch.py learner:=true learner_dir:=/runs/online   # online fine-tuning
    ros2 launch expo_bringup sim.launch.py intervene:=true         # the scripted expert takes over
    ros2 launch expo_bringup sim.launch.py obs:=pixels             # cameras, no object poses
    ros2 launch expo_bringup sim.launch.py algo:=expo-n5-rewarded-bc-beta05-min  # an EXPO variant
    ros2 launch expo_bringup sim.launch.py foxglove:=true          # + Foxglove WebSocket on :8765
    ros2 launch expo_bringup sim.launch.py realtime:=true plan_mode:=receding  # action chunks
    ros2 launch expo_bringup sim.launch.py params_file:=my.yaml    # any node parameter, ROS layout

Without ``checkpoint`` the policy is the one ``make sim`` uses: the task's demonstrations (stack,
threading: made the MimicGen way, which needs MimicGen from ``make setup``) and the base pretrained
on them, cached under the checkout's ``data/`` (``$EXPO_DATA_DIR`` if set). A first run builds
them (lift: ~30 s of demos, ~3 min of pretraining on 2 quiet cores) in a ``default_policy``
process before any node starts; if that fails, nothing starts and the launch exits 1 saying to
pass ``checkpoint:=``. With ``learner:=true`` the learner then also gets those demonstrations
as its offline data (unless ``offline_dataset`` says otherwise).

The nodes, parameter files, overrides and namespaces come from
:func:`expo_bringup.graph.sim_graph`; :mod:`expo_bringup.launch_graph` turns them into launch
actions (process names, parameters, exit handling: a node exiting ends the launch, a non-zero
exit makes ``ros2 launch`` exit 1). ``params_file`` values are applied last, per node name.

The argument mapping is pure code (:func:`graph_from_launch_arguments`), unit-tested without
``launch``; only :func:`generate_launch_description` imports ``launch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from expo_bringup.graph import SIM_OBS_KINDS, Graph, sim_graph
from expo_bringup.launch_graph import (
    default_policy_actions,
    graph_with_params_file,
    launch_actions,
    parse_bool,
    rviz_action,
)
from expo_ros.action_plan import PLAN_MODES

#: (name, default, description) of every launch argument; the defaults are sim_graph's.
LAUNCH_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("task", "lift", "task: lift | can | square | stack | threading (stack, threading: MimicGen)"),
    ("checkpoint", "", "policy checkpoint (.safetensors); '' = make sim's (built on first use per task)"),
    (
        "algo",
        "expo",
        "the EXPO variant make sim's policy starts as (docs/learning.md, e.g. "
        "expo-n5-rewarded-bc-beta05-min); a checkpoint:= carries its own config",
    ),
    ("backend", "auto", "inference backend of the policy node (auto: the fastest that runs here)"),
    ("realtime", "false", "true: 20 Hz wall-clock control; false: lockstep sim time"),
    ("namespace", "", "ROS namespace of every node ('' = root)"),
    ("rviz", "false", "true: also start RViz with expo_bringup's expo_sim.rviz (not required)"),
    ("foxglove", "false", "true: also serve the graph to Foxglove / Lichtblick over a WebSocket"),
    ("foxglove_port", "8765", "the Foxglove WebSocket port (on 127.0.0.1 unless foxglove_host)"),
    ("foxglove_host", "127.0.0.1", "the Foxglove WebSocket address (0.0.0.0: every interface)"),
    ("learner", "false", "true: add the learner node (online fine-tuning from checkpoint)"),
    ("learner_dir", "", "the learner's bags/checkpoints directory (required with learner:=true)"),
    ("offline_dataset", "", "robomimic HDF5 for the learner's offline half ('' = the default's demos)"),
    (
        "intervene",
        "false",
        "true: the task's scripted expert takes over when the policy strays (lift|can|square)",
    ),
    (
        "obs",
        "state",
        "state | pixels: the bridge also publishes <camera>/image_raw and ee_pose_base and the policy "
        "acts from them (a pixel checkpoint; '' = make sim OBS=pixels' pixel base)",
    ),
    (
        "plan_mode",
        "off",
        "realtime: the bridge's use of the commands' plans (action chunks): off | receding | ensemble",
    ),
    ("params_file", "", "ROS 2 parameters YAML applied last (keys: node name, /ns/name, /**)"),
)


def _values(values: Mapping[str, str]) -> dict[str, str]:
    known = [name for name, _, _ in LAUNCH_ARGUMENTS]
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown launch arguments {sorted(unknown)}; known: {known}")
    return {name: values.get(name, default) for name, default, _ in LAUNCH_ARGUMENTS}


def check_arguments(values: Mapping[str, str]) -> dict[str, str]:
    """Every argument's text checked (ValueError naming the argument), defaults filled in."""
    v = _values(values)
    for name in ("rviz", "foxglove", "realtime", "learner", "intervene"):
        parse_bool(name, v[name])
    if not v["foxglove_port"].isdigit() or not 0 < int(v["foxglove_port"]) < 65536:
        raise ValueError(f"launch argument 'foxglove_port' must be a port number, got '{v['foxglove_port']}'")
    if v["obs"] not in SIM_OBS_KINDS:
        raise ValueError(f"launch argument 'obs' must be one of {list(SIM_OBS_KINDS)}, got '{v['obs']}'")
    if parse_bool("learner", v["learner"]) and not v["learner_dir"].strip():
        raise ValueError("launch argument 'learner_dir' is required with learner:=true")
    if v["algo"] != "expo" and v["checkpoint"]:
        raise ValueError(
            f"launch argument 'algo' ({v['algo']}) sets the config of make sim's policy; "
            "a checkpoint:= carries its own"
        )
    if v["plan_mode"] not in PLAN_MODES:
        raise ValueError(
            f"launch argument 'plan_mode' must be one of {list(PLAN_MODES)}, got '{v['plan_mode']}'"
        )
    return v


def graph_from_launch_arguments(values: Mapping[str, str]) -> Graph:
    """Launch argument texts (missing ones take their defaults) -> the sim graph."""
    v = check_arguments(values)
    graph = sim_graph(
        task=v["task"],
        checkpoint=v["checkpoint"],
        backend=v["backend"],
        realtime=parse_bool("realtime", v["realtime"]),
        namespace=v["namespace"],
        learner=parse_bool("learner", v["learner"]),
        learner_dir=v["learner_dir"],
        offline_dataset=v["offline_dataset"],
        intervene=parse_bool("intervene", v["intervene"]),
        obs=v["obs"],
    )
    if v["plan_mode"] != "off":
        graph = graph.with_overrides(sim_bridge={"plan_mode": v["plan_mode"]})
    return graph_with_params_file(graph, v["params_file"]) if v["params_file"] else graph


def extra_actions(v: Mapping[str, str]) -> list[Any]:
    """RViz and the Foxglove bridge, when asked for (neither is required)."""
    out = []
    if parse_bool("rviz", v["rviz"]):
        out.append(rviz_action(v["namespace"]))
    if parse_bool("foxglove", v["foxglove"]):
        from expo_bringup.foxglove_bridge import foxglove_action

        out.append(foxglove_action(v["namespace"], v["foxglove_host"], int(v["foxglove_port"])))
    return out


def generate_launch_description() -> Any:
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    def actions(context: Any) -> list[Any]:
        v = check_arguments(
            {name: LaunchConfiguration(name).perform(context) for name, _, _ in LAUNCH_ARGUMENTS}
        )

        def start(checkpoint: str, dataset: str) -> list[Any]:
            args = {**v, "checkpoint": checkpoint}
            if parse_bool("learner", v["learner"]) and not v["offline_dataset"]:
                args["offline_dataset"] = dataset
            return [*launch_actions(graph_from_launch_arguments(args)), *extra_actions(v)]

        if v["checkpoint"]:
            return start(v["checkpoint"], "")
        graph_from_launch_arguments({**v, "checkpoint": "default"})  # bad arguments fail here, first
        return default_policy_actions(v["task"], start, v["obs"], v["algo"])

    declared = [DeclareLaunchArgument(n, default_value=d, description=t) for n, d, t in LAUNCH_ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=actions)])
