"""Franka adapter parameters: defaults agree with franka_adapter.yaml, bad values name the parameter."""

from __future__ import annotations

import pytest
from expo_bringup.graph import default_config_dir
from expo_franka import action_freshness
from expo_franka.franka_adapter_params import PARAMETERS, FrankaAdapterConfig
from expo_franka.franka_gripper_io import resolve_interface

DEFAULTS = {p.name: p.default for p in PARAMETERS}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_yaml_sets_exactly_the_declared_parameters_and_validates() -> None:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((default_config_dir() / "franka_adapter.yaml").read_text())
    values = _flatten(data["/**"]["ros__parameters"])
    declared = DEFAULTS | {p.name: p.default for p in action_freshness.PARAMETERS}  # + executor.*
    assert set(values) == set(declared), set(values) ^ set(declared)
    assert {k for k in values if values[k] != declared[k]} == {"autostart"}
    action_freshness.plan_config(values.get)  # the executor's plan parameters validate
    cfg = FrankaAdapterConfig.from_values({k: values[k] for k in DEFAULTS})
    assert cfg.dry_run, "the shipped configuration must not move the arm until told to"
    assert cfg.topics["equilibrium_pose"] == "cartesian_impedance_example_controller/equilibrium_pose"
    assert cfg.topics["current_pose"] == "franka_robot_state_broadcaster/current_pose"
    assert cfg.arm_joints[0] == "fr3_joint1" and cfg.finger_joints == (
        "fr3_finger_joint1",
        "fr3_finger_joint2",
    )


def test_panda_names_and_integers_where_numbers_are_meant() -> None:
    cfg = FrankaAdapterConfig.from_values(
        {
            **DEFAULTS,
            "joints.arm": [f"panda_joint{i}" for i in range(1, 8)],
            "joints.fingers": ["panda_finger_joint1", "panda_finger_joint2"],
            "control_rate_hz": 20,
            "safety.workspace_low": [0, -1, 0],
        }
    )
    assert cfg.arm_joints[-1] == "panda_joint7" and cfg.control_rate_hz == 20.0
    assert cfg.limits.workspace_low == (0.0, -1.0, 0.0)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("dry_run", "no", "parameter 'dry_run' must be true or false"),
        ("control_rate_hz", 0.0, "parameter 'control_rate_hz' must be > 0.0"),
        ("topics.equilibrium_pose", "bad topic", "parameter 'topics.equilibrium_pose' must be a ROS topic"),
        ("joints.fingers", ["a"], "parameter 'joints.fingers' must be 2 distinct names"),
        ("joints.arm", [], "parameter 'joints.arm' must be a non-empty list of names"),
        ("gripper.interface", "robotiq", "parameter 'gripper.interface' must be one of"),
        ("gripper.force", 500.0, r"parameter 'gripper.force': GripperConfig.force must be in \(0, 140\]"),
        ("gripper.speed", "fast", "parameter 'gripper.speed' must be a finite number"),
        ("osc.rot_scale", 5.0, "parameter 'osc.rot_scale': OscScaling.rot_scale"),
        ("safety.workspace_high", [0.75, 0.35, 0.0], "parameter 'safety.workspace_low'"),
        ("safety.max_translation_step_m", 1.0, "parameter 'safety.max_translation_step_m'"),
        ("watchdog.current_pose_max_age_s", 0.0, "parameter 'watchdog.current_pose_max_age_s' must be > 0.0"),
    ],
)
def test_bad_values_name_the_parameter(name: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FrankaAdapterConfig.from_values({**DEFAULTS, name: value})


def test_gripper_interface_resolution_reports_missing_franka_msgs() -> None:
    try:
        import franka_msgs  # noqa: F401

        pytest.skip("franka_msgs is installed: this checks the pip-mode fallback")
    except ImportError:
        pass
    try:
        import control_msgs  # noqa: F401

        pytest.skip("control_msgs is installed: auto would choose gripper_action")
    except ImportError:
        pass
    interface, note = resolve_interface("auto", "gripper_width_cmd")
    assert interface == "width_topic" and "franka_msgs and control_msgs are not installed" in note
    assert resolve_interface("width_topic", "w") == ("width_topic", "")
    with pytest.raises(ValueError, match="parameter 'gripper.interface': franka_actions needs franka_msgs"):
        resolve_interface("franka_actions", "w")
    with pytest.raises(ValueError, match="gripper_action needs control_msgs"):
        resolve_interface("gripper_action", "w")
