"""Arm safety filter: workspace and step limits, e-stop latch, watchdog holds, gripper rate, counters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from expo_franka.arm_safety import COUNTERS, ArmSafety, ArmSafetyLimits, limit_target
from expo_franka.franka_conversions import GripperState, Pose, axis_angle_to_quat, rotation_angle
from expo_ros.object_state import quat_multiply

DOWN = np.array([1.0, 0.0, 0.0, 0.0])
HOME = Pose(np.array([0.5, 0.0, 0.3]), DOWN)
LIMITS = ArmSafetyLimits()  # box x 0.25..0.75, y -0.35..0.35, z 0.03..0.6; 0.06 m, 0.5 rad, 1 s, 0.5 s


def _target(dpos=(0.0, 0.0, 0.0), rot=(0.0, 0.0, 0.0), base: Pose = HOME) -> Pose:
    return Pose(base.position + np.asarray(dpos), quat_multiply(axis_angle_to_quat(rot), base.quat))


def _same_pose(a: Pose, b: Pose) -> bool:
    return bool(np.allclose(a.position, b.position, atol=1e-12) and rotation_angle(a.quat, b.quat) < 1e-9)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workspace_low", (0.8, -0.35, 0.03)),
        ("workspace_high", (0.75, 0.35)),
        ("max_translation_step_m", 0.0),
        ("max_translation_step_m", 0.5),
        ("max_rotation_step_rad", 4.0),
        ("min_gripper_toggle_interval_s", -1.0),
        ("action_max_age_s", math.nan),
    ],
)
def test_limits_validate(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"ArmSafetyLimits.{field.split('_high')[0].split('_low')[0]}"):
        ArmSafetyLimits(**{field: value})


def test_limit_target_passes_a_target_within_limits_unchanged() -> None:
    t = _target((0.03, -0.02, 0.01), (0.0, 0.1, 0.2))
    out, codes, reasons = limit_target(t, HOME, LIMITS)
    assert codes == [] and reasons == []
    assert _same_pose(out, t)


def test_translation_step_is_shortened_along_its_direction() -> None:
    t = _target((0.05, 0.05, 0.05))  # full diagonal OSC step: 0.087 m > 0.06 m
    out, codes, _ = limit_target(t, HOME, LIMITS)
    step = out.position - HOME.position
    assert codes == ["translation_step"]
    assert np.linalg.norm(step) == pytest.approx(0.06)
    np.testing.assert_allclose(step / np.linalg.norm(step), np.ones(3) / math.sqrt(3))


def test_rotation_step_is_shortened_about_its_axis() -> None:
    axis = np.array([0.0, 0.6, 0.8])
    out, codes, _ = limit_target(_target(rot=axis * 0.9), HOME, LIMITS)
    assert codes == ["rotation_step"]
    assert rotation_angle(HOME.quat, out.quat) == pytest.approx(0.5)
    np.testing.assert_allclose(out.quat, _target(rot=axis * 0.5).quat, atol=1e-12)
    np.testing.assert_allclose(out.position, HOME.position)


def test_workspace_clips_the_target_and_a_step_from_outside_only_approaches_the_box() -> None:
    near_wall = Pose(np.array([0.74, 0.0, 0.05]), DOWN)
    out, codes, reasons = limit_target(_target((0.05, 0.0, -0.04), base=near_wall), near_wall, LIMITS)
    assert codes == ["workspace"] and "x" in reasons[0] and "z" in reasons[0]
    np.testing.assert_allclose(out.position, [0.75, 0.0, 0.03])
    # Measured 0.2 m below the box: the box would pull 0.2 m at once; the step limit allows 0.06 m.
    below = Pose(np.array([0.5, 0.0, -0.17]), DOWN)
    out, codes, _ = limit_target(_target(base=below), below, LIMITS)
    assert codes == ["workspace", "translation_step"]
    np.testing.assert_allclose(out.position, [0.5, 0.0, -0.11])


def test_acting_sends_limited_targets_and_counts_limits() -> None:
    s = ArmSafety(LIMITS)
    d = s.on_action(0.0, _target((0.01, 0, 0)), GripperState.CLOSED, HOME)
    assert not d.hold and d.gripper is GripperState.CLOSED and d.reasons == ()
    assert _same_pose(d.pose, _target((0.01, 0, 0)))
    d = s.on_action(0.05, _target((0.0, 0.0, 0.2)), None, HOME)
    assert d.reasons[0].startswith("translation_step") and d.pose.position[2] == pytest.approx(0.36)
    assert s.counters["limited_translation_step"] == 1 and s.counters["targets_sent"] == 2
    assert set(COUNTERS) >= {"rejected_e_stop", "limited_workspace", "action_timeouts"}


def test_e_stop_latches_a_hold_at_the_measured_pose_until_cleared_and_a_new_action() -> None:
    s = ArmSafety(LIMITS)
    s.on_action(0.0, _target((0.02, 0, 0)), None, HOME)
    moved = Pose(HOME.position + [0.02, 0, 0], DOWN)
    assert s.e_stop("button", moved) and not s.e_stop("again", moved)  # second trigger: already latched
    assert s.counters["e_stops"] == 1
    for t in (0.05, 0.1):  # actions are refused, the hold stays where the arm was
        d = s.on_action(
            t, _target((0.05, 0, 0)), GripperState.OPEN, Pose(moved.position + [0.01, 0, 0], DOWN)
        )
        assert d.hold and d.gripper is None and _same_pose(d.pose, moved)
        assert d.reasons[0].startswith("e_stop")
    assert s.counters["rejected_e_stop"] == 2
    d = s.on_tick(0.2, HOME)
    assert d.hold and _same_pose(d.pose, moved)
    assert s.clear_e_stop() and not s.clear_e_stop()
    d = s.on_tick(0.25, HOME)  # cleared, but nothing resumes by itself
    assert d.hold and _same_pose(d.pose, moved) and "waiting for a new action" in s.hold_reason
    d = s.on_action(0.3, _target((0.01, 0, 0)), None, HOME)
    assert not d.hold and _same_pose(d.pose, _target((0.01, 0, 0)))


def test_e_stop_before_any_pose_holds_at_the_first_pose_and_survives_reset() -> None:
    s = ArmSafety(LIMITS)
    s.e_stop("early", None)
    d = s.on_tick(0.0, None)
    assert d.pose is None  # nothing to hold at yet
    s.reset()
    assert s.e_stopped
    d = s.on_action(0.1, _target(), None, HOME)
    assert d.hold and _same_pose(d.pose, HOME) and s.counters["rejected_e_stop"] == 1


def test_stale_inputs_hold_at_the_latched_pose_and_resume_on_a_new_action() -> None:
    s = ArmSafety(LIMITS)
    s.on_action(0.0, _target((0.01, 0, 0)), None, HOME)
    d = s.on_tick(0.05, HOME, stale_reason="current_pose 0.3 s old > 0.1 s")
    assert d.hold and _same_pose(d.pose, HOME) and d.reasons[0].startswith("stale_input")
    later = Pose(HOME.position + [0, 0.01, 0], DOWN)
    d = s.on_action(0.1, _target(base=later), None, later, stale_reason="joint_states never received")
    assert d.hold and _same_pose(d.pose, HOME)  # latched: the hold does not drift with the arm
    assert s.counters["rejected_stale_input"] == 1  # ticks propose nothing: only the action counts
    assert s.on_tick(0.15, later).hold  # fresh again, still holding until a new action
    d = s.on_action(0.2, _target((0.01, 0, 0), base=later), None, later)
    assert not d.hold and d.pose.position[0] == pytest.approx(0.51)


def test_ticks_repeat_the_last_target_then_hold_after_the_action_timeout() -> None:
    s = ArmSafety(LIMITS)
    d = s.on_tick(0.0, HOME)
    assert d.hold and d.reasons[0] == "action_timeout: no action yet"
    first = s.on_action(1.0, _target((0.03, 0, 0)), None, HOME)
    moved = Pose(HOME.position + [0.02, 0, 0], DOWN)
    d = s.on_tick(1.4, moved)  # the action is applied once: not re-derived from the new pose
    assert not d.hold and _same_pose(d.pose, first.pose)
    d = s.on_tick(1.6, moved)
    assert (
        d.hold and _same_pose(d.pose, moved) and d.reasons[0].startswith("action_timeout: last action 0.600")
    )
    s.on_tick(1.7, HOME)
    assert s.counters["action_timeouts"] == 2  # once per entry into the hold, not per tick


def test_gripper_toggles_are_rate_limited_but_the_arm_still_moves() -> None:
    s = ArmSafety(ArmSafetyLimits(min_gripper_toggle_interval_s=1.0))
    assert s.on_action(0.0, _target(), GripperState.CLOSED, HOME).gripper is GripperState.CLOSED
    assert (
        s.on_action(0.1, _target(), GripperState.CLOSED, HOME).gripper is None
    )  # no change: nothing to send
    d = s.on_action(0.5, _target((0.01, 0, 0)), GripperState.OPEN, HOME)
    assert d.gripper is None and not d.hold and d.pose.position[0] == pytest.approx(0.51)
    assert d.reasons[0].startswith("gripper_rate: open refused")
    assert s.gripper_state is GripperState.CLOSED and s.counters["rejected_gripper_rate"] == 1
    assert s.on_action(1.0, _target(), GripperState.OPEN, HOME).gripper is GripperState.OPEN


def test_unusable_inputs_and_policy_holds() -> None:
    s = ArmSafety(LIMITS)
    d = s.on_action(0.0, _target(), None, None)
    assert d.pose is None and s.counters["rejected_no_pose"] == 1
    d = s.on_action(0.0, _target(), None, Pose(np.array([np.nan, 0, 0]), DOWN))
    assert d.pose is None and s.counters["rejected_no_pose"] == 2
    d = s.on_action(0.1, None, GripperState.OPEN, HOME)
    assert d.hold and d.gripper is None and s.counters["rejected_bad_action"] == 1
    d = s.on_action(0.2, Pose(np.zeros(3), np.zeros(4)), None, HOME)
    assert d.hold and s.counters["rejected_bad_action"] == 2
    d = s.on_action(0.3, _target((0.01, 0, 0)), None, HOME, policy_hold="stale_input: ee_pose")
    assert d.hold and d.reasons == ("policy_hold: stale_input: ee_pose",) and s.counters["policy_holds"] == 1


def test_hold_for_deactivation_keeps_an_existing_hold_pose() -> None:
    s = ArmSafety(LIMITS)
    assert s.hold(None, "deactivated").pose is None
    s.on_action(0.0, _target((0.02, 0, 0)), None, HOME)
    moved = Pose(HOME.position + [0.02, 0, 0], DOWN)
    assert _same_pose(s.hold(moved, "deactivated").pose, moved)
    assert _same_pose(s.hold(HOME, "shutdown").pose, moved)
