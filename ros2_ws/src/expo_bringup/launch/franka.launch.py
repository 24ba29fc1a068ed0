"""Policy node + Franka adapter + episode manager on franka_ros2 (or its emulation), as a
LaunchDescription.

    ros2 launch expo_bringup franka.launch.py robot_ip:=172.16.0.2 checkpoint:=/runs/lift/ckpt.safetensors
    ros2 launch expo_bringup franka.launch.py robot_ip:=... checkpoint:=... learner:=true learner_dir:=/runs/x
    ros2 launch expo_bringup franka.launch.py robot_ip:=172.16.0.2 checkpoint:=... dry_run:=false
    ros2 launch expo_bringup franka.launch.py emulate:=true checkpoint:=...   # no robot, no franka_ros2

Our nodes come from :func:`expo_bringup.franka_graph.franka_graph`, the same data the pip-mode
runner starts (``expo-bringup franka``), and are mapped to ``launch_ros`` Nodes exactly as
``sim.launch.py`` maps the sim graph (its :func:`node_kwargs` is reused). Every one of our nodes
is required: when one exits, the launch shuts down.

Without ``emulate`` this also includes franka_ros2's bringup, as franka_ros2 v3 (Jazzy) names
it: ``franka_bringup/launch/example.launch.py`` with ``controller_names:=
cartesian_impedance_example_controller`` and a one-robot ``robot_config_file`` written from our
launch arguments (robot_type, robot_ip, load_gripper, use_fake_hardware, namespace), the
``franka.config.yaml`` layout. NOT VERIFIED: no franka_ros2 install was reachable where this
was written (pip-mode ROS 2 has no launch); the argument names follow the franka_ros2 sources
read then (``controller_names`` in v3.x; older releases read ``controller_name``, which is passed
as well), and docker/README.md's caveat on that controller's position target applies.

``dry_run`` (auto | true | false): auto = true on hardware (the adapter publishes its would-be
commands on ``dry_run/*`` only), false when emulating; commands reach the arm only with
``dry_run:=false``. ``use_fake_hardware:=true`` exercises franka_ros2's ros2_control mock, which
has no franka_robot_state_broadcaster: no ``current_pose``, so the adapter holds (plumbing only).

The mapping is pure code, unit-tested without ``launch`` (test/test_franka_launch_args.py); only
:func:`generate_launch_description` and the action builders import ``launch`` / ``launch_ros``.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from expo_bringup.franka_graph import CONTROLLER, franka_graph
from expo_bringup.graph import Graph

#: (name, default, description) of every launch argument.
LAUNCH_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("robot_ip", "", "robot (FCI) IP or hostname; required unless emulate or use_fake_hardware"),
    ("robot_type", "fr3", "fr3 | panda: franka_ros2's robot type and joint name prefix"),
    ("use_fake_hardware", "false", "franka_ros2's ros2_control mock (no state broadcaster: plumbing only)"),
    ("load_gripper", "true", "start franka_gripper (the policy needs the finger joints)"),
    ("task", "lift", "robomimic task the policy was trained on"),
    ("checkpoint", "", "policy checkpoint (.safetensors); '' = policy.yaml's value"),
    ("backend", "torch", "inference backend of the policy node"),
    ("namespace", "", "ROS namespace of our nodes and of franka_ros2 ('' = root)"),
    (
        "dry_run",
        "auto",
        "auto | true | false: the adapter's dry run (auto: true on hardware, false emulated)",
    ),
    ("emulate", "false", "true: sim bridge + Franka emulator instead of franka_ros2"),
    ("rviz", "false", "true: also start RViz with expo_bringup's layout (not required)"),
    ("learner", "false", "true: also start the learner here (online fine-tuning; needs checkpoint)"),
    ("learner_dir", "", "the learner's directory (bags, checkpoints, tensorboard); required with learner"),
    ("offline_dataset", "", "robomimic HDF5 for the learner's offline half ('' = none)"),
)
#: franka_ros2 (v3.x, Jazzy) bringup that starts the arm and spawns one example controller.
FRANKA_BRINGUP = ("franka_bringup", "launch", "example.launch.py")


@cache
def sim_launch() -> ModuleType:
    """``sim.launch.py`` beside this file (installed together), for its node mapping."""
    path = Path(__file__).with_name("sim.launch.py")
    spec = importlib.util.spec_from_file_location("expo_bringup_sim_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _values(values: Mapping[str, str]) -> dict[str, str]:
    known = [name for name, _, _ in LAUNCH_ARGUMENTS]
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown launch arguments {sorted(unknown)}; known: {known}")
    return {name: values.get(name, default) for name, default, _ in LAUNCH_ARGUMENTS}


def parse_dry_run(text: str) -> bool | None:
    """``auto`` -> None (franka_graph decides), else the bool; ValueError naming the argument."""
    if text.strip().lower() == "auto":
        return None
    return sim_launch().parse_bool("dry_run", text)


def graph_from_launch_arguments(values: Mapping[str, str]) -> Graph:
    """Launch argument texts (missing ones take their defaults) -> the hardware graph.

    Raises ValueError naming the argument: unknown names, bad booleans, a missing robot_ip on
    real hardware, and whatever :func:`franka_graph` rejects (robot_type, task, namespace, a
    learner without checkpoint or learner_dir).
    """
    v = _values(values)
    parse = sim_launch().parse_bool
    emulate = parse("emulate", v["emulate"])
    fake = parse("use_fake_hardware", v["use_fake_hardware"])
    parse("load_gripper", v["load_gripper"])
    parse("rviz", v["rviz"])
    if not emulate and not fake and not v["robot_ip"].strip():
        raise ValueError("launch argument 'robot_ip' is required on real hardware (or emulate:=true)")
    return franka_graph(
        task=v["task"],
        checkpoint=v["checkpoint"],
        backend=v["backend"],
        robot_type=v["robot_type"],
        namespace=v["namespace"],
        dry_run=parse_dry_run(v["dry_run"]),
        emulate=emulate,
        learner=parse("learner", v["learner"]),
        learner_dir=v["learner_dir"],
        offline_dataset=v["offline_dataset"],
    )


def franka_robot_config(values: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The one-robot ``robot_config_file`` (franka_bringup's ``franka.config.yaml`` layout:
    quoted booleans) that example.launch.py reads; franka_ros2's own RViz stays off."""
    v = _values(values)
    parse = sim_launch().parse_bool

    def text(name: str) -> str:
        return "true" if parse(name, v[name]) else "false"

    return {
        "ROBOT1": {
            "robot_type": v["robot_type"],
            "arm_prefix": "",
            "fake_sensor_commands": "false",
            "joint_state_rate": 30,
            "load_gripper": text("load_gripper"),
            "namespace": v["namespace"].strip("/"),
            "robot_ip": v["robot_ip"],
            "use_fake_hardware": text("use_fake_hardware"),
            "use_rviz": "false",
        }
    }


