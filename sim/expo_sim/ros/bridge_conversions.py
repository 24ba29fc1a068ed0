"""What the sim bridge publishes, as pure functions: env state -> numpy snapshot -> messages.

The encoders are the policy's own (:mod:`expo_ros.conversions`, one encode/decode pair per
channel) and the object poses are picked out of robosuite's object vector with
:func:`expo_ros.object_state.object_poses_from_vector`, the inverse of the ``object_vector``
the policy rebuilds the observation with. So the low-dim observation the policy assembles from
these messages is the env's observation, by construction (a test checks it bit for bit up to
float32).

What goes where (robosuite world frame, meters, quaternions x, y, z, w as robosuite gives them):

- ``joint_states``: 7 arm joints [rad] read from the MuJoCo state (robosuite's observations only
  carry their sin/cos), then the 2 fingers [m] as ``robot0_gripper_qpos`` (finger 2 is
  negative when open) times the ``finger_signs`` parameter (default 1, 1: as is; 1, -1: both
  positive, as franka_ros2 reports them); velocities alike.
- ``ee_pose``: ``robot0_eef_pos`` and ``robot0_eef_quat``.
- ``object_poses``: the task's objects in ``expo_ros.object_state.TASK_OBJECT_LAYOUTS`` order.
- ``image_raw``: the camera image, upright (row 0 = top), rgb8, frame_id = the camera name.
- pixel mode: ``<camera>/image_raw`` per camera (the env's ``<camera>_image``, upright, rgb8,
  frame_id = the camera name) and ``ee_pose_base``: ``robot0_base_to_eef_pos`` /
  ``robot0_base_to_eef_quat``, the end effector in the robot's base frame
  (:mod:`expo_sim.envs.frames`), as a real Franka reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from expo_interfaces.msg import EnvFeedback
from expo_ros import conversions as cv
from expo_ros.object_state import object_poses_from_vector
from expo_ros.transitions import Feedback
from geometry_msgs.msg import PoseArray, PoseStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from expo_sim.envs.robosuite_env import RobomimicEnv

_NS = 1_000_000_000


@dataclass(frozen=True)
class SimSnapshot:
    """One observation of the simulated scene.

    Attributes:
        joint_pos: (9,) float64, 7 arm joints [rad] then 2 fingers [m].
        joint_vel: (9,) float64 [rad/s, m/s], same order.
        ee_pos: (3,) end-effector position [m], world frame.
        ee_quat: (4,) end-effector orientation x, y, z, w.
        object_pos: (n, 3) object positions [m]; object_quat: (n, 4) x, y, z, w.
        image: (H, W, 3) uint8 upright camera image, or None without a camera.
        images: camera name -> (H, W, 3) uint8 upright frame (pixel mode; empty otherwise).
        ee_pos_base, ee_quat_base: the end effector in the robot's base frame (pixel mode).
    """

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    ee_pos: np.ndarray
    ee_quat: np.ndarray
    object_pos: np.ndarray
    object_quat: np.ndarray
    image: np.ndarray | None = None
    images: dict[str, np.ndarray] = field(default_factory=dict)
    ee_pos_base: np.ndarray | None = None
    ee_quat_base: np.ndarray | None = None


def snapshot_from_env(
    env: RobomimicEnv,
    obs_dict: dict[str, Any],
    camera: str | None = None,
    cameras: tuple[str, ...] = (),
    frames: bool = True,
) -> SimSnapshot:
    """The scene after ``env.reset``/``env.step``; ``obs_dict`` is that call's ``info["obs_dict"]``.
    ``camera``: the single ``image_raw`` camera; ``cameras``: pixel mode's cameras (their frames
    and the base-frame end-effector pose are taken too); ``frames`` False: no frame is taken (an
    env whose frames are deferred renders them on demand, ``RobomimicEnv.render_frame``)."""
    robot = env.robosuite_env.robots[0]
    data = env.robosuite_env.sim.data
    # robosuite's own joint observables index the MuJoCo state this way.
    arm_q = np.asarray(data.qpos[robot._ref_joint_pos_indexes], dtype=np.float64)
    arm_qd = np.asarray(data.qvel[robot._ref_joint_vel_indexes], dtype=np.float64)
    obj_pos, obj_quat = object_poses_from_vector(env.task, obs_dict["object"])
    return SimSnapshot(
        joint_pos=np.concatenate([arm_q, np.asarray(obs_dict["robot0_gripper_qpos"], dtype=np.float64)]),
        joint_vel=np.concatenate([arm_qd, np.asarray(obs_dict["robot0_gripper_qvel"], dtype=np.float64)]),
        ee_pos=np.asarray(obs_dict["robot0_eef_pos"], dtype=np.float64),
        ee_quat=np.asarray(obs_dict["robot0_eef_quat"], dtype=np.float64),
        object_pos=obj_pos,
        object_quat=obj_quat,
        image=obs_dict[f"{camera}_image"] if camera and frames else None,
        images={c: obs_dict[f"{c}_image"] for c in cameras} if frames else {},
        ee_pos_base=np.asarray(obs_dict["robot0_base_to_eef_pos"], dtype=np.float64) if cameras else None,
        ee_quat_base=np.asarray(obs_dict["robot0_base_to_eef_quat"], dtype=np.float64) if cameras else None,
    )


@dataclass(frozen=True)
class ObservationMsgs:
    """One synchronized observation set: every header carries the same stamp. ``camera_images``:
    camera name -> its Image (pixel mode); ``ee_pose_base``: the base-frame pose (pixel mode)."""

    joint_states: JointState
    ee_pose: PoseStamped
    object_poses: PoseArray
    image: Image | None
    camera_images: dict[str, Image] = field(default_factory=dict)
    ee_pose_base: PoseStamped | None = None


def observation_msgs(
    snap: SimSnapshot,
    ns: int,
    joint_names: tuple[str, ...],
    frame_id: str,
    camera: str | None = None,
    finger_signs: tuple[float, float] = (1.0, 1.0),
    base_frame_id: str = "robot0_base",
) -> ObservationMsgs:
    """Messages of one snapshot stamped ``ns`` [ns on the node clock]; ``finger_signs`` multiply
    the two finger positions and velocities (``(1.0, -1.0)``: both positive, as franka_ros2);
    ``base_frame_id``: the header frame of ``ee_pose_base`` (pixel mode)."""
    if len(joint_names) != snap.joint_pos.shape[0]:
        raise ValueError(f"{len(joint_names)} joint names for {snap.joint_pos.shape[0]} joint positions")
    signs = np.ones(snap.joint_pos.shape[0])
    signs[-2:] = finger_signs
    js = cv.joint_state_msg(joint_names, snap.joint_pos * signs, ns)
    js.velocity = (snap.joint_vel * signs).tolist()
    image = None
    if snap.image is not None:
        image = cv.image_msg(snap.image, ns, camera or "camera", "rgb8")
    ee_base = None
    if snap.ee_pos_base is not None:
        ee_base = cv.pose_stamped_msg(snap.ee_pos_base, snap.ee_quat_base, ns, base_frame_id)
    return ObservationMsgs(
        joint_states=js,
        ee_pose=cv.pose_stamped_msg(snap.ee_pos, snap.ee_quat, ns, frame_id),
        object_poses=cv.pose_array_msg(snap.object_pos, snap.object_quat, ns, frame_id),
        image=image,
        camera_images={c: cv.image_msg(px, ns, c, "rgb8") for c, px in snap.images.items()},
        ee_pose_base=ee_base,
    )


def feedback_msg(
    ns: int,
    reward: float,
    terminated: bool,
    truncated: bool,
    success: bool,
    episode: int,
    step: int,
    applied_action: np.ndarray | None = None,
) -> EnvFeedback:
    """EnvFeedback of one step stamped ``ns`` (the post-step observation's stamp); ``episode``
    and ``step`` echo the ActionCommand that caused the step; ``applied_action``: what the
    bridge applied instead of that command's action (a plan row or blend), None if it did not."""
    fb = Feedback(
        applied_action=applied_action,
        episode=episode,
        step=step,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        success=success,
        stamp_ns=ns,
    )
    return cv.env_feedback_msg(fb)


def clock_msg(ns: int) -> Clock:
    return Clock(clock=Time(sec=ns // _NS, nanosec=ns % _NS))
