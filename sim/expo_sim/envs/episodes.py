"""Recording scripted demonstrations as robomimic-shaped episodes.

An :class:`Episode` holds exactly what robomimic stores per demo: MuJoCo states before each
action, the actions applied, rewards, dones, and obs / next_obs per key (``env.record_keys``:
world- and base-frame low-dim keys, and ``<camera>_image`` frames when the env renders cameras).
Episode ``i`` of a set seeded ``seed`` draws its object placement, demonstration style and noise
from ``SeedSequence([seed, i])``, so any single demo can be regenerated on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from expo_sim.envs.robosuite_env import RobomimicEnv
from expo_sim.envs.scripted import DemoStyle, make_expert, sample_style

log = logging.getLogger(__name__)


@dataclass
class Episode:
    """One recorded demonstration of length T.

    Attributes:
        states: (T, S) float64 flattened MuJoCo state before each action.
        actions: (T, 7) float64 actions actually applied (clipped to [-1, 1]).
        rewards: (T,) float64 sparse reward (1 on the success step).
        dones: (T,) int64, 1 only at the final step of a successful demo.
        obs / next_obs: key -> robomimic observations before/after each step: low-dim keys
            (T, d) float64, camera keys ``<camera>_image`` (T, H, W, 3) uint8 upright.
        success: whether the task was solved (the demo ends at the first success).
        style: the demonstration style name (e.g. "clean", "missed_grasp").
        seed: the environment reset seed used.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    obs: dict[str, np.ndarray]
    next_obs: dict[str, np.ndarray]
    success: bool
    style: str
    seed: int

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def episode_seeds(seed: int, index: int) -> tuple[int, np.random.Generator]:
    """Env reset seed and demonstrator RNG of episode ``index`` in a set seeded ``seed``."""
    ss = np.random.SeedSequence([seed, index])
    env_ss, policy_ss = ss.spawn(2)
    return int(env_ss.generate_state(1)[0]), np.random.default_rng(policy_ss)


def record_episode(
    env: RobomimicEnv,
    style: DemoStyle,
    env_seed: int,
    rng: np.random.Generator,
    make: Callable[[RobomimicEnv, DemoStyle, np.random.Generator], Any] = make_expert,
) -> Episode:
    """Run the scripted expert once and record it; ``make(env, style, rng)`` builds the expert
    (default: the built-in tasks' table; MimicGen's source demos pass their own).

    The recording stops at success (terminated), at the horizon (truncated), or when the expert's
    script runs out (the operator gives up, e.g. after a missed grasp).
    """
    keys = env.record_keys
    _, info = env.reset(seed=env_seed)
    expert = make(env, style, rng)
    states, actions, rewards = [], [], []
    obs_seq: dict[str, list] = {k: [] for k in keys}
    next_seq: dict[str, list] = {k: [] for k in keys}
    obs = info["obs_dict"]
    success = False
    while True:
        states.append(env.get_state())
        action = expert.act(obs)
        _, reward, terminated, truncated, info = env.step(action)
        actions.append(info["action"])
        rewards.append(reward)
        for k in keys:
            obs_seq[k].append(_recorded(k, obs[k]))
            next_seq[k].append(_recorded(k, info["obs_dict"][k]))
        obs = info["obs_dict"]
        success = bool(info["success"])
        if terminated or truncated or expert.done:
            break
    dones = np.zeros(len(actions), dtype=np.int64)
    if success:
        dones[-1] = 1
    return Episode(
        states=np.stack(states),
        actions=np.stack(actions),
        rewards=np.asarray(rewards, dtype=np.float64),
        dones=dones,
        obs={k: np.stack(v) for k, v in obs_seq.items()},
        next_obs={k: np.stack(v) for k, v in next_seq.items()},
        success=success,
        style=style.name,
        seed=env_seed,
    )


def _recorded(key: str, value: np.ndarray) -> np.ndarray:
    """Frames stay uint8; low-dim values are stored as float64 (robomimic's files do)."""
    if key.endswith("_image"):
        return np.array(value, dtype=np.uint8)
    return np.asarray(value, dtype=np.float64)


def generate_demos(env: RobomimicEnv, episodes: int, quality: str, seed: int) -> Iterator[Episode]:
    """Yield ``episodes`` scripted demonstrations of ``quality`` ('proficient' or 'mixed')."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    for i in range(episodes):
        env_seed, rng = episode_seeds(seed, i)
        style = sample_style(quality, rng)
        ep = record_episode(env, style, env_seed, rng)
        log.debug("demo %d: style=%s success=%s length=%d", i, ep.style, ep.success, len(ep))
        yield ep
