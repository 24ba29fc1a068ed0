"""Policy node + Franka adapter + episode manager on franka_ros2 (or its emulation), as a
LaunchDescription.

    ros2 launch expo_bringup franka.launch.py robot_ip:=172.16.0.2 checkpoint:=/runs/lift/ckpt.safetensors
    ros2 launch expo_bringup franka.launch.py robot_ip:=... checkpoint:=... learner:=true learner_dir:=/runs/x
    ros2 launch expo_bringup franka.launch.py robot_ip:=172.16.0.2 checkpoint:=... dry_run:=false
    ros2 launch expo_bringup franka.launch.py emulate:=true checkpoint:=...   # no robot, no franka_ros2
    ros2 launch expo_bringup franka.launch.py checkpoint:=... franka_bringup:=false
        # our nodes only, next to a franka_ros2 already running (same ROS_DOMAIN_ID, namespace)
    ros2 launch expo_bringup franka.launch.py emulate:=true obs:=pixels   # cameras, no object poses
    ros2 launch expo_bringup franka.launch.py robot_ip:=... checkpoint:=... teleop:=spacemouse
        # the teleop node and the policy arbitrating (docs/interventions.md); spacenav_node apart
    ros2 launch expo_bringup franka.launch.py robot_ip:=... checkpoint:=pixels.safetensors \
        agentview_topic:=/camera/color/image_raw robot0_eye_in_hand_topic:=/wrist/color/image_raw

Our nodes come from :func:`expo_bringup.franka_graph.franka_graph` and are mapped to
``launch_ros`` Nodes exactly as ``sim.launch.py`` maps the sim graph
(:mod:`expo_bringup.launch_graph`). Every one of our nodes is required: when one exits, the
launch shuts down, with exit code 1 if it failed. ``emulate:=true`` without ``checkpoint`` runs
``make sim``'s lift policy, built on first use (see sim.launch.py).

Startup failures leave nothing behind: everything that can fail (arguments, franka_bringup's
package, the robot config) is checked before any process starts, franka_ros2's include comes
before our nodes, and the robot config written for it is deleted when the launch ends.

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

A pixel checkpoint (cameras + proprioception, docs/pixels.md) needs no object poses: name each
camera's sensor_msgs/Image topic with ``<camera>_topic`` (e.g. a ``realsense2_camera`` node's
``/camera/color/image_raw``, rgb8 or bgr8 at the checkpoint's size); '' keeps the policy's default
``<camera>/image_raw`` in the namespace. A state checkpoint ignores them.

The mapping is pure code, unit-tested without ``launch`` (test/test_franka_launch_args.py); only
:func:`generate_launch_description` and the action builders import ``launch`` / ``launch_ros``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from expo_bringup.franka_graph import CONTROLLER, franka_graph
from expo_bringup.graph import Graph
from expo_bringup.launch_graph import (
    default_policy_actions,
    graph_with_params_file,
    launch_actions,
    parse_bool,
    rviz_action,
)
from expo_core.tasks import SUPPORTED_CAMERAS
from expo_ros.action_plan import PLAN_MODES
from expo_ros.params import as_topic

#: (name, default, description) of every launch argument.
LAUNCH_ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    (
        "robot_ip",
        "",
        "robot (FCI) IP or hostname for franka_ros2's bringup; required unless emulate, "
        "use_fake_hardware or franka_bringup:=false",
    ),
    ("robot_type", "fr3", "fr3 | panda: franka_ros2's robot type and joint name prefix"),
    ("use_fake_hardware", "false", "franka_ros2's ros2_control mock (no state broadcaster: plumbing only)"),
    ("load_gripper", "true", "start franka_gripper (the policy needs the finger joints)"),
    ("task", "lift", "robomimic task the policy was trained on"),
    ("checkpoint", "", "policy checkpoint (.safetensors); '' = policy.yaml's value"),
    ("backend", "auto", "inference backend of the policy node (auto: the fastest that runs here)"),
    ("namespace", "", "ROS namespace of our nodes and of franka_ros2 ('' = root)"),
    (
        "dry_run",
        "auto",
        "auto | true | false: the adapter's dry run (auto: true on hardware, false emulated)",
    ),
    ("emulate", "false", "true: sim bridge + Franka emulator instead of franka_ros2"),
    (
        "franka_bringup",
        "true",
        "hardware: include franka_ros2's bringup; false: it already runs (same domain/ns)",
    ),
    ("rviz", "false", "true: also start RViz with expo_bringup's layout (not required)"),
    ("learner", "false", "true: also start the learner here (online fine-tuning; needs checkpoint)"),
    ("learner_dir", "", "the learner's directory (bags, checkpoints, tensorboard); required with learner"),
    ("offline_dataset", "", "robomimic HDF5 for the learner's offline half ('' = none)"),
    (
        "teleop",
        "",
        "spacemouse | gamepad | keyboard (emulate only): also the teleop node, the policy node "
        "arbitrating (interventions); its device driver runs apart ('' = none)",
    ),
    ("params_file", "", "ROS 2 parameters YAML applied last (keys: node name, /ns/name, /**)"),
    (
        "plan_mode",
        "off",
        "the Franka adapter's use of the commands' plans (action chunks): off | receding | ensemble",
    ),
    (
        "obs",
        "state",
        "state | pixels: emulate: the bridge renders the cameras (and ee_pose_base) for a pixel "
        "checkpoint ('' checkpoint = make sim OBS=pixels' base); hardware: the checkpoint decides",
    ),
    *(
        (
            f"{cam}_topic",
            "",
            f"pixel policies: sensor_msgs/Image topic of camera {cam} ('' = {cam}/image_raw, relative)",
        )
        for cam in SUPPORTED_CAMERAS
    ),
)
#: franka_ros2 (v3.x, Jazzy) bringup that starts the arm and spawns one example controller.
FRANKA_BRINGUP = ("franka_bringup", "launch", "example.launch.py")


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
    return parse_bool("dry_run", text)


def graph_from_launch_arguments(values: Mapping[str, str]) -> Graph:
    """Launch argument texts (missing ones take their defaults) -> the hardware graph.

    Raises ValueError naming the argument: unknown names, bad booleans, a missing robot_ip when
    franka_ros2 is brought up on real hardware, and whatever :func:`franka_graph` rejects
    (robot_type, task, namespace, a learner without checkpoint or learner_dir).
    """
    v = _values(values)
    parse = parse_bool
    emulate = parse("emulate", v["emulate"])
    fake = parse("use_fake_hardware", v["use_fake_hardware"])
    parse("load_gripper", v["load_gripper"])
    parse("rviz", v["rviz"])
    bringup = parse("franka_bringup", v["franka_bringup"])
    if bringup and not emulate and not fake and not v["robot_ip"].strip():  # only the include needs it
        raise ValueError(
            "launch argument 'robot_ip' is required to bring up real hardware "
            "(or emulate:=true, or franka_bringup:=false next to a running franka_ros2)"
        )
    graph = franka_graph(
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
        camera_topics=camera_topics(v),
        obs=v["obs"],
        teleop=v["teleop"].strip(),
    )
    if v["plan_mode"] not in PLAN_MODES:
        raise ValueError(
            f"launch argument 'plan_mode' must be one of {list(PLAN_MODES)}, got '{v['plan_mode']}'"
        )
    if v["plan_mode"] != "off":
        graph = graph.with_overrides(franka_adapter={"executor.plan_mode": v["plan_mode"]})
    return graph_with_params_file(graph, v["params_file"]) if v["params_file"] else graph


def camera_topics(v: Mapping[str, str]) -> dict[str, str]:
    """The ``<camera>_topic`` arguments that are set -> {camera: topic}; ValueError naming a bad one."""
    out = {}
    for cam in SUPPORTED_CAMERAS:
        topic = v[f"{cam}_topic"].strip()
        if topic:
            try:
                out[cam] = as_topic(f"{cam}_topic", topic)
            except ValueError as e:
                raise ValueError(str(e).replace("parameter", "launch argument", 1)) from e
    return out


def franka_robot_config(values: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The one-robot ``robot_config_file`` (franka_bringup's ``franka.config.yaml`` layout:
    quoted booleans) that example.launch.py reads; franka_ros2's own RViz stays off."""
    v = _values(values)
    parse = parse_bool

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
    """Launch arguments of franka_bringup's example.launch.py; None when emulating or with
    ``franka_bringup:=false`` (no include: franka_ros2 already runs)."""
    v = _values(values)
    if parse_bool("emulate", v["emulate"]) or not parse_bool("franka_bringup", v["franka_bringup"]):
        return None
    return {
        "robot_config_file": robot_config_file,
        "controller_names": CONTROLLER,  # franka_ros2 v3.x
        "controller_name": CONTROLLER,  # older releases (unused by v3.x)
        "robot_ips": v["robot_ip"],
    }


