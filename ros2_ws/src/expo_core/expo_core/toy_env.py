"""A tiny sparse-reward, multimodal task for fast learning checks (numpy, vectorized).

PointDetour2D: a point starts near the origin and must reach a goal disc at (1, 0) within
`horizon` steps; a round obstacle sits on the straight line, so good paths pass above or below
it (two modes). Touching the obstacle or leaving the corridor ends the episode as a failure.
Reward 1 on reaching the goal (terminated), 0 otherwise; `truncated` at the horizon.

`scripted_demos` produces a multimodal, imperfect demo set: each demo picks a side at random and
steers through a waypoint with heavy action noise, so many demos fail and an imitation policy
that reproduces the noise succeeds only part of the time. Removing the noise (what value-guided
selection among sampled actions can learn) makes the task easy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GOAL = np.array([1.0, 0.0], dtype=np.float32)
OBSTACLE = np.array([0.5, 0.0], dtype=np.float32)


@dataclass(frozen=True)
class ToyConfig:
    horizon: int = 30
    step_size: float = 0.1  # metres per unit action
    goal_radius: float = 0.12
    obstacle_radius: float = 0.2
    corridor_half_width: float = 0.6
    start_noise: float = 0.05


class PointDetour2D:
    """Vectorized over `num_envs`. Observations (n, 3): x, y and the elapsed fraction of time."""

    obs_dim = 3
    act_dim = 2

    def __init__(self, num_envs: int, seed: int = 0, cfg: ToyConfig | None = None) -> None:
        self.n = num_envs
        self.cfg = cfg or ToyConfig()
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros((num_envs, 2), dtype=np.float32)
        self.t = np.zeros(num_envs, dtype=np.int64)

    def _obs(self) -> np.ndarray:
        frac = (self.t / self.cfg.horizon).astype(np.float32)[:, None]
        return np.concatenate([self.pos, frac], axis=1)

    def reset(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Reset all envs, or those where `mask` is True. Returns all observations."""
        idx = np.arange(self.n) if mask is None else np.flatnonzero(mask)
        self.pos[idx] = self.rng.uniform(-self.cfg.start_noise, self.cfg.start_noise, (len(idx), 2))
        self.t[idx] = 0
        return self._obs()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """action (n, 2) in [-1, 1] -> next_obs, reward, terminated, truncated (each (n, ...)).
        next_obs is the state reached (call `reset(mask)` for finished envs afterwards)."""
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        if a.shape != (self.n, 2) or not np.isfinite(a).all():
            raise ValueError(f"action must be finite with shape {(self.n, 2)}, got {a.shape}")
        c = self.cfg
        self.pos = self.pos + c.step_size * a
        self.t += 1
        success = np.linalg.norm(self.pos - GOAL, axis=1) < c.goal_radius
        crash = (
            (np.linalg.norm(self.pos - OBSTACLE, axis=1) < c.obstacle_radius)
            | (np.abs(self.pos[:, 1]) > c.corridor_half_width)
            | (self.pos[:, 0] < -0.3)
            | (self.pos[:, 0] > 1.3)
        )
        terminated = success | crash
        truncated = ~terminated & (self.t >= c.horizon)
        return self._obs(), success.astype(np.float32), terminated, truncated


def scripted_actions(obs: np.ndarray, side: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Waypoint controller: head to (0.5, side*0.4) until past x=0.4, then to the goal."""
    pos = obs[:, :2]
    way = np.stack([np.full(len(pos), 0.5), side * 0.4], axis=1)
    target = np.where((pos[:, 0] < 0.4)[:, None], way, GOAL[None])
    d = target - pos
    a = 0.8 * d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    return np.clip(a + noise * rng.standard_normal(a.shape), -1, 1).astype(np.float32)


def scripted_demos(num_episodes: int, seed: int = 0, noise: float = 0.7) -> dict[str, np.ndarray]:
    """Roll out noisy scripted demos; returns transition arrays (obs, action, reward, next_obs,
    terminated, truncated) and `success_rate` of the demos themselves."""
    env = PointDetour2D(num_episodes, seed=seed)
    rng = np.random.default_rng(seed + 1)
    side = rng.choice([-1.0, 1.0], size=num_episodes)
    obs = env.reset()
    alive = np.ones(num_episodes, dtype=bool)
    out: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated")}
    successes = np.zeros(num_episodes, dtype=bool)
    while alive.any():
        act = scripted_actions(obs, side, rng, noise)
        nxt, rew, term, trunc = env.step(act)
        for k, v in zip(out, (obs, act, rew, nxt, term, trunc)):
            out[k].append(np.asarray(v)[alive])
        successes |= alive & (rew > 0)
        alive &= ~(term | trunc)
        obs = nxt
    arrays = {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
    arrays["success_rate"] = np.float32(successes.mean())
    return arrays


def evaluate(policy_fn, num_episodes: int, seed: int = 1000) -> float:
    """Success rate of `policy_fn(obs (n, 3)) -> actions (n, 2)` over `num_episodes` parallel runs."""
    env = PointDetour2D(num_episodes, seed=seed)
    obs = env.reset()
    alive = np.ones(num_episodes, dtype=bool)
    success = np.zeros(num_episodes, dtype=bool)
    for _ in range(env.cfg.horizon):
        nxt, rew, term, trunc = env.step(policy_fn(obs))
        success |= alive & (rew > 0)
        alive &= ~(term | trunc)
        obs = nxt
        if not alive.any():
            break
    return float(success.mean())
