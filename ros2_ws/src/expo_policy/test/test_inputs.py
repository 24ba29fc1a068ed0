"""Observation inputs: latest vs exactly synchronized pieces, object vector, frame and shape checks."""

from __future__ import annotations

import numpy as np
from expo_core.spec import task_obs_spec
from expo_policy.inputs import ObservationInputs
from expo_policy.obs_builder import ObservationBuilder
from expo_ros.object_state import object_vector

SPEC = task_obs_spec("lift")
NAMES = ["panda_joint1", "panda_finger_joint1", "panda_finger_joint2"]
QPOS = np.array([0.3, 0.04, -0.04])
EE, EQ = np.array([-0.1, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 0.0])
CUBE = (np.array([[0.0, 0.02, 0.83]]), np.array([[0.0, 0.0, 0.0, 1.0]]))
T = 1_000_000_000  # 1 s in ns


def make() -> ObservationInputs:
    return ObservationInputs("lift", ObservationBuilder(SPEC, max_age_s=0.25, max_skew_s=0.1))


def add_all(inp: ObservationInputs, ns: int, frame: str = "world", obj_frame: str = "world", cube=CUBE):
    inp.add("joint_states", ns, (NAMES, QPOS))
    inp.add("ee_pose", ns, (EE, EQ), frame)
    return inp.add("object_poses", ns, cube, obj_frame)


def test_complete_set_builds_the_spec_vector() -> None:
    inp = make()
    pieces = add_all(inp, T)
    assert pieces is not None and set(pieces) == {"joint_states", "ee_pose", "object_poses"}
    res = inp.build(pieces, now_s=1.05)
    assert res.ok, res.reason
    want = SPEC.flatten(
        {
            "robot0_eef_pos": EE,
            "robot0_eef_quat": EQ,
            "robot0_gripper_qpos": QPOS[1:],
            "object": object_vector("lift", CUBE, EE, EQ),
        }
    )
    np.testing.assert_array_equal(res.obs, want)
    assert inp.stamp_ns(pieces) == T and inp.frame("ee_pose") == "world"


def test_latest_pieces_build_across_stamps_and_sets_need_equal_stamps() -> None:
    inp = make()
    assert inp.add("joint_states", T, (NAMES, QPOS)) is None
    assert inp.add("ee_pose", T + 10_000_000, (EE, EQ)) is None
    assert inp.add("object_poses", T + 20_000_000, CUBE) is None  # no common stamp: no set
    res = inp.build(inp.latest, now_s=1.05)
    assert res.ok and inp.stamp_ns(inp.latest) == T  # the oldest piece
    assert not inp.build(inp.latest, now_s=2.0).ok  # stale by then


def test_joint_state_without_fingers_is_not_ours() -> None:
    inp = make()
    assert inp.accepts_joint_state(NAMES)
    assert not inp.accepts_joint_state(["panda_joint1", "panda_joint2"])


def test_object_frame_mismatch_and_wrong_pose_count_are_reasons() -> None:
    inp = make()
    res = inp.build(add_all(inp, T, obj_frame="camera"), now_s=1.0)
    assert not res.ok and "object_poses unusable: given in frame 'camera', ee_pose in 'world'" in res.reason
    two = (np.zeros((2, 3)), np.tile([0.0, 0.0, 0.0, 1.0], (2, 1)))
    res = inp.build(add_all(inp, 2 * T, cube=two), now_s=2.0)
    assert not res.ok and "needs 1 object pose" in res.reason


def test_non_finite_and_missing_pieces_are_reported() -> None:
    inp = make()
    inp.add("joint_states", T, (NAMES, QPOS))
    inp.add("ee_pose", T, (np.array([np.nan, 0.0, 1.0]), EQ))
    pieces = inp.add("object_poses", T, CUBE)
    res = inp.build(pieces, now_s=1.0)
    assert not res.ok and "non-finite" in res.reason and "ee_pose" in res.reason
    inp.reset()
    assert inp.latest == {} and "missing" in inp.build(inp.latest, now_s=1.0).reason
