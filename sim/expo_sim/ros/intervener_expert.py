"""The scripted intervener without ROS: the task's expert plus the takeover rule, per observation.

:class:`ScriptedIntervener` answers one observation (the bridge's end-effector and object poses,
world frame) with the expert's action and whether the expert acts
(:mod:`expo_sim.ros.intervener_rule`). The expert is ``expo_sim.envs.scripted.make_expert`` with a
noise-free style; its phase machine advances only while it acts, and while the policy acts a
shallow copy says what it would do (the distance rule compares that with the policy's action).
A first takeover that finds the object already in a closed gripper (lift and can: grip site
within ``HELD_WITHIN_M`` of the object) starts the expert at its ``lift`` phase with the current
orientation, since re-approaching would open the gripper. Used by
:mod:`expo_sim.ros.intervener_node` and by the closed-loop test without ROS.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from expo_ros.object_state import TASK_OBJECT_LAYOUTS
from robosuite.utils import transform_utils as T

from expo_sim.envs.scripted import DemoStyle, WaypointExpert, make_expert

from .intervener_rule import IntervenerConfig, InterventionRule

#: Grip-site to object distance [m] under which a closed gripper is taken to hold the object.
HELD_WITHIN_M = {"lift": 0.03, "can": 0.05}


def expert_obs(task: str, ee_pos: np.ndarray, ee_quat: np.ndarray, poses: tuple) -> dict[str, np.ndarray]:
    """The robomimic observation keys the scripted experts read, from the bridge's poses
    (``poses``: positions (n, 3), quaternions (n, 4) x y z w, in TASK_OBJECT_LAYOUTS order)."""
    obs = {
        "robot0_eef_pos": np.asarray(ee_pos, np.float64),
        "robot0_eef_quat": np.asarray(ee_quat, np.float64),
    }
    positions, quats = poses
    for i, name in enumerate(TASK_OBJECT_LAYOUTS[task][1]):
        obs[f"{name}_pos"] = np.asarray(positions[i], np.float64)
        obs[f"{name}_quat"] = np.asarray(quats[i], np.float64)
    return obs


def start_holding(expert: WaypointExpert, task: str, obs: dict[str, np.ndarray], gripper: float) -> bool:
    """Skip a fresh expert to its ``lift`` phase when the object is in the closed gripper
    (``gripper`` > 0: the last command sent); returns whether it did."""
    if task not in HELD_WITHIN_M or expert.phase_idx != 0 or expert.phase_steps != 0 or gripper <= 0:
        return False
    obj = obs[f"{TASK_OBJECT_LAYOUTS[task][1][0]}_pos"]
    if np.linalg.norm(obs["robot0_eef_pos"] - obj) > HELD_WITHIN_M[task]:
        return False
    expert.phase_idx = expert.phases.index("lift")
    expert.R_target = T.quat2mat(obs["robot0_eef_quat"])
    return True


@dataclass(frozen=True)
class Answer:
    """``engaged``: the expert acts; ``action`` (7,) float32: the expert's action (what it would
    do, when not engaged); ``event``: a takeover or hand-back, '' otherwise."""

    engaged: bool
    action: np.ndarray
    event: str = ""


class ScriptedIntervener:
    """Expert + rule for one actor; ``env`` is the task's RobomimicEnv (scene constants)."""

    def __init__(self, env: Any, task: str, cfg: IntervenerConfig | None = None, seed: int = 0) -> None:
        self.env, self.task, self.seed = env, task, int(seed)
        self.rule = InterventionRule(cfg)
        self.expert: WaypointExpert | None = None
        self.episode = -1
        self.new_episode()

    def new_episode(self) -> None:
        """The next episode: a fresh expert (randomness ``seed + episode``), a fresh budget."""
        self.episode += 1
        rng = np.random.default_rng(self.seed + self.episode)
        self.expert = make_expert(self.env, DemoStyle("scripted", noise_std=0.0), rng)
        self.rule.reset()

    def answer(
        self, ee_pos: np.ndarray, ee_quat: np.ndarray, poses: tuple, policy_action: np.ndarray | None
    ) -> Answer:
        """One observation; ``policy_action``: what was sent for the previous one (None: unknown)."""
        obs = expert_obs(self.task, ee_pos, ee_quat, poses)
        shadow = copy.copy(self.expert).act(obs)  # what the expert would do; its script stays put
        decision = self.rule.step(ee_pos, shadow, policy_action, self.expert.done)
        action = shadow
        if decision.engaged:
            if decision.event and policy_action is not None:
                start_holding(self.expert, self.task, obs, float(policy_action[-1]))
            action = self.expert.act(obs)
        return Answer(decision.engaged, np.asarray(action, np.float32), decision.event)
