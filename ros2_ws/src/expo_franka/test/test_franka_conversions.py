"""OSC_POSE action -> target pose matches robosuite 1.4.1's controller; gripper hysteresis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from expo_franka.franka_conversions import (
    GripperConfig,
    GripperState,
    OscScaling,
    Pose,
    axis_angle_to_quat,
    gripper_command,
    gripper_state_from_action,
    gripper_width_from_joints,
    osc_target_pose,
    quat_to_axis_angle,
    rotation_angle,
    scale_osc_delta,
)

SCALING = OscScaling()
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # x, y, z, w: gripper pointing down (180 deg about x)


def _unit_quats(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _robosuite():
    T = pytest.importorskip("robosuite.utils.transform_utils")
    cu = pytest.importorskip("robosuite.utils.control_utils")
    base = pytest.importorskip("robosuite.controllers.base_controller")
    return T, cu, base.Controller


def test_scaling_is_robosuite_scale_action() -> None:
    _, _, Controller = _robosuite()
    # Controller.scale_action only reads these attributes: the default OSC_POSE limits.
    ctrl = type("Osc", (), {})()
    ctrl.action_scale, ctrl.input_max, ctrl.input_min = None, 1.0, -1.0
    ctrl.output_max = np.array([0.05, 0.05, 0.05, 0.5, 0.5, 0.5])
    ctrl.output_min = -ctrl.output_max
    rng = np.random.default_rng(0)
    for a in rng.uniform(-1.6, 1.6, size=(50, 6)):  # includes out-of-range values (clipped)
        dpos, drot = scale_osc_delta(a, SCALING)
        np.testing.assert_allclose(np.concatenate([dpos, drot]), Controller.scale_action(ctrl, a), atol=1e-12)


def test_target_pose_matches_robosuite_set_goal() -> None:
    T, cu, _ = _robosuite()
    rng = np.random.default_rng(1)
    quats = _unit_quats(rng, 40)
    for q, a in zip(quats, rng.uniform(-1.0, 1.0, size=(40, 7)), strict=True):
        pos = rng.uniform(-0.5, 0.5, size=3)
        target = osc_target_pose(a, Pose(pos, q), SCALING)
        scaled = np.concatenate(scale_osc_delta(a, SCALING))
        want_pos = cu.set_goal_position(scaled[:3], pos)
        want_mat = cu.set_goal_orientation(scaled[3:], T.quat2mat(q))  # R(axis-angle) @ R_measured
        np.testing.assert_allclose(target.position, want_pos, atol=1e-12)
        # robosuite computes quat2mat in float32: agreement to ~1e-7
        np.testing.assert_allclose(T.quat2mat(target.quat), want_mat, atol=2e-6)
        assert np.linalg.norm(target.quat) == pytest.approx(1.0)
        assert np.dot(target.quat, q) >= 0.0  # same hemisphere as the measured orientation


def test_rotation_delta_is_about_base_axes_not_tool_axes() -> None:
    # +1 on az with the tool pointing down: a 0.5 rad yaw about the BASE z axis, applied on the left.
    target = osc_target_pose(np.array([0, 0, 0, 0, 0, 1.0, 0]), Pose(np.zeros(3), DOWN), SCALING)
    yaw = np.array([0.0, 0.0, math.sin(0.25), math.cos(0.25)])
    x, y, z, w = yaw
    # Hamilton product yaw * DOWN (DOWN = (1, 0, 0, 0)): (w, z, -y, -x) in x, y, z, w order.
    np.testing.assert_allclose(target.quat, [w, z, -y, -x], atol=1e-12)
    # With the tool pointing down, a tool-frame z rotation would turn the other way round.
    np.testing.assert_allclose(quat_to_axis_angle(target.quat) @ [0, 0, 1], 0.0, atol=1e-12)
    assert rotation_angle(DOWN, target.quat) == pytest.approx(0.5)


def test_zero_rotation_keeps_the_previous_goal_orientation_like_robosuite() -> None:
    measured = Pose(np.array([0.4, 0.0, 0.3]), DOWN)
    prev_goal = axis_angle_to_quat([0.0, 0.0, 0.2]) * -1.0  # sign must not matter
    action = np.array([0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    kept = osc_target_pose(action, measured, SCALING, prev_goal_quat=prev_goal)
    assert rotation_angle(prev_goal, kept.quat) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(kept.position, [0.425, 0.0, 0.3])
    # Without a previous goal (or with any nonzero rotation) the measured orientation is the base.
    fresh = osc_target_pose(action, measured, SCALING)
    assert rotation_angle(DOWN, fresh.quat) == pytest.approx(0.0, abs=1e-9)
    tiny = osc_target_pose(action + [0, 0, 0, 0, 0, 1e-6, 0], measured, SCALING, prev_goal_quat=prev_goal)
    assert rotation_angle(DOWN, tiny.quat) == pytest.approx(0.5e-6, rel=1e-3)


def test_custom_scaling_and_bad_inputs() -> None:
    target = osc_target_pose(np.ones(7), Pose(np.zeros(3), DOWN), OscScaling(0.02, 0.1))
    np.testing.assert_allclose(target.position, [0.02, 0.02, 0.02])
    assert rotation_angle(DOWN, target.quat) == pytest.approx(0.1 * math.sqrt(3))
    with pytest.raises(ValueError, match="6 finite"):
        osc_target_pose(np.array([np.nan] * 7), Pose(np.zeros(3), DOWN), SCALING)
    with pytest.raises(ValueError, match="not a rotation"):
        osc_target_pose(np.zeros(7), Pose(np.zeros(3), np.zeros(4)), SCALING)
    with pytest.raises(ValueError, match="not finite"):
        osc_target_pose(np.zeros(7), Pose(np.array([0, np.inf, 0]), DOWN), SCALING)
    for bad in (dict(pos_scale=0.0), dict(pos_scale=2.0), dict(rot_scale=4.0), dict(rot_scale=math.nan)):
        with pytest.raises(ValueError, match="OscScaling"):
            OscScaling(**bad)


def test_axis_angle_round_trip_and_shortest_angle() -> None:
    rng = np.random.default_rng(2)
    for v in rng.uniform(-1.5, 1.5, size=(30, 3)):
        np.testing.assert_allclose(quat_to_axis_angle(axis_angle_to_quat(v)), v, atol=1e-9)
    np.testing.assert_allclose(axis_angle_to_quat(np.zeros(3)), [0, 0, 0, 1])
    # 350 deg one way is 10 deg the other: the angle is the shortest one.
    q = axis_angle_to_quat([0.0, 0.0, math.radians(350)])
    assert rotation_angle(np.array([0, 0, 0, 1.0]), q) == pytest.approx(math.radians(10))


def test_gripper_hysteresis() -> None:
    cfg = GripperConfig()
    assert gripper_state_from_action(0.2, None, cfg) is None  # nothing ever commanded, no decision
    closed = gripper_state_from_action(0.5, None, cfg)
    assert closed is GripperState.CLOSED
    # Inside the band the state holds, whichever it is.
    for v in (0.49, 0.0, -0.49, math.nan):
        assert gripper_state_from_action(v, closed, cfg) is GripperState.CLOSED
        assert gripper_state_from_action(v, GripperState.OPEN, cfg) is GripperState.OPEN
    assert gripper_state_from_action(-0.5, closed, cfg) is GripperState.OPEN
    assert gripper_state_from_action(-1.0, None, cfg) is GripperState.OPEN
    narrow = GripperConfig(close_threshold=0.1, open_threshold=-0.1)
    assert gripper_state_from_action(0.2, GripperState.OPEN, narrow) is GripperState.CLOSED


def test_gripper_commands_and_config_validation() -> None:
    cfg = GripperConfig(open_width=0.07, force=30.0)
    opened = gripper_command(GripperState.OPEN, cfg)
    closed = gripper_command(GripperState.CLOSED, cfg)
    assert (opened.width, opened.speed) == (0.07, 0.1)
    assert (closed.width, closed.force, closed.epsilon_outer) == (0.0, 30.0, 0.08)
    for bad in (
        dict(open_width=0.2),
        dict(closed_width=0.08),
        dict(force=0.0),
        dict(speed=1.0),
        dict(close_threshold=0.0),
        dict(open_threshold=0.1),
        dict(epsilon_outer=math.inf),
    ):
        with pytest.raises(ValueError, match=f"GripperConfig.{next(iter(bad))}"):
            GripperConfig(**bad)


def test_gripper_width_from_joint_states() -> None:
    names = [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
    pos = np.array([0.1] * 7 + [0.03, 0.03])
    fingers = ("fr3_finger_joint1", "fr3_finger_joint2")
    assert gripper_width_from_joints(names, pos, fingers) == pytest.approx(0.06)
    # robosuite's bridge reports the second finger negative: same width.
    assert gripper_width_from_joints(names, np.r_[pos[:8], -0.03], fingers) == pytest.approx(0.06)
    assert gripper_width_from_joints(names[:7], pos[:7], fingers) is None
