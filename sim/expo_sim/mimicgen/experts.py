"""Scripted source demonstrators for MimicGen's Stack_D0 and Threading_D0 (tasks ``stack``,
``threading``), in the style of :mod:`expo_sim.envs.scripted`: P-control of the gripper through
object-relative waypoints, with the same :class:`~expo_sim.envs.scripted.DemoStyle` perturbations.

MimicGen multiplies a handful of source demonstrations by replaying each object-centric segment
relative to the object's new pose, so what matters in a source demo is that each segment is
tied to one object and ends where MimicGen's subtask signal says: Stack's segments are "grasp
cube A" (relative to cube A, ends at the ``grasp`` signal) and "place on cube B" (relative to
cube B); Threading's "grasp the needle" (relative to the needle) and "thread it" (relative to
the tripod, which D0 never moves).

Both experts read privileged object poses (observations and, for the needle and the ring,
MuJoCo geoms) and close the loop on the held object, not on the gripper: a target for the
object becomes a gripper target ``eef + (goal - object)``.
"""

from __future__ import annotations

import numpy as np
from robosuite.utils import transform_utils as T

from expo_sim.envs.robosuite_env import RobomimicEnv
from expo_sim.envs.scripted import (
    _R_DOWN,
    DemoStyle,
    Waypoint,
    WaypointExpert,
    _rot_z,
    _wrap,
    _yaw,
)


def _step_toward(current: np.ndarray, goal: np.ndarray, max_step: float) -> np.ndarray:
    """``goal``, or the point ``max_step`` metres from ``current`` toward it (a slow approach)."""
    d = goal - current
    n = float(np.linalg.norm(d))
    return goal if n <= max_step else current + d * (max_step / n)


class StackExpert(WaypointExpert):
    """Stack_D0: grasp cube A square to its faces, lift it over cube B, lower it onto B, let go.

    Success (robosuite's Stack) needs cube A above the table by 4 cm, touching cube B and not
    grasped: the episode ends as the fingers open."""

    phases = ("approach", "descend", "close", "lift", "carry", "lower", "release", "retreat", "linger")
    _CLEARANCE = 0.04  # cube A's bottom above cube B's top while carrying (m)

    def __init__(self, env: RobomimicEnv, style: DemoStyle, rng: np.random.Generator) -> None:
        super().__init__(env, style, rng)
        rs = env.robosuite_env
        self.half_a = float(rs.cubeA.size[2])  # 0.02
        self.half_b = float(rs.cubeB.size[2])  # 0.025
        self.release_fraction = float(rng.uniform(0.2, 0.6))  # early release: along the carry

    def on_phase_start(self, phase: str, obs: dict[str, np.ndarray]) -> None:
        super().on_phase_start(phase, obs)
        if phase == "approach":  # the cube is symmetric under 90 deg yaw
            grip_yaw = _yaw(T.quat2mat(obs["robot0_eef_quat"]))
            cube_yaw = _yaw(T.quat2mat(obs["cubeA_quat"]))
            self.R_target = _rot_z(grip_yaw + _wrap(cube_yaw - grip_yaw, np.pi / 2)) @ _R_DOWN

    def _eef_for_cube(self, obs: dict[str, np.ndarray], goal: np.ndarray) -> np.ndarray:
        return obs["robot0_eef_pos"] + (goal - obs["cubeA_pos"])

    def waypoint(self, phase: str, obs: dict[str, np.ndarray]) -> Waypoint:
        a, b = obs["cubeA_pos"], obs["cubeB_pos"]
        carry_z = b[2] + self.half_b + self._CLEARANCE + self.half_a  # cube A's centre while carrying
        if phase == "approach":
            return Waypoint(a + np.array([0.0, 0.0, 0.08]), -1.0, 0.015, 60, rot_tol=0.08)
        if phase == "descend":
            return Waypoint(
                a + np.array([0.0, 0.0, -0.005 + self.style.grasp_height_offset]), -1.0, 0.008, 40
            )
        if phase == "close":
            return Waypoint(self.anchor, 1.0, None, 10)
        if phase == "lift":
            goal = np.array([a[0], a[1], carry_z])
            return Waypoint(self._eef_for_cube(obs, goal), 1.0, 0.015, 50)
        if phase == "carry":
            gripper = 1.0
            if self.style.early_release:
                start = np.linalg.norm(b[:2] - self.anchor[:2]) or 1e-6
                gripper = -1.0 if 1.0 - np.linalg.norm(b[:2] - a[:2]) / start > self.release_fraction else 1.0
            goal = np.array([b[0], b[1], carry_z])
            return Waypoint(self._eef_for_cube(obs, goal), gripper, 0.008, 100)
        gripper = -1.0 if self.style.early_release else 1.0
        if phase == "lower":
            goal = np.array([b[0], b[1], b[2] + self.half_b + self.half_a + 0.004])
            target = _step_toward(obs["robot0_eef_pos"], self._eef_for_cube(obs, goal), 0.015)
            return Waypoint(target, gripper, 0.005, 50)
        if phase == "release":
            return Waypoint(self.anchor, -1.0, None, 10)
        if phase == "retreat":
            return Waypoint(self.anchor + np.array([0.0, 0.0, 0.08]), -1.0, 0.02, 30)
        return Waypoint(self.anchor, -1.0, None, self.linger_steps)  # linger