def franka_include_arguments(values: Mapping[str, str], robot_config_file: str) -> dict[str, str] | None:
    """Launch arguments of franka_bringup's example.launch.py; None when emulating (no include)."""
    v = _values(values)
    if sim_launch().parse_bool("emulate", v["emulate"]):
        return None
    return {
        "robot_config_file": robot_config_file,
        "controller_names": CONTROLLER,  # franka_ros2 v3.x
        "controller_name": CONTROLLER,  # older releases (unused by v3.x)
        "robot_ips": v["robot_ip"],
    }


def franka_bringup_action(arguments: Mapping[str, str]) -> Any:
    """IncludeLaunchDescription of franka_bringup's example.launch.py (needs franka_ros2)."""
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    package, *rest = FRANKA_BRINGUP
    source = PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(package), *rest]))
    return IncludeLaunchDescription(source, launch_arguments=list(arguments.items()))


def write_robot_config(config: Mapping[str, Any]) -> str:
    """Write the robot config YAML to a new temporary file; returns its path."""
    import yaml

    with tempfile.NamedTemporaryFile("w", prefix="expo_franka_", suffix=".config.yaml", delete=False) as f:
        yaml.safe_dump(dict(config), f, sort_keys=False)
    return f.name


def generate_launch_description() -> Any:
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    def actions(context: Any) -> list[Any]:
        values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in LAUNCH_ARGUMENTS}
        sim = sim_launch()
        out = sim.launch_actions(graph_from_launch_arguments(values))
        if franka_include_arguments(values, "") is not None:  # hardware: franka_ros2 comes along
            path = write_robot_config(franka_robot_config(values))
            out.append(franka_bringup_action(franka_include_arguments(values, path)))
        if sim.parse_bool("rviz", values["rviz"]):
            out.append(sim.rviz_action(values["namespace"]))
        return out

    declared = [DeclareLaunchArgument(n, default_value=d, description=t) for n, d, t in LAUNCH_ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=actions)])
