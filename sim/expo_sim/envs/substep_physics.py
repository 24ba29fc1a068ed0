"""Sub-stepped control periods: a robomimic env advanced in chunks, so an action takes effect at
the chunk where it arrives instead of at the next 50 ms boundary. Pure simulation, no ROS.

robosuite's ``env.step(action)`` runs one control period (50 ms at 20 Hz) as 25 MuJoCo steps of
2 ms; on the first it sets the OSC controller's goal from the action (``policy_step=True``), on
every step it recomputes the torques toward that goal. :class:`SubstepPhysics` runs the same
25 steps in ``chunks`` equal groups (5 by default: 10 ms each), one group per call of
:meth:`SubstepPhysics.chunk`, so the sim bridge can spread a period over wall time and look for
new commands between groups:

- a command handed to :meth:`SubstepPhysics.set_action` sets the controller's goal at the next
  MuJoCo step (``policy_step=True`` there), exactly as robosuite does at a period start; its
  pose delta is relative to the pose at that moment, as on a robot that applies a delta when it
  receives it;
- while no new command arrives the controller keeps its goal (``policy_step=False``), as franka's
  impedance controller keeps its last equilibrium; the gripper keeps its last command;
- the last chunk of a period goes through the env's own ``step`` (which counts the step, checks
  success and the horizon and builds the observation), with robosuite's physics loop replaced
  for that one call by the chunk's MuJoCo steps plus robosuite's end-of-step bookkeeping
  (``timestep``, ``cur_time``, ``_post_action``, ``_get_observations``: the lines that follow
  the loop in robosuite 1.4's ``MujocoEnv.step``).

With one command set at the start of a period and none during it, a sub-stepped period is
bit-for-bit ``env.step`` (a test checks it); ``chunks=1`` is the lumped period (an action
waits for the next boundary). This reaches into robosuite's step internals (pinned 1.4.1:
``_pre_action``, ``_update_observables``, ``_post_action``, ``_get_observations``); the parity
test fails if a robosuite update changes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from expo_sim.envs.robosuite_env import RobomimicEnv

StepOutput = tuple[Any, float, bool, bool, dict[str, Any]]  # RobomimicEnv.step's return


class SubstepPhysics:
    """One env's control periods in ``chunks`` parts; ``chunks`` must divide the MuJoCo steps
    per period (25 for robomimic's 20 Hz control with robosuite's 2 ms steps: 1, 5 or 25)."""

    def __init__(self, env: RobomimicEnv, chunks: int) -> None:
        rs = env.robosuite_env
        total = round(rs.control_timestep / rs.model_timestep)
        if chunks < 1 or total % chunks:
            divisors = [d for d in range(1, total + 1) if total % d == 0]
            raise ValueError(f"must divide the {total} MuJoCo steps of a control period: one of {divisors}")
        self.env = env
        self.chunks = int(chunks)
        self.steps_per_chunk = total // self.chunks
        self.index = 0  # chunk of the current period that runs next
        self._action = np.zeros(env.action_space.shape[0])  # the command in effect (zero: keep still)
        self._new_goal = False  # set the controller's goal at the next MuJoCo step
        self._anchor: tuple[np.ndarray, np.ndarray] | None = None  # pose the new goal is relative to

    @property
    def action(self) -> np.ndarray:
        """The command in effect (a copy)."""
        return self._action.copy()

    def reset(self) -> None:
        """After ``env.reset``: the period restarts and the controller holds the reset pose."""
        self.index = 0
        self._action = np.zeros_like(self._action)
        self._new_goal = False
        self._anchor = None

    def anchor_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The end effector's world position (3,) and rotation matrix (3, 3) of the grip site, as
        the simulator's kinematics hold them now (what ``set_action(..., anchor=)`` takes). After
        a period this is the pose its observation reports (robosuite computes both before the last
        MuJoCo step integrates, so the controller's own reading is 2 ms of motion later)."""
        rs = self.env.robosuite_env
        site = rs.robots[0].eef_site_id
        pos = np.array(rs.sim.data.site_xpos[site], dtype=np.float64)
        return pos, np.array(rs.sim.data.site_xmat[site], dtype=np.float64).reshape(3, 3)

    def set_action(self, action: np.ndarray, anchor: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """The command that takes effect at the next MuJoCo step (checked and clipped by the env).

        ``anchor``: the end effector's (position (3,), rotation matrix (3, 3)) when the action was
        decided, from :meth:`anchor_pose` at that time. With it the pose delta is applied to that
        pose (goal = anchor + delta) instead of the pose at the moment the command takes effect;
        see :func:`anchored_goal`. None: robosuite's own rule (relative to the pose now)."""
        self._action = self.env.check_action(action)
        self._new_goal = True
        self._anchor = anchor

    def chunk(self) -> StepOutput | None:
        """Advance one chunk of physics; at the end of a period returns what ``env.step`` returns."""
        if self.index < self.chunks - 1:
            self._mujoco_steps(self.steps_per_chunk)
            self.index += 1
            return None
        rs = self.env.robosuite_env
        rs.step = self._last_chunk  # an instance attribute: shadows the class's step for one call
        try:
            out = self.env.step(self._action)
        finally:
            del rs.step
        self.index = 0
        return out

    def _mujoco_steps(self, n: int) -> None:
        """robosuite's physics loop (``MujocoEnv.step``) for ``n`` MuJoCo steps."""
        rs = self.env.robosuite_env
        for _ in range(n):
            rs.sim.forward()
            if self._new_goal and self._anchor is not None:
                with anchored_goal(rs.robots[0].controller, *self._anchor):
                    rs._pre_action(self._action, True)
            else:
                rs._pre_action(self._action, self._new_goal)
            rs.sim.step()
            rs._update_observables()
            self._new_goal = False

    def _last_chunk(self, action: np.ndarray) -> tuple[Any, float, bool, dict]:
        """Stands in for robosuite's ``step`` on a period's last chunk: the chunk's physics, then
        the bookkeeping that follows the loop in ``MujocoEnv.step``."""
        rs = self.env.robosuite_env
        if rs.done:
            raise ValueError("executing action in terminated episode")
        rs.timestep += 1
        self._mujoco_steps(self.steps_per_chunk)
        rs.cur_time += rs.control_timestep
        reward, done, info = rs._post_action(action)
        return rs._get_observations(), reward, done, info

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The end effector now, (position (3,), quaternion x, y, z, w), computed as robosuite's
        ``robot0_eef_pos`` / ``robot0_eef_quat`` observables compute it (for poses between the
        period ends, where those observables are not sampled)."""
        from robosuite.utils import transform_utils as T

        rs = self.env.robosuite_env
        robot = rs.robots[0]
        pos = np.array(rs.sim.data.site_xpos[robot.eef_site_id], dtype=np.float64)
        quat = T.convert_quat(rs.sim.data.get_body_xquat(robot.robot_model.eef_name), to="xyzw")
        return pos, np.asarray(quat, dtype=np.float64)


@contextmanager
def anchored_goal(controller: Any, pos: np.ndarray, rot: np.ndarray) -> Iterator[None]:
    """While active, the OSC ``controller``'s ``set_goal`` applies its pose delta to the given
    pose instead of the one it measures: goal position = ``pos`` + the scaled position delta, goal
    orientation = the delta rotation times ``rot`` (robosuite's ``set_goal_orientation``). A
    delayed command then asks for the pose its policy chose from the observation, not that pose
    shifted by however far the arm moved while the command was on its way (the overshoot of a
    delta applied late). An action with no rotation keeps robosuite's rule (the previous
    orientation goal stays). Torques of the same MuJoCo step already use the anchored goal."""
    original = controller.set_goal

    def set_goal(action: Any, *args: Any, **kwargs: Any) -> None:
        before = controller.goal_ori
        original(action, *args, **kwargs)
        controller.goal_pos = np.asarray(pos) + (controller.goal_pos - controller.ee_pos)
        if controller.goal_ori is not before:  # a rotation delta set a new goal from ee_ori_mat
            controller.goal_ori = controller.goal_ori @ controller.ee_ori_mat.T @ np.asarray(rot)

    controller.set_goal = set_goal  # an instance attribute: shadows the class's method
    try:
        yield
    finally:
        del controller.set_goal