class ThreadingExpert(WaypointExpert):
    """Threading_D0: grasp the needle's handle with the fingers across the needle, lift, turn
    the needle to point along the ring's axis, bring its tip in front of the ring, push it
    through slowly.

    Success (MimicGen's Threading) is the needle bar's centre within the ring's half size
    (1.2 cm) of the ring's centre; the ring's hole is 1.6 cm square, the needle 1 cm thick."""

    phases = (
        "approach",
        "descend",
        "close",
        "lift",
        "turn",
        "align",
        "insert",
        "release",
        "retreat",
        "linger",
    )
    _STANDOFF = 0.025  # needle tip in front of the ring before inserting (m)

    def __init__(self, env: RobomimicEnv, style: DemoStyle, rng: np.random.Generator) -> None:
        super().__init__(env, style, rng)
        rs = env.robosuite_env
        model = rs.sim.model
        self._needle_geom = model.geom_name2id(f"{rs.needle.name}_needle")
        self._handle_geom = model.geom_name2id(f"{rs.needle.name}_handle")
        ring = [model.geom_name2id(f"{rs.tripod.name}_ring_{i}") for i in range(rs.tripod.num_ring_geoms)]
        xpos = np.array([rs.sim.data.geom_xpos[g] for g in ring])
        self.ring_center = xpos.mean(axis=0)
        # The ring is a flat square of geoms: its axis is the direction of least spread.
        _, _, vt = np.linalg.svd(xpos - self.ring_center)
        axis = vt[-1]
        # Point the axis from the needle's side of the ring through it.
        if np.dot(self._needle_center() - self.ring_center, axis) > 0:
            axis = -axis
        self.axis = axis / np.linalg.norm(axis)
        self.half_length = float(model.geom_size[self._needle_geom][1])  # 0.06
        self.release_fraction = float(rng.uniform(0.2, 0.8))

    def _needle_center(self) -> np.ndarray:
        return np.array(self.env.robosuite_env.sim.data.geom_xpos[self._needle_geom], dtype=np.float64)

    def _handle(self) -> np.ndarray:
        return np.array(self.env.robosuite_env.sim.data.geom_xpos[self._handle_geom], dtype=np.float64)

    def _needle_dir(self) -> np.ndarray:
        """Unit vector from the handle to the needle's centre (towards the tip)."""
        d = self._needle_center() - self._handle()
        return d / np.linalg.norm(d)

    def on_phase_start(self, phase: str, obs: dict[str, np.ndarray]) -> None:
        super().on_phase_start(phase, obs)
        grip_yaw = _yaw(T.quat2mat(obs["robot0_eef_quat"]))
        d = self._needle_dir()
        needle_yaw = float(np.arctan2(d[1], d[0]))
        if phase == "approach":  # gripper x along the needle: the fingers close across it
            self.R_target = _rot_z(grip_yaw + _wrap(needle_yaw - grip_yaw, np.pi)) @ _R_DOWN
        if phase == "turn":  # the needle along the ring's axis, tip first
            goal_yaw = float(np.arctan2(self.axis[1], self.axis[0]))
            self.R_target = _rot_z(grip_yaw + _wrap(goal_yaw - needle_yaw, 2 * np.pi)) @ _R_DOWN

    def _eef_for_needle(self, obs: dict[str, np.ndarray], goal: np.ndarray) -> np.ndarray:
        return obs["robot0_eef_pos"] + (goal - self._needle_center())

    def waypoint(self, phase: str, obs: dict[str, np.ndarray]) -> Waypoint:
        handle = self._handle()
        carry_z = self.ring_center[2] + 0.03
        if phase == "approach":
            return Waypoint(handle + np.array([0.0, 0.0, 0.08]), -1.0, 0.015, 70, rot_tol=0.06)
        if phase == "descend":
            grasp = handle + np.array([0.0, 0.0, -0.005 + self.style.grasp_height_offset])
            return Waypoint(grasp, -1.0, 0.007, 50)
        if phase == "close":
            return Waypoint(self.anchor, 1.0, None, 10)
        if phase == "lift":
            return Waypoint(np.array([self.anchor[0], self.anchor[1], carry_z]), 1.0, 0.02, 50)
        if phase == "turn":
            return Waypoint(np.array([self.anchor[0], self.anchor[1], carry_z]), 1.0, 0.02, 60, rot_tol=0.04)
        pre = self.ring_center - self.axis * (self.half_length + self._STANDOFF)
        if phase == "align":
            gripper = 1.0
            if self.style.early_release:
                start = np.linalg.norm(pre - self.anchor) or 1e-6
                done = 1.0 - np.linalg.norm(pre - self._needle_center()) / start
                gripper = -1.0 if done > self.release_fraction else 1.0
            return Waypoint(self._eef_for_needle(obs, pre), gripper, 0.003, 120, rot_tol=0.03)
        gripper = -1.0 if self.style.early_release else 1.0
        if phase == "insert":
            goal = self.ring_center + self.axis * 0.005
            target = _step_toward(obs["robot0_eef_pos"], self._eef_for_needle(obs, goal), 0.008)
            return Waypoint(target, gripper, 0.004, 60)
        if phase == "release":
            return Waypoint(self.anchor, -1.0, None, 8)
        if phase == "retreat":
            return Waypoint(self.anchor + np.array([0.0, 0.0, 0.06]), -1.0, 0.02, 30)
        return Waypoint(self.anchor, -1.0, None, self.linger_steps)  # linger


EXPERTS: dict[str, type[WaypointExpert]] = {"stack": StackExpert, "threading": ThreadingExpert}


def make_source_expert(env: RobomimicEnv, style: DemoStyle, rng: np.random.Generator) -> WaypointExpert:
    """The scripted expert for ``env.task`` (``stack`` or ``threading``); ValueError otherwise."""
    if env.task not in EXPERTS:
        raise ValueError(
            f"no MimicGen source demonstrator for task '{env.task}'; available: {sorted(EXPERTS)}"
        )
    return EXPERTS[env.task](env, style, rng)