def franka_bringup_launch_file() -> str:
    """franka_bringup's example.launch.py; ValueError saying what is missing otherwise (checked
    before any process starts: a failed include must not leave our nodes running)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    package, *rest = FRANKA_BRINGUP
    try:
        share = get_package_share_directory(package)
    except PackageNotFoundError as e:
        raise ValueError(
            f"franka_ros2's '{package}' is not installed here (source a franka_ros2 workspace), "
            "or run against the emulator: emulate:=true"
        ) from e
    path = os.path.join(share, *rest)
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found: this franka_ros2 has no {'/'.join(rest)}")
    return path


def franka_bringup_action(path: str, arguments: Mapping[str, str]) -> Any:
    """IncludeLaunchDescription of franka_bringup's example.launch.py at ``path``."""
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(path), launch_arguments=list(arguments.items())
    )


def write_robot_config(config: Mapping[str, Any]) -> str:
    """Write the robot config YAML to a new temporary file; returns its path."""
    import yaml

    with tempfile.NamedTemporaryFile("w", prefix="expo_franka_", suffix=".config.yaml", delete=False) as f:
        yaml.safe_dump(dict(config), f, sort_keys=False)
    return f.name


def remove_on_shutdown(path: str) -> Any:
    """An OnShutdown handler deleting ``path`` (the robot config) when the launch ends."""
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnShutdown

    def remove(event: Any, context: Any) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    return RegisterEventHandler(OnShutdown(on_shutdown=remove))


