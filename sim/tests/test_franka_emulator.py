"""The Franka emulator's maths and parameters, and the bridge's franka finger convention: no ROS
graph, no simulator (fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from expo_bringup.graph import default_config_dir
from expo_franka.franka_conversions import (
    GripperConfig,
    GripperState,
    OscScaling,
    Pose,
    axis_angle_to_quat,
    gripper_command,
    gripper_state_from_action,
    osc_target_pose,
    rotation_angle,
)
from expo_ros.object_state import quat_multiply
from expo_sim.ros.bridge_conversions import SimSnapshot, observation_msgs
from expo_sim.ros.bridge_params import PARAMETERS as BRIDGE_PARAMETERS
from expo_sim.ros.bridge_params import BridgeConfig
from expo_sim.ros.franka_emulation import (
    EpisodeIndices,
    emulated_action,
    gripper_action_from_width,
    osc_delta_action,
)
from expo_sim.ros.franka_emulator_params import PARAMETERS, FrankaEmulatorConfig

SCALE = OscScaling()


def random_pose(rng: np.random.Generator) -> Pose:
    q = rng.standard_normal(4)
    return Pose(rng.uniform([-0.4, -0.3, 0.8], [0.3, 0.3, 1.3]), q / np.linalg.norm(q))


def test_round_trip_action_pose_action_is_the_identity() -> None:
    """osc_delta_action inverts the adapter's osc_target_pose for every action in [-1, 1]."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for i in range(500):
        measured = random_pose(rng)
        action = rng.uniform(-1.0, 1.0, 6)
        if i % 5 == 0:  # the box's corners and faces too
            action = rng.choice([-1.0, 0.0, 1.0], 6)
        scaling = OscScaling(pos_scale=rng.uniform(0.01, 0.1), rot_scale=rng.uniform(0.1, 0.9))
        target = osc_target_pose(action, measured, scaling)
        delta = osc_delta_action(target, measured, scaling)
        worst = max(worst, float(np.max(np.abs(delta.action - action))))
        assert not delta.saturated
        assert delta.translation_error_m == pytest.approx(np.linalg.norm(action[:3]) * scaling.pos_scale)
    assert worst < 1e-9


