"""Object poses + end-effector pose -> robomimic "object" vector, checked against robosuite itself."""

from __future__ import annotations

import numpy as np
import pytest
from expo_core.spec import TASK_OBJECT_DIMS
from expo_ros.object_state import (
    TASK_OBJECT_LAYOUTS,
    num_object_poses,
    object_poses_from_vector,
    object_vector,
    pose_in_frame,
    quat_multiply,
    quat_rotate,
)

RNG = np.random.default_rng(0)


def _unit_quats(n: int) -> np.ndarray:
    q = RNG.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _rotmat(q: np.ndarray) -> np.ndarray:
    """Reference: rotation matrix of a unit x, y, z, w quaternion (textbook formula)."""
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_layouts_match_the_shared_spec_dims() -> None:
    assert set(TASK_OBJECT_LAYOUTS) == set(TASK_OBJECT_DIMS)
    for task, dim in TASK_OBJECT_DIMS.items():
        n = num_object_poses(task)
        vec = object_vector(
            task, (RNG.normal(size=(n, 3)), _unit_quats(n)), RNG.normal(size=3), _unit_quats(1)[0]
        )
        assert vec.shape == (dim,) and np.all(np.isfinite(vec))


def test_quaternion_helpers_match_rotation_matrices() -> None:
    a, b = _unit_quats(2)
    v = RNG.normal(size=3)
    np.testing.assert_allclose(quat_rotate(a, v), _rotmat(a) @ v, atol=1e-12)
    np.testing.assert_allclose(_rotmat(quat_multiply(a, b)), _rotmat(a) @ _rotmat(b), atol=1e-12)


def test_pose_in_frame_is_the_inverse_transform() -> None:
    p, f = RNG.normal(size=3), RNG.normal(size=3)
    q, fq = _unit_quats(2)
    rel_p, rel_q = pose_in_frame(p, q, f, fq)
    np.testing.assert_allclose(rel_p, _rotmat(fq).T @ (p - f), atol=1e-12)
    np.testing.assert_allclose(_rotmat(rel_q), _rotmat(fq).T @ _rotmat(q), atol=1e-12)
    assert rel_q[3] >= 0.0  # robosuite's mat2quat sign convention
    # Unnormalized inputs are normalized first, as robosuite's quat2mat does.
    np.testing.assert_allclose(pose_in_frame(p, 3 * q, f, 0.5 * fq)[1], rel_q, atol=1e-12)


def test_lift_and_stack_layouts_with_their_sign_conventions() -> None:
    ee, cube, cq = np.array([0.1, 0.0, 1.0]), np.array([0.0, 0.05, 0.82]), np.array([0, 0, 0.6, 0.8])
    lift = object_vector("lift", (cube[None], cq[None]), ee, np.array([0, 0, 0, 1.0]))
    np.testing.assert_allclose(lift, np.concatenate([cube, cq, ee - cube]))  # eef - cube
    b = cube + [0.1, 0.0, 0.0]
    stack = object_vector("stack", (np.stack([cube, b]), np.stack([cq, cq])), ee, np.array([0, 0, 0, 1.0]))
    np.testing.assert_allclose(stack[14:], np.concatenate([cube - ee, b - ee, b - cube]))  # cube - eef


@pytest.mark.parametrize("task", sorted(TASK_OBJECT_DIMS))
def test_poses_from_vector_round_trip(task: str) -> None:
    n = num_object_poses(task)
    poses = (RNG.normal(size=(n, 3)), _unit_quats(n))
    ee, eq = RNG.normal(size=3), _unit_quats(1)[0]
    vec = object_vector(task, poses, ee, eq)
    back = object_poses_from_vector(task, vec)
    np.testing.assert_allclose(back[0], poses[0])
    np.testing.assert_allclose(back[1], poses[1])
    np.testing.assert_allclose(object_vector(task, back, ee, eq), vec)


def test_wrong_pose_count_and_unknown_task_raise() -> None:
    with pytest.raises(ValueError, match="needs 1 object pose"):
        object_vector("lift", (np.zeros((0, 3)), np.zeros((0, 4))), np.zeros(3), np.array([0, 0, 0, 1.0]))
    with pytest.raises(ValueError, match="no object layout"):
        object_vector("pour", (np.zeros((1, 3)), np.zeros((1, 4))), np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="10 values"):
        object_poses_from_vector("lift", np.zeros(9))


@pytest.mark.parametrize(
    ("task", "env_name", "obj"), [("lift", "Lift", "cube"), ("can", "PickPlaceCan", "Can")]
)
def test_matches_robosuite_object_state(task: str, env_name: str, obj: str) -> None:
    """Ground truth: robosuite 1.4's own object-state after a few random steps."""
    suite = pytest.importorskip("robosuite")
    env = suite.make(
        env_name,
        robots="Panda",
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        use_object_obs=True,
        control_freq=20,
    )
    try:
        env.reset()
        rng = np.random.default_rng(1)
        for _ in range(5):
            obs, *_ = env.step(rng.uniform(-1, 1, env.action_dim))
        poses = (obs[f"{obj}_pos"][None], obs[f"{obj}_quat"][None])
        got = object_vector(task, poses, obs["robot0_eef_pos"], obs["robot0_eef_quat"])
        # robosuite's mat2quat works in float32, hence the tolerance.
        np.testing.assert_allclose(got, obs["object-state"], atol=2e-5)
    finally:
        env.close()
