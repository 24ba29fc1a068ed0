"""The robomimic "object" observation rebuilt from object poses and the end-effector pose.

Pure numpy, no ROS. On the wire the scene is geometry, not a task-specific float vector: the sim
bridge (ground truth) or a perception node (hardware) publishes the task's object poses as a
``geometry_msgs/PoseArray`` in the ``ee_pose`` frame, in the order listed below. Both sides call
:func:`object_vector` to turn those poses plus the end-effector pose into exactly the vector
robosuite 1.4 computes as ``object-state`` (robomimic's ``object`` key), so training data,
simulator and deployment agree by construction. :func:`object_poses_from_vector` is the inverse
the bridge uses to pick the poses out of robosuite's vector.

Layouts (positions in meters, quaternions x, y, z, w, as robosuite ``convert_quat(.., "xyzw")``):

========  =====  ==========================================================================
task      poses  object vector
========  =====  ==========================================================================
lift      cube   cube_pos(3), cube_quat(4), gripper_to_cube_pos(3) = eef_pos - cube_pos (10)
can       can    Can_pos(3), Can_quat(4), Can_to_robot0_eef_pos(3), Can_to_robot0_eef_quat(4):
                 the can's pose in the end-effector frame, T_eef^-1 T_can (14)
square    nut    SquareNut_pos, SquareNut_quat, then its pose in the end-effector frame (14)
stack     A, B   cubeA_pos, cubeA_quat, cubeB_pos, cubeB_quat, gripper_to_cubeA = cubeA - eef,
                 gripper_to_cubeB = cubeB - eef, cubeA_to_cubeB = cubeB - cubeA (23; MimicGen's
                 Stack_D0 observes exactly robosuite's Stack)
threading needle needle_pos, needle_quat, its pose in the end-effector frame
          tripod (needle_to_robot0_eef_pos, _quat), then the same four for the tripod (28)
========  =====  ==========================================================================

Note the sign conventions differ between tasks (lift: eef - cube, stack: cube - eef); they are
robosuite's, kept as the datasets store them. Relative quaternions follow robosuite's
``mat2quat`` sign choice (w >= 0); object quaternions pass through with the sign given.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from expo_core.spec import TASK_OBJECT_DIMS

Poses = tuple[np.ndarray, np.ndarray]  # positions (n, 3), quaternions (n, 4) x, y, z, w


def _unit(q: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    return q / np.where(n > 0.0, n, 1.0)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate of x, y, z, w quaternions ``(..., 4)`` (the inverse for unit quaternions)."""
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of x, y, z, w quaternions ``(..., 4)``: rotate by b, then a."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)`` (x, y, z, w)."""
    u, w = q[..., :3], q[..., 3:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def pose_in_frame(pos: np.ndarray, quat: np.ndarray, frame_pos: np.ndarray, frame_quat: np.ndarray) -> Poses:
    """Pose ``(pos, quat)`` expressed in the frame ``(frame_pos, frame_quat)``: T_frame^-1 T_pose.

    Both given in the same parent frame; quaternions are normalized first (as robosuite's
    ``quat2mat`` does) and the result's sign is chosen with w >= 0 (robosuite's ``mat2quat``).
    """
    fq_inv = quat_conjugate(_unit(frame_quat))
    rel_pos = quat_rotate(fq_inv, pos - frame_pos)
    rel_quat = quat_multiply(fq_inv, _unit(quat))
    rel_quat = np.where(rel_quat[..., 3:] < 0.0, -rel_quat, rel_quat)
    return rel_pos, rel_quat


def _lift(p: np.ndarray, q: np.ndarray, ee_pos: np.ndarray, ee_quat: np.ndarray) -> np.ndarray:
    return np.concatenate([p[0], q[0], ee_pos - p[0]])


def _single_in_eef(p: np.ndarray, q: np.ndarray, ee_pos: np.ndarray, ee_quat: np.ndarray) -> np.ndarray:
    rel_pos, rel_quat = pose_in_frame(p[0], q[0], ee_pos, ee_quat)
    return np.concatenate([p[0], q[0], rel_pos, rel_quat])


def _stack(p: np.ndarray, q: np.ndarray, ee_pos: np.ndarray, ee_quat: np.ndarray) -> np.ndarray:
    return np.concatenate([p[0], q[0], p[1], q[1], p[0] - ee_pos, p[1] - ee_pos, p[1] - p[0]])


def _two_in_eef(p: np.ndarray, q: np.ndarray, ee_pos: np.ndarray, ee_quat: np.ndarray) -> np.ndarray:
    return np.concatenate([_single_in_eef(p[i : i + 1], q[i : i + 1], ee_pos, ee_quat) for i in range(2)])


_Layout = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

#: task -> (number of object poses on the wire, their names in PoseArray order, the mapping).
TASK_OBJECT_LAYOUTS: dict[str, tuple[int, tuple[str, ...], _Layout]] = {
    "lift": (1, ("cube",), _lift),
    "can": (1, ("Can",), _single_in_eef),
    "square": (1, ("SquareNut",), _single_in_eef),
    "stack": (2, ("cubeA", "cubeB"), _stack),
    "threading": (2, ("needle", "tripod"), _two_in_eef),
}
#: Where each object's (pos 3, quat 4) starts in the vector, for layouts where they are not back to
#: back from index 0.
_POSE_STARTS: dict[str, tuple[int, ...]] = {"threading": (0, 14)}


def _layout(task: str) -> tuple[int, tuple[str, ...], _Layout]:
    if task not in TASK_OBJECT_LAYOUTS:
        raise ValueError(f"no object layout for task '{task}'; supported: {sorted(TASK_OBJECT_LAYOUTS)}")
    return TASK_OBJECT_LAYOUTS[task]


def num_object_poses(task: str) -> int:
    """How many poses the task's ``object_poses`` PoseArray carries."""
    return _layout(task)[0]


def object_vector(task: str, object_poses: Poses, ee_pos: np.ndarray, ee_quat_xyzw: np.ndarray) -> np.ndarray:
    """The task's robomimic ``object`` vector ``(TASK_OBJECT_DIMS[task],)`` float64.

    Args:
        task: robomimic task name (``lift``, ``can``, ``square``, ``stack``, ``threading``).
        object_poses: positions ``(n, 3)`` in meters and quaternions ``(n, 4)`` x, y, z, w, in the
            order of :data:`TASK_OBJECT_LAYOUTS`, same frame as the end effector.
        ee_pos: ``(3,)`` end-effector position in meters.
        ee_quat_xyzw: ``(4,)`` end-effector orientation (used by can/square, ignored otherwise).

    Raises ValueError on an unknown task or a wrong number/shape of poses. Non-finite inputs are
    not rejected here: they propagate, and the observation builder refuses to act on them.
    """
    n, _, fn = _layout(task)
    pos = np.asarray(object_poses[0], dtype=np.float64).reshape(-1, 3)
    quat = np.asarray(object_poses[1], dtype=np.float64).reshape(-1, 4)
    if pos.shape[0] != n or quat.shape[0] != n:
        raise ValueError(
            f"task '{task}' needs {n} object pose(s) ({', '.join(_layout(task)[1])}), "
            f"got {pos.shape[0]} positions and {quat.shape[0]} orientations"
        )
    ee_p = np.asarray(ee_pos, dtype=np.float64).reshape(3)
    ee_q = np.asarray(ee_quat_xyzw, dtype=np.float64).reshape(4)
    return fn(pos, quat, ee_p, ee_q)


def object_poses_from_vector(task: str, vector: np.ndarray) -> Poses:
    """The object poses contained in a robomimic ``object`` vector (what the bridge publishes).

    Returns positions ``(n, 3)`` and quaternions ``(n, 4)`` x, y, z, w, float64.
    """
    n = _layout(task)[0]
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    if v.shape != (TASK_OBJECT_DIMS[task],):
        raise ValueError(f"task '{task}' object vector has {TASK_OBJECT_DIMS[task]} values, got {v.shape[0]}")
    starts = _POSE_STARTS.get(task, range(0, 7 * n, 7))  # (pos 3, quat 4) per object
    return np.stack([v[s : s + 3] for s in starts]), np.stack([v[s + 3 : s + 7] for s in starts])
