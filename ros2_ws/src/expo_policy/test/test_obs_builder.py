"""Observation builder: exact spec order, staleness, sync, malformed and non-finite pieces."""

from __future__ import annotations

import numpy as np
import pytest
from expo_core.spec import ObsKey, ObsSpec, task_obs_spec
from expo_policy.obs_builder import ObservationBuilder

SPEC = task_obs_spec("lift")  # eef_pos 3, eef_quat 4, gripper_qpos 2, object 10
NAMES = ["panda_joint1", "panda_finger_joint2", "panda_finger_joint1"]
POS = np.array([0.1, 0.2, 1.0])
QUAT = np.array([0.0, 0.0, 0.6, 0.8])  # x, y, z, w (unit)
OBJ = np.arange(10, dtype=np.float64) / 10
PROPRIO_ONLY = ObsSpec((ObsKey("robot0_eef_pos", 3), ObsKey("robot0_gripper_qpos", 2)))  # no quaternion


def filled(t: float = 1.0, **kw: float) -> ObservationBuilder:
    b = ObservationBuilder(SPEC, max_age_s=0.2, max_skew_s=0.05, **kw)
    assert b.update_joint_state(t, np.array([0.5, -0.03, 0.04]), NAMES)
    b.update_ee_pose(t, POS, QUAT)
    b.update_object(t, OBJ)
    return b


def test_builds_exact_spec_flatten_order() -> None:
    res = filled().build(1.05)
    assert res.ok and res.reason == "" and res.stamp == 1.0
    expected = SPEC.flatten(
        {
            "robot0_eef_pos": POS,
            "robot0_eef_quat": QUAT,
            "robot0_gripper_qpos": np.array([0.04, -0.03]),  # finger1, finger2 by name
            "object": OBJ,
        }
    )
    assert res.obs is not None and res.obs.dtype == np.float32 and res.obs.shape == (19,)
    np.testing.assert_array_equal(res.obs, expected)
    np.testing.assert_allclose(SPEC.unflatten(res.obs)["robot0_eef_quat"], QUAT)  # xyzw kept


def test_finger_signs_map_hardware_to_training_convention() -> None:
    b = ObservationBuilder(SPEC, 0.2, 0.05, finger_joint_names=("f1", "f2"), finger_signs=(1.0, -1.0))
    b.update_joint_state(0.0, np.array([0.04, 0.04]), ["f1", "f2"])
    b.update_ee_pose(0.0, POS, QUAT)
    b.update_object(0.0, OBJ)
    res = b.build(0.0)
    assert res.obs is not None
    np.testing.assert_allclose(SPEC.unflatten(res.obs)["robot0_gripper_qpos"], [0.04, -0.04])


def test_missing_piece_rejected_with_name() -> None:
    b = ObservationBuilder(SPEC, 0.2, 0.05)
    b.update_ee_pose(0.0, POS, QUAT)
    res = b.build(0.0)
    assert not res.ok and res.obs is None and res.stamp is None
    assert "joint_state missing" in res.reason and "object missing" in res.reason


def test_joint_state_without_fingers_is_ignored_not_stored() -> None:
    b = filled(t=1.0)
    assert not b.update_joint_state(1.1, np.zeros(2), ["panda_joint1", "panda_joint2"])
    assert b.build(1.1).ok  # the earlier gripper piece still counts
    assert not b.build(1.3).ok  # and ages out normally


def test_stale_piece_rejected() -> None:
    b = filled(t=1.0)
    res = b.build(1.25)
    assert not res.ok and "stale: 0.250 s old > 0.200 s" in res.reason
    res = b.build(0.5)  # clock went back
    assert not res.ok and "in the future" in res.reason


def test_skew_between_pieces_rejected() -> None:
    b = filled(t=1.0)
    b.update_object(1.08, OBJ)
    res = b.build(1.1)
    assert not res.ok and "out of sync" in res.reason and "object@1.080" in res.reason
    b.update_joint_state(1.08, np.array([0.0, 0.0, 0.0]), NAMES)
    b.update_ee_pose(1.06, POS, QUAT)
    res = b.build(1.1)
    assert res.ok and res.stamp == pytest.approx(1.06)  # the oldest piece's stamp


@pytest.mark.parametrize("piece", ["joint", "pose", "object"])
def test_non_finite_values_rejected(piece: str) -> None:
    b = filled(t=1.0)
    if piece == "joint":
        b.update_joint_state(1.0, np.array([0.0, np.nan, 0.0]), NAMES)
    elif piece == "pose":
        b.update_ee_pose(1.0, np.array([0.0, np.inf, 1.0]), QUAT)
    else:
        b.update_object(1.0, np.full(10, np.nan))
    res = b.build(1.0)
    assert not res.ok and res.obs is None and "non-finite" in res.reason


