"""Robot-base-frame proprioception from robosuite's world-frame values (what a real Franka reports).

robosuite 1.4 observes the end effector in the *world* frame of its scene: ``robot0_eef_pos`` is
the grip site (between the fingertips) and ``robot0_eef_quat`` the orientation of the hand body
``robot0_right_hand``, x y z w. franka_ros2 reports poses in the robot's base frame
(``fr3_link0``). The sim's base frame is the arm's root body ``robot0_base``, which coincides
with ``robot0_link0``. Its world pose depends on the task (identity rotation; Lift and Square at
(-0.56, 0, 0.912) m, Can at (-0.5, -0.1, 0.912) m); nothing here assumes it, it is read from
the simulator each step.

The point and orientation: robosuite's hand body ``robot0_right_hand`` is the Franka flange
(0.1065 m along link7's z, rotated -45 deg about it, as the Franka Hand is mounted) and the grip
site lies 0.097 m further along the hand's z axis. franka_ros2's default end-effector frame (the
Franka Hand TCP, NE_T_EE) has the same orientation but lies 0.1034 m from the flange, 6.4 mm
beyond the sim's point: on the arm, configure the EE frame at 0.097 m or shift the reported
position by -0.0064 m along the EE z axis before it reaches the policy.

With the base pose ``(p_b, q_b)`` in the world (``R_b`` the rotation of ``q_b``)::

    robot0_base_to_eef_pos  = R_b^T (eef_pos - p_b)
    robot0_base_to_eef_quat = q_b^-1 * eef_quat        (Hamilton product, x y z w)

The same point and the same body as the world-frame keys, only expressed in another frame; the
quaternion's sign is whatever the product gives (no canonical hemisphere), as robosuite passes
its own quaternions through. Key names follow robosuite 1.5, which observes these directly.

Joint positions ``robot0_joint_pos`` (7, rad) and ``robot0_gripper_qpos`` (2, m: finger 1
positive, finger 2 negative when open) need no frame.
"""

from __future__ import annotations

import numpy as np


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate (= inverse for unit quaternions) of ``(..., 4)`` x y z w quaternions."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of ``(..., 4)`` x y z w quaternions (rotate by b, then by a)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
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


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of one x y z w quaternion (normalized first)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {q.tolist()} has no orientation (norm {n})")
    x, y, z, w = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def world_to_base(
    pos: np.ndarray, quat: np.ndarray, base_pos: np.ndarray, base_quat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A world-frame pose (``pos`` (..., 3) m, ``quat`` (..., 4) x y z w) in the frame of the base
    at ``base_pos`` (3,) / ``base_quat`` (4,) x y z w. Returns float64 ``(pos, quat)``."""
    rot = quat_to_matrix(base_quat)
    p = (np.asarray(pos, dtype=np.float64) - np.asarray(base_pos, dtype=np.float64)) @ rot
    q = quat_multiply(quat_conjugate(np.asarray(base_quat, dtype=np.float64)), quat)
    return p, q