def test_round_trip_pose_action_pose_reaches_the_equilibrium_in_range() -> None:
    """The emulator's command, applied as robosuite applies it, lands on the equilibrium."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        measured = random_pose(rng)
        rotvec = rng.uniform(-0.45, 0.45, 3)  # within one step: each component <= rot_scale
        equilibrium = Pose(
            measured.position + rng.uniform(-0.05, 0.05, 3),
            quat_multiply(axis_angle_to_quat(rotvec), measured.quat),
        )
        delta = osc_delta_action(equilibrium, measured, SCALE)
        reached = osc_target_pose(delta.action, measured, SCALE)
        np.testing.assert_allclose(reached.position, equilibrium.position, atol=1e-12)
        assert rotation_angle(reached.quat, equilibrium.quat) < 1e-9


def test_far_equilibrium_saturates_with_the_direction_kept() -> None:
    measured = Pose(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    rotvec = np.array([0.0, 0.0, 1.2])  # 1.2 rad about z: more than one step of 0.5 rad
    far = Pose(np.array([0.2, -0.1, 1.0]), axis_angle_to_quat(rotvec))
    delta = osc_delta_action(far, measured, SCALE)
    assert delta.saturated
    np.testing.assert_allclose(delta.action, [1.0, -0.5, 0.0, 0.0, 0.0, 1.0], atol=1e-12)
    assert delta.translation_error_m == pytest.approx(math.hypot(0.2, 0.1))
    assert delta.rotation_error_rad == pytest.approx(1.2)
    # the shortest way round: a target 350 degrees away turns 10 degrees the other way
    turned = Pose(measured.position, axis_angle_to_quat(np.array([0.0, 0.0, math.radians(350.0)])))
    assert osc_delta_action(turned, measured, SCALE).action[5] == pytest.approx(-math.radians(10.0) / 0.5)


def test_bad_poses_raise() -> None:
    good = Pose(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        osc_delta_action(Pose(np.array([np.nan, 0.0, 0.0]), good.quat), good, SCALE)
    with pytest.raises(ValueError, match="not a rotation"):
        osc_delta_action(Pose(np.zeros(3), np.zeros(4)), good, SCALE)


def test_gripper_round_trip_action_width_action() -> None:
    cfg = GripperConfig()
    for value, state, back in ((1.0, GripperState.CLOSED, 1.0), (-1.0, GripperState.OPEN, -1.0)):
        got = gripper_state_from_action(value, None, cfg)
        assert got is state
        assert gripper_action_from_width(gripper_command(got, cfg).width, cfg) == back
    assert gripper_action_from_width(None, cfg) == 0.0  # nothing commanded: fingers keep still
    assert gripper_action_from_width(float("nan"), cfg) == 0.0
    assert gripper_action_from_width(0.04, cfg) == -1.0 and gripper_action_from_width(0.039, cfg) == 1.0


def test_emulated_action_is_pose_delta_plus_gripper() -> None:
    measured = Pose(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    eq = Pose(np.array([0.01, 0.0, 1.0]), measured.quat)
    action, delta = emulated_action(eq, measured, 0.0, SCALE, GripperConfig())
    np.testing.assert_allclose(action, [0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], atol=1e-12)
    assert action.shape == (7,) and not delta.saturated


def test_episode_indices_name_the_step_a_command_takes_effect_in() -> None:
    T = 50_000_000
    idx = EpisodeIndices(T)
    assert [idx.next(s) for s in (0, 10, 40)] == [(0, 0)] * 3  # before any report: step 0
    idx.feedback(0, done=False, stamp_ns=T)  # step 0 ended at T
    assert idx.next(T) == (0, 1)  # the pose at T (just before its feedback) is for step 1 too
    assert idx.next(T + 30) == (0, 1) and idx.next(2 * T + 10) == (0, 2)  # a report not yet in
    idx.feedback(0, done=False, stamp_ns=2 * T)
    idx.feedback(0, done=True, stamp_ns=3 * T)
    assert idx.next(4 * T) == (1, 0)
    idx.feedback(0, done=True, stamp_ns=3 * T)  # a late duplicate of an old episode changes nothing
    assert idx.next(4 * T + 10) == (1, 0)


def test_parameters_validate_and_the_yaml_equals_the_defaults() -> None:
    yaml = pytest.importorskip("yaml")
    defaults = {p.name: p.default for p in PARAMETERS}
    cfg = FrankaEmulatorConfig.from_values(defaults)
    assert cfg.topics["equilibrium_pose"] == "cartesian_impedance_example_controller/equilibrium_pose"
    data = yaml.safe_load((default_config_dir() / "franka_emulator.yaml").read_text())["/**"][
        "ros__parameters"
    ]
    flat: dict = {}
    for key, value in data.items():  # one level of nesting, as rcl flattens it: topics.action
        items = value.items() if isinstance(value, dict) else [("", value)]
        flat.update({f"{key}.{sub}" if sub else key: v for sub, v in items})
    assert set(flat) == set(defaults)
    assert {k: v for k, v in flat.items() if k != "autostart"} == {
        k: v for k, v in defaults.items() if k != "autostart"
    }
    assert flat["autostart"] is True  # the pip-mode runner has no lifecycle manager
    for name, value, needle in (
        ("osc.pos_scale", 0, "osc.pos_scale"),
        ("osc.rot_scale", 4.0, "osc.*"),
        ("gripper.closed_width", 0.09, "gripper.*"),
        ("topics.action", "bad topic", "topics.action"),
        ("autostart", "yes", "autostart"),
    ):
        with pytest.raises(ValueError, match=needle.replace("*", r"\*").replace(".", r"\.")):
            FrankaEmulatorConfig.from_values({**defaults, name: value})


def test_bridge_publishes_fingers_with_franka_signs_when_asked() -> None:
    values = {p.name: p.default for p in BRIDGE_PARAMETERS}
    assert BridgeConfig.from_values(values).finger_signs == (1.0, 1.0)  # robosuite's qpos as is
    assert BridgeConfig.from_values({**values, "finger_signs": [1.0, -1.0]}).finger_signs == (1.0, -1.0)
    for bad in ([1.0], [1.0, 0.5], "1,1", [True, True]):
        with pytest.raises(ValueError, match="finger_signs"):
            BridgeConfig.from_values({**values, "finger_signs": bad})
    snap = SimSnapshot(
        joint_pos=np.array([0.1] * 7 + [0.03, -0.03]),
        joint_vel=np.array([0.0] * 7 + [0.2, -0.2]),
        ee_pos=np.zeros(3),
        ee_quat=np.array([0.0, 0.0, 0.0, 1.0]),
        object_pos=np.zeros((1, 3)),
        object_quat=np.array([[0.0, 0.0, 0.0, 1.0]]),
    )
    names = tuple(f"fr3_joint{i}" for i in range(1, 8)) + ("fr3_finger_joint1", "fr3_finger_joint2")
    js = observation_msgs(snap, 0, names, "world", finger_signs=(1.0, -1.0)).joint_states
    assert list(js.position[7:]) == [0.03, 0.03] and list(js.velocity[7:]) == [0.2, 0.2]
    assert list(js.position[:7]) == [0.1] * 7
    as_is = observation_msgs(snap, 0, names, "world").joint_states
    assert list(as_is.position[7:]) == [0.03, -0.03]