def generate_launch_description() -> Any:
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    def actions(context: Any) -> list[Any]:
        values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in LAUNCH_ARGUMENTS}
        emulate = parse_bool("emulate", _values(values)["emulate"])

        def start(checkpoint: str, dataset: str) -> list[Any]:
            args = {**values, "checkpoint": checkpoint}
            if parse_bool("learner", values.get("learner", "false")) and not values.get("offline_dataset"):
                args["offline_dataset"] = dataset
            graph = graph_from_launch_arguments(args)  # every argument checked before a process starts
            out: list[Any] = []
            if franka_include_arguments(values, "") is not None:  # hardware: franka_ros2 first
                launch_file = franka_bringup_launch_file()
                path = write_robot_config(franka_robot_config(values))
                out += [
                    remove_on_shutdown(path),
                    franka_bringup_action(launch_file, franka_include_arguments(values, path)),
                ]
            out += launch_actions(graph)
            if parse_bool("rviz", values.get("rviz", "false")):
                out.append(rviz_action(values.get("namespace", "")))
            return out

        if emulate and not values.get("checkpoint"):
            graph_from_launch_arguments({**values, "checkpoint": "default"})  # bad arguments fail first
            return default_policy_actions(values.get("task", "lift"), start, values.get("obs", "state"))
        return start(values.get("checkpoint", ""), "")

    declared = [DeclareLaunchArgument(n, default_value=d, description=t) for n, d, t in LAUNCH_ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=actions)])
