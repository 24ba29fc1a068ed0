"""launch/franka.launch.py without launch: arguments -> graph, franka_ros2 include, node kwargs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from expo_bringup.franka_graph import franka_graph

FRANKA_LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "franka.launch.py"
HW = {"robot_ip": "172.16.0.2"}


@pytest.fixture(scope="module")
def franka_launch() -> ModuleType:
    """``launch/franka.launch.py`` as a module (its name has dots, so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location("expo_bringup_franka_launch", FRANKA_LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_arguments_are_the_documented_ones(franka_launch) -> None:
    names = [name for name, _, _ in franka_launch.LAUNCH_ARGUMENTS]
    assert names == [
        "robot_ip",
        "robot_type",
        "use_fake_hardware",
        "load_gripper",
        "task",
        "checkpoint",
        "backend",
        "namespace",
        "dry_run",
        "emulate",
        "franka_bringup",
        "rviz",
        "learner",
        "learner_dir",
        "offline_dataset",
        "teleop",
        "params_file",
        "plan_mode",
        "obs",
        "agentview_topic",
        "robot0_eye_in_hand_topic",
    ]
    defaults = {name: default for name, default, _ in franka_launch.LAUNCH_ARGUMENTS}
    assert (
        defaults["dry_run"] == "auto" and defaults["emulate"] == "false" and defaults["robot_type"] == "fr3"
    )


def test_hardware_defaults_map_onto_franka_graph_as_a_dry_run(franka_launch) -> None:
    g = franka_launch.graph_from_launch_arguments(HW)
    assert g == franka_graph()
    assert [n.name for n in g.nodes] == ["policy_node", "franka_adapter", "episode_manager"]
    assert g.node("franka_adapter").parameters["dry_run"] is True  # auto on hardware: dry run
    sending = franka_launch.graph_from_launch_arguments({**HW, "dry_run": "false"})
    assert sending.node("franka_adapter").parameters["dry_run"] is False


def test_learner_argument_adds_the_learner(franka_launch) -> None:
    args = {**HW, "checkpoint": "/c/x.safetensors", "learner": "true", "learner_dir": "/runs/arm"}
    g = franka_launch.graph_from_launch_arguments(args)
    assert g == franka_graph(checkpoint="/c/x.safetensors", learner=True, learner_dir="/runs/arm")
    assert g.nodes[-1].name == "learner_node"
    with pytest.raises(ValueError, match="launch argument 'learner'"):
        franka_launch.graph_from_launch_arguments({**args, "learner": "yes please"})
    with pytest.raises(ValueError, match="learner_dir"):
        franka_launch.graph_from_launch_arguments({**args, "learner_dir": ""})


def test_emulation_maps_onto_the_emulated_graph(franka_launch) -> None:
    args = {"emulate": "true", "checkpoint": "/c/x.safetensors", "namespace": "r1", "robot_type": "panda"}
    g = franka_launch.graph_from_launch_arguments(args)
    assert g == franka_graph(checkpoint="/c/x.safetensors", namespace="r1", robot_type="panda", emulate=True)
    assert [n.name for n in g.nodes] == ["policy_node", "franka_adapter", "sim_bridge", "franka_emulator"]
    assert g.node("franka_adapter").parameters["dry_run"] is False  # auto when emulating: commands go
    dry = franka_launch.graph_from_launch_arguments({**args, "dry_run": "True"})
    assert dry.node("franka_adapter").parameters["dry_run"] is True
    chunks = franka_launch.graph_from_launch_arguments({**args, "plan_mode": "ensemble"})
    assert chunks.node("franka_adapter").parameters["executor.plan_mode"] == "ensemble"


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({}, "launch argument 'robot_ip' is required"),
        ({**HW, "emulate": "maybe"}, "launch argument 'emulate'"),
        ({**HW, "dry_run": "perhaps"}, "launch argument 'dry_run'"),
        ({**HW, "use_fake_hardware": "2"}, "launch argument 'use_fake_hardware'"),
        ({**HW, "load_gripper": "y"}, "launch argument 'load_gripper'"),
        ({**HW, "rviz": "x"}, "launch argument 'rviz'"),
        ({**HW, "franka_bringup": "maybe"}, "launch argument 'franka_bringup'"),
        ({**HW, "robot_type": "ur5"}, "robot_type 'ur5' unknown"),
        ({**HW, "task": "towel"}, "task 'towel' unknown"),
        ({**HW, "speed": "1"}, "unknown launch arguments ['speed']"),
        ({**HW, "plan_mode": "later"}, "launch argument 'plan_mode'"),
        ({**HW, "teleop": "wiimote"}, "teleop 'wiimote' unknown"),
    ],
)
def test_bad_launch_arguments_raise_naming_them(franka_launch, values: dict, needle: str) -> None:
    with pytest.raises(ValueError) as e:
        franka_launch.graph_from_launch_arguments(values)
    assert needle in str(e.value)


def test_fake_hardware_needs_no_robot_ip(franka_launch) -> None:
    g = franka_launch.graph_from_launch_arguments({"use_fake_hardware": "true"})
    assert g == franka_graph()


def test_teleop_argument_reaches_the_graph(franka_launch) -> None:
    g = franka_launch.graph_from_launch_arguments({**HW, "teleop": "gamepad"})
    assert g == franka_graph(teleop="gamepad")
    assert franka_launch.graph_from_launch_arguments(HW) == franka_graph()


