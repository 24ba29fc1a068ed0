"""Policy evaluation in a simulated task: success rate with a Wilson 95% interval.

Evaluation episodes start from fixed reset seeds (``EVAL_SEED_BASE + i``), the same for every
algorithm, run seed and evaluation round, so success rates of different runs are measured on the
same initial states and differ only by the policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from expo_sim.envs.robosuite_env import RobomimicEnv

EVAL_SEED_BASE = 1_000_000  # far from the training episodes' seeds


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for z = 1.96); (0, 1) when n = 0.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be in [0, n={n}]")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class EvalResult:
    episodes: int
    successes: int
    success_rate: float
    success_ci_low: float
    success_ci_high: float
    mean_return: float
    mean_length: float  # steps per episode (successful episodes end early)


def evaluate(
    env: RobomimicEnv,
    act: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    seed_base: int = EVAL_SEED_BASE,
) -> EvalResult:
    """Run ``episodes`` episodes of ``act(obs (o,)) -> action (d,)`` to success or the horizon."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    successes, returns, lengths = 0, [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed_base + i)
        ret, length, done, success = 0.0, 0, False, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            ret += reward
            length += 1
            done = terminated or truncated
            success = success or bool(info["success"])
        successes += int(success)
        returns.append(ret)
        lengths.append(length)
    low, high = wilson_interval(successes, episodes)
    return EvalResult(
        episodes=episodes,
        successes=successes,
        success_rate=successes / episodes,
        success_ci_low=low,
        success_ci_high=high,
        mean_return=float(np.mean(returns)),
        mean_length=float(np.mean(lengths)),
    )
