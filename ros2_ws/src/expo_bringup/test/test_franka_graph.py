"""The hardware graph as data: wiring of franka_graph, the YAML files it names, the CLI profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from expo_bringup.franka_graph import CURRENT_POSE, EQUILIBRIUM_POSE, POLICY_ACTION, franka_graph
from expo_bringup.graph import default_config_dir, sim_graph
from expo_franka.episode_manager_node import PARAMETERS as MANAGER_PARAMETERS
from expo_franka.episode_manager_node import EpisodeManagerNodeConfig
from expo_franka.franka_adapter_params import PARAMETERS as ADAPTER_PARAMETERS
from expo_franka.franka_adapter_params import FrankaAdapterConfig


def ros_parameters(*names: str) -> dict[str, Any]:
    """The ``/**`` parameters of the YAML files ``names`` (later files win), flattened to dotted
    names as rcl reads them."""
    yaml = pytest.importorskip("yaml")
    flat: dict[str, Any] = {}

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                flat[f"{prefix}{k}"] = v

    for name in names:
        walk("", yaml.safe_load((default_config_dir() / name).read_text())["/**"]["ros__parameters"])
    return flat


def test_hardware_graph_wires_the_policy_through_the_adapter() -> None:
    g = franka_graph(checkpoint="/c/x.safetensors", namespace="robot1")
    policy, adapter = g.node("policy_node"), g.node("franka_adapter")
    assert [n.name for n in g.nodes] == ["policy_node", "franka_adapter", "episode_manager"]
    assert policy.namespace == adapter.namespace == g.node("episode_manager").namespace == "/robot1"
    assert dict(policy.remappings) == {
        "action": POLICY_ACTION,
        "ee_pose": CURRENT_POSE,
        "ee_pose_base": CURRENT_POSE,  # a pixel policy's base-frame pose
    }
    assert dict(adapter.remappings) == {"action": POLICY_ACTION}
    p = policy.parameters
    assert p["lockstep"] is False and p["use_sim_time"] is False and p["checkpoint"] == "/c/x.safetensors"
    assert p["observation.finger_joint_names"] == ["fr3_finger_joint1", "fr3_finger_joint2"]
    assert p["observation.finger_signs"] == [1.0, -1.0]  # franka_ros2 reports both fingers positive
    assert p["observation.best_effort"] is True  # current_pose is published best effort
    a = adapter.parameters
    assert a["dry_run"] is True and a["use_sim_time"] is False
    assert a["joints.arm"] == [f"fr3_joint{i}" for i in range(1, 8)]
    assert [Path(f).name for f in adapter.params_files] == ["franka_adapter.yaml"]
    # The adapter's own topic defaults are franka_ros2's names: nothing else to remap.
    adapter_yaml = ros_parameters("franka_adapter.yaml")
    assert adapter_yaml["topics.current_pose"] == CURRENT_POSE
    assert adapter_yaml["topics.equilibrium_pose"] == EQUILIBRIUM_POSE


def test_episode_manager_labels_the_policys_commands_on_hardware_only() -> None:
    manager = franka_graph().node("episode_manager")
    assert (
        manager.module == "expo_franka.episode_manager_node" and manager.executable == "episode_manager_node"
    )
    assert dict(manager.remappings) == {"action": POLICY_ACTION}  # the policy's commands, not the bridge's
    assert manager.parameters["use_sim_time"] is False
    assert [Path(f).name for f in manager.params_files] == ["episode_manager.yaml"]
    values = {p.name: p.default for p in MANAGER_PARAMETERS}
    values.update(ros_parameters("episode_manager.yaml"))
    cfg = EpisodeManagerNodeConfig.from_values(values)  # the shipped YAML is a valid configuration
    assert cfg.autostart is True and cfg.feedback_topic == "env_feedback" and cfg.action_topic == "action"
    assert set(ros_parameters("episode_manager.yaml")) <= {p.name for p in MANAGER_PARAMETERS}
    # Emulated, the sim bridge publishes env_feedback: a second publisher would report steps twice.
    with pytest.raises(KeyError):
        franka_graph(emulate=True).node("episode_manager")


def test_learner_is_the_sim_graphs_learner_node() -> None:
    kw = {"task": "lift", "checkpoint": "/c/x.safetensors", "namespace": "r1"}
    g = franka_graph(**kw, learner=True, learner_dir="/runs/arm", offline_dataset="/d/lift.hdf5")
    assert [n.name for n in g.nodes] == ["policy_node", "franka_adapter", "episode_manager", "learner_node"]
    expected = sim_graph(
        **kw, realtime=True, learner=True, learner_dir="/runs/arm", offline_dataset="/d/lift.hdf5"
    ).node("learner_node")
    assert g.node("learner_node") == expected and expected.namespace == "/r1"
    assert expected.parameters["bag_dir"] == "/runs/arm/bags"
    emulated = franka_graph(**kw, emulate=True, learner=True, learner_dir="/runs/arm")
    assert [n.name for n in emulated.nodes][-1] == "learner_node"
    for missing in ({"checkpoint": ""}, {"learner_dir": ""}):
        args = {**kw, "learner_dir": "/runs/arm", **missing}
        with pytest.raises(ValueError, match="learner=True needs a checkpoint"):
            franka_graph(**args, learner=True)


def test_emulated_graph_closes_the_loop_with_franka_names() -> None:
    g = franka_graph(robot_type="panda", emulate=True)
    bridge, emulator = g.node("sim_bridge"), g.node("franka_emulator")
    assert bridge.parameters["realtime"] is True
    assert bridge.parameters["arm_joint_names"] == [f"panda_joint{i}" for i in range(1, 8)]
    assert bridge.parameters["finger_joint_names"] == g.node("franka_adapter").parameters["joints.fingers"]
    assert bridge.parameters["finger_signs"] == g.node("policy_node").parameters["observation.finger_signs"]
    assert dict(bridge.remappings) == {"ee_pose": CURRENT_POSE}
    assert emulator.module == "expo_sim.ros.franka_emulator_node" and emulator.remappings == ()
    assert all(n.parameters["use_sim_time"] is True for n in (g.node("policy_node"), emulator))
    assert g.node("franka_adapter").parameters["use_sim_time"] is True
    assert g.node("franka_adapter").parameters["dry_run"] is False
    assert franka_graph(emulate=True, dry_run=True).node("franka_adapter").parameters["dry_run"] is True
    assert franka_graph(dry_run=False).node("franka_adapter").parameters["dry_run"] is False


def test_emulator_and_adapter_configs_agree() -> None:
    """The emulator inverts the adapter's conversion: same topics between them, same scaling."""
    adapter = ros_parameters("franka_adapter.yaml", "franka_adapter_emulated.yaml")
    emulator = ros_parameters("franka_emulator.yaml")
    for key in ("equilibrium_pose", "gripper_width_cmd", "current_pose"):
        assert emulator[f"topics.{key}"] == adapter[f"topics.{key}"], key
    assert emulator["topics.action"] == "action" != POLICY_ACTION  # the bridge's input, not the policy's
    for key in ("osc.pos_scale", "osc.rot_scale", "gripper.open_width", "gripper.closed_width"):
        assert emulator[key] == adapter[key], key
    assert adapter["gripper.interface"] == "width_topic"  # what the emulator listens to
    # The overlay keeps a valid adapter configuration, its box inside the policy's sim box.
    values = {p.name: adapter.get(p.name, p.default) for p in ADAPTER_PARAMETERS}
    cfg = FrankaAdapterConfig.from_values(values)
    policy = ros_parameters("policy.yaml")
    assert list(cfg.limits.workspace_low) == policy["safety.workspace_low"]
    assert list(cfg.limits.workspace_high) == policy["safety.workspace_high"]


def test_teleop_adds_the_teleop_node_on_the_policys_commands_and_arms_the_arbiter() -> None:
    """teleop=<device>: the teleop node in the policy's namespace with that device's YAML, reading
    the policy's commands where this graph puts them (policy_action), and the policy node
    arbitrating; without it neither."""
    from expo_franka.teleop_params import PARAMETERS as TELEOP_PARAMETERS
    from expo_franka.teleop_params import TeleopNodeConfig

    plain = franka_graph(checkpoint="/c/x.safetensors", namespace="robot1")
    assert "teleop_node" not in [n.name for n in plain.nodes]
    assert "intervention.enabled" not in plain.node("policy_node").parameters
    for device, emulate in (("spacemouse", False), ("gamepad", False), ("keyboard", True)):
        g = franka_graph(checkpoint="/c/x.safetensors", namespace="robot1", teleop=device, emulate=emulate)
        teleop = g.node("teleop_node")
        assert teleop.namespace == "/robot1" and teleop.executable == "teleop_node"
        assert dict(teleop.remappings) == {"action": POLICY_ACTION}
        assert teleop.parameters == {"use_sim_time": emulate}
        assert [Path(f).name for f in teleop.params_files] == [f"teleop_{device}.yaml"]
        assert g.node("policy_node").parameters["intervention.enabled"] is True
        values = {p.name: p.default for p in TELEOP_PARAMETERS} | ros_parameters(f"teleop_{device}.yaml")
        assert values["topics.action"] == "action"  # the relative name the remapping reaches
        TeleopNodeConfig.from_values(values)  # the file the node gets is valid
    with pytest.raises(ValueError, match="teleop 'joystick' unknown"):
        franka_graph(teleop="joystick")
    with pytest.raises(ValueError, match="'keyboard' is for the emulated arm only"):
        franka_graph(teleop="keyboard")


def test_franka_graph_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="robot_type 'ur5'"):
        franka_graph(robot_type="ur5")
    with pytest.raises(ValueError, match="task 'pour'"):
        franka_graph(task="pour")
    with pytest.raises(ValueError, match="backend"):
        franka_graph(backend="torch; rm -rf /")


def test_pixel_policy_inputs_on_the_arm() -> None:
    """No object poses: cameras by topic, the arm joints and the base-frame pose (current_pose)."""
    g = franka_graph(
        camera_topics={"agentview": "/camera/color/image_raw", "robot0_eye_in_hand": "wrist/image"}
    )
    policy = g.node("policy_node")
    p = policy.parameters
    assert p["cameras.agentview.topic"] == "/camera/color/image_raw"
    assert p["cameras.robot0_eye_in_hand.topic"] == "wrist/image"
    assert p["observation.arm_joint_names"] == [f"fr3_joint{i}" for i in range(1, 8)]
    assert dict(policy.remappings)["ee_pose_base"] == CURRENT_POSE
    emulated = franka_graph(emulate=True).node("policy_node")  # the bridge's own ee_pose_base
    assert "ee_pose_base" not in dict(emulated.remappings)
    with pytest.raises(ValueError, match="camera 'frontview' unknown"):
        franka_graph(camera_topics={"frontview": "x"})
    with pytest.raises(ValueError, match="cameras.agentview.topic"):
        franka_graph(camera_topics={"agentview": "not a topic"})


def test_emulated_pixel_graph_renders_cameras_and_acts_in_the_base_frame() -> None:
    g = franka_graph(emulate=True, obs="pixels")
    bridge, policy = g.node("sim_bridge"), g.node("policy_node")
    assert bridge.parameters["observation.kind"] == "pixels"
    assert bridge.parameters["arm_joint_names"] == policy.parameters["observation.arm_joint_names"]
    assert policy.parameters["observation.base_frame"] == "robot0_base"
    sim = sim_graph("lift", realtime=True, obs="pixels").node("policy_node").parameters
    assert policy.parameters["safety.workspace_low"] == sim["safety.workspace_low"]  # the base-frame box
    assert "ee_pose_base" not in dict(policy.remappings)  # the bridge's own base-frame pose
    hw = franka_graph(obs="pixels")  # hardware: the checkpoint decides; nothing sim-specific
    assert hw == franka_graph() and "observation.base_frame" not in hw.node("policy_node").parameters
    with pytest.raises(ValueError, match="obs 'depth' unknown"):
        franka_graph(obs="depth")