def test_our_nodes_next_to_a_running_franka_ros2_need_no_robot_ip(franka_launch) -> None:
    """franka_bringup:=false: no include, so nothing needs the robot's address."""
    values = {"franka_bringup": "false", "checkpoint": "/runs/x.safetensors"}
    g = franka_launch.graph_from_launch_arguments(values)
    assert g.node("franka_adapter").parameters["dry_run"] is True  # hardware: a dry run by default
    assert franka_launch.franka_include_arguments(values, "/tmp/robot.config.yaml") is None


def test_franka_bringup_include_and_robot_config(franka_launch) -> None:
    values = {**HW, "robot_type": "fr3", "namespace": "/arm1/", "use_fake_hardware": "False"}
    include = franka_launch.franka_include_arguments(values, "/tmp/robot.config.yaml")
    assert franka_launch.FRANKA_BRINGUP == ("franka_bringup", "launch", "example.launch.py")
    assert include == {
        "robot_config_file": "/tmp/robot.config.yaml",
        "controller_names": "cartesian_impedance_example_controller",
        "controller_name": "cartesian_impedance_example_controller",
        "robot_ips": "172.16.0.2",
    }
    assert franka_launch.franka_include_arguments({"emulate": "true"}, "/x") is None
    # franka_ros2 already running: our nodes only
    assert franka_launch.franka_include_arguments({**HW, "franka_bringup": "false"}, "/x") is None
    robot = franka_launch.franka_robot_config(values)["ROBOT1"]
    # franka.config.yaml's layout: booleans as quoted text, namespace without slashes
    assert robot["robot_type"] == "fr3" and robot["robot_ip"] == "172.16.0.2"
    assert robot["namespace"] == "arm1"
    assert (robot["load_gripper"], robot["use_fake_hardware"], robot["use_rviz"]) == (
        "true",
        "false",
        "false",
    )
    assert robot["joint_state_rate"] == 30


def test_written_robot_config_reads_back(franka_launch) -> None:
    yaml = pytest.importorskip("yaml")
    config = franka_launch.franka_robot_config(HW)
    path = Path(franka_launch.write_robot_config(config))
    try:
        assert yaml.safe_load(path.read_text()) == config
    finally:
        path.unlink()


def test_node_kwargs_reuse_the_sim_launch_mapping(franka_launch) -> None:
    from expo_bringup.launch_graph import node_kwargs

    g = franka_launch.graph_from_launch_arguments({"emulate": "true", "namespace": "r1"})
    emulator = node_kwargs(g.node("franka_emulator"), {"expo_policy"}, python="/py")
    assert (emulator["executable"], emulator["arguments"]) == (
        "/py",
        ["-m", "expo_sim.ros.franka_emulator_node"],
    )
    assert emulator["namespace"] == "/r1" and emulator["exec_name"] == "r1/franka_emulator"
    adapter = node_kwargs(g.node("franka_adapter"), {"expo_policy", "expo_franka"}, python="/py")
    assert (adapter["package"], adapter["executable"]) == ("expo_franka", "franka_adapter_node")
    assert adapter["remappings"] == [("action", "policy_action")]
    args = adapter["ros_arguments"]
    assert [Path(args[i + 1]).name for i, a in enumerate(args) if a == "--params-file"] == [
        "franka_adapter.yaml",
        "franka_adapter_emulated.yaml",
    ]
    policy = node_kwargs(g.node("policy_node"), {"expo_policy"}, python="/py")
    assert ("ee_pose", "franka_robot_state_broadcaster/current_pose") in policy["remappings"]


def test_a_missing_franka_ros2_is_reported_before_anything_starts(franka_launch) -> None:
    pytest.importorskip("ament_index_python")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("franka_bringup")
        pytest.skip("franka_ros2 is installed here")
    except PackageNotFoundError:
        pass
    with pytest.raises(ValueError, match="emulate:=true"):
        franka_launch.franka_bringup_launch_file()


def _has_launch() -> bool:
    try:
        from launch import LaunchDescription  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_launch(), reason="launch is installed here")
def test_launch_is_only_needed_to_build_the_description(franka_launch) -> None:
    with pytest.raises(ImportError):
        franka_launch.generate_launch_description()


def test_the_robot_config_is_removed_when_the_launch_ends(franka_launch) -> None:
    launch = pytest.importorskip("launch", reason="needs launch")
    path = Path(franka_launch.write_robot_config(franka_launch.franka_robot_config(HW)))
    assert path.is_file() and path.name.startswith("expo_franka_")
    ls = launch.LaunchService()
    ls.include_launch_description(launch.LaunchDescription([franka_launch.remove_on_shutdown(str(path))]))
    assert ls.run() == 0  # idle at once: shuts down, which runs the handler
    assert not path.exists()


def test_camera_topic_arguments_set_the_policys_camera_topics(franka_launch) -> None:
    g = franka_launch.graph_from_launch_arguments({**HW, "agentview_topic": "/camera/color/image_raw"})
    p = g.node("policy_node").parameters
    assert p["cameras.agentview.topic"] == "/camera/color/image_raw"
    assert "cameras.robot0_eye_in_hand.topic" not in p  # '' keeps the policy's default
    assert g == franka_graph(camera_topics={"agentview": "/camera/color/image_raw"})
    with pytest.raises(ValueError, match="launch argument 'robot0_eye_in_hand_topic' must be a ROS topic"):
        franka_launch.graph_from_launch_arguments({**HW, "robot0_eye_in_hand_topic": "bad topic"})