def test_malformed_pieces_rejected_with_shape() -> None:
    b = filled(t=1.0)
    b.update_object(1.0, np.zeros(9))
    res = b.build(1.0)
    assert not res.ok and "object has shape (9,), expected (10,)" in res.reason
    b.update_object(1.0, OBJ)
    b.update_ee_pose(1.0, POS, np.array([0.0, 0.0, 0.0, 0.0]))  # zeroed orientation
    res = b.build(1.0)
    assert not res.ok and "unit quaternion" in res.reason
    b.update_ee_pose(1.0, POS, QUAT)
    b.update_joint_state(1.0, np.array([0.0]), NAMES)  # fewer positions than names
    assert "positions" in b.build(1.0).reason


def test_reset_and_partial_specs() -> None:
    b = filled(t=1.0)
    b.reset()
    assert not b.build(1.0).ok
    proprio_only = ObsSpec((ObsKey("robot0_eef_pos", 3), ObsKey("robot0_gripper_qpos", 2)))
    b = ObservationBuilder(proprio_only, 0.2, 0.05)
    assert b.required_pieces == ("ee_pose", "joint_state")
    b.update_ee_pose(0.0, POS, QUAT)
    b.update_joint_state(0.0, np.array([0.0, 0.01, 0.02]), NAMES)
    res = b.build(0.0)
    assert res.obs is not None
    np.testing.assert_allclose(res.obs, [0.1, 0.2, 1.0, 0.02, 0.01])


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="cannot fill spec keys"):
        ObservationBuilder(ObsSpec((ObsKey("robot0_joint_vel", 7),)), 0.2, 0.05)
    with pytest.raises(ValueError, match="arm_joint_names must be 7 distinct names"):
        ObservationBuilder(ObsSpec((ObsKey("robot0_joint_pos", 7),)), 0.2, 0.05)
    with pytest.raises(ValueError, match="max_age_s"):
        ObservationBuilder(SPEC, 0.0, 0.05)
    with pytest.raises(ValueError, match="max_skew_s"):
        ObservationBuilder(SPEC, 0.2, -1.0)
    with pytest.raises(ValueError, match="finger_joint_names"):
        ObservationBuilder(SPEC, 0.2, 0.05, finger_joint_names=("a", "a"))
    with pytest.raises(ValueError, match="finger_signs"):
        ObservationBuilder(SPEC, 0.2, 0.05, finger_signs=(1.0, 0.5))


def test_pieces_are_copied_so_reused_buffers_cannot_change_them() -> None:
    b = filled(t=1.0)
    buf = OBJ.copy()
    b.update_object(1.0, buf)
    buf[:] = 99.0  # a callback reusing its conversion buffer
    res = b.build(1.0)
    assert res.obs is not None
    np.testing.assert_array_equal(SPEC.unflatten(res.obs)["object"], OBJ.astype(np.float32))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 1e39 -> float32 inf, as before
@pytest.mark.parametrize("spec", [SPEC, PROPRIO_ONLY])
def test_the_quick_build_equals_the_checked_one_on_random_pieces(spec: ObsSpec) -> None:
    """build() takes a shortcut when everything is in order; on any mix of missing, stale,
    future, skewed, NaN, huge or malformed pieces it must give what the full checks give."""
    rng = np.random.default_rng(3)
    seen_ok = seen_bad = 0
    for _ in range(2000):
        b = ObservationBuilder(spec, max_age_s=0.2, max_skew_s=0.05)
        offsets = [0.0, 0.03, 0.1, 0.3, -0.3, np.nan]
        t = 1.0 + rng.choice(offsets, size=3, p=[0.88, 0.04, 0.02, 0.02, 0.02, 0.02])
        values = [np.array([0.5, -0.03, 0.04]), POS.copy(), OBJ.copy()]
        for v in values:
            if rng.random() < 0.05:
                v[rng.integers(len(v))] = rng.choice([np.nan, np.inf, 1e39])  # 1e39: finite in float64 only
        # a bad quaternion is refused even by a spec that does not use it (as the full checks do)
        quat = QUAT if rng.random() < 0.9 else rng.choice([np.array([0.0, 0.0, 0.0, 0.5]), QUAT * np.nan])
        if rng.random() < 0.95:
            b.update_joint_state(t[0], values[0], NAMES)
        if rng.random() < 0.95:
            b.update_ee_pose(t[1], values[1], quat)
        if rng.random() < 0.95:
            b.update_object(t[2], values[2] if rng.random() < 0.97 else values[2][:4])
        now = 1.0 + rng.choice([0.0, 0.05, 0.25], p=[0.45, 0.45, 0.1])
        quick, checked = b.build(now), b._checked_build(now)
        assert (quick.ok, quick.reason, quick.stamp) == (checked.ok, checked.reason, checked.stamp)
        if checked.ok:
            np.testing.assert_array_equal(quick.obs, checked.obs)
        seen_ok += checked.ok
        seen_bad += not checked.ok
    assert seen_ok > 300 and seen_bad > 300  # both paths were exercised
