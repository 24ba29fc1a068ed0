"""Policy evaluation in a simulated task: success rate with a Wilson 95% interval, and what the
learner's critic said about the episodes it evaluated.

Evaluation episodes start from fixed reset seeds (``EVAL_SEED_BASE + i``), the same for every
algorithm, run seed and evaluation round, so success rates of different runs are measured on the
same initial states and differ only by the policy.

Overestimation: a learner that knows the value of its decision returns a :class:`Decision` with
``q`` (its estimate of Q(s_t, a_t) for the chosen action) and, for EXPO, ``edited`` (whether the
OTF choice was an edited candidate). :func:`evaluate` then compares the mean Q over every step of
the evaluated episodes with the Monte-Carlo discounted return G_t of the same steps
(``expo_core.td.discounted_returns``). With a 0/1 reward that ends the episode, both lie in
[0, 1]. G_t of an episode cut by the horizon is 0 while the learner (bootstrapping through
time limits) values what would follow the cut, so on a policy that often times out Q > G is
expected in part; on successful episodes G_t is exact.

Action chunks (receding horizon): a learner whose base predicts chunks returns its plan (the
next actions after the chosen one) in the Decision. ``execute_steps`` = m > 1 then applies the
chosen action and the next m - 1 plan actions open-loop before deciding again (1: decide every
step). The plan's actions were chosen on an older observation: what that costs, and what skipping
m - 1 of m decisions saves, is what ``expo-sim evaluate --execute-steps`` measures. Q and the
edited share are recorded for the decided steps only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from expo_core.td import discounted_returns

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
class Decision:
    """One evaluation decision: the action (d,) and what the learner knows of it. NaN: unknown
    (``bc`` has no trained critic; only EXPO chooses between base and edited candidates)."""

    action: np.ndarray
    q: float = math.nan  # the learner's estimate of Q(s, action)
    edited: float = math.nan  # 1.0: an edited candidate was chosen, 0.0: a base sample
    plan: np.ndarray | None = None  # (k-1, d) the actions after `action` (action chunks), else None


@dataclass(frozen=True)
class EvalResult:
    episodes: int
    successes: int
    success_rate: float
    success_ci_low: float
    success_ci_high: float
    mean_return: float
    mean_length: float  # steps per episode (successful episodes end early)
    eval_q: float = math.nan  # mean Q of the chosen actions over every evaluated step
    eval_mc_return: float = math.nan  # mean discounted return G_t over the same steps
    eval_edited_fraction: float = math.nan  # share of the steps where an edited candidate acted

    @property
    def eval_q_bias(self) -> float:
        """eval_q - eval_mc_return: > 0 overestimation, < 0 underestimation."""
        return self.eval_q - self.eval_mc_return


def _nanmean(values: list[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()) if a.size and not np.isnan(a).any() else math.nan


def evaluate(
    env: RobomimicEnv,
    act: Callable[[np.ndarray], np.ndarray | Decision],
    episodes: int,
    seed_base: int = EVAL_SEED_BASE,
    gamma: float = 0.99,
    execute_steps: int = 1,
) -> EvalResult:
    """Run ``episodes`` episodes of ``act(obs (o,)) -> action (d,) or Decision`` to success or
    the horizon. ``gamma`` discounts the Monte-Carlo returns compared with the Decisions' Q.
    ``execute_steps`` m: each decision's action and the first m - 1 actions of its plan are
    applied before the next decision (m = 1: decide every step; m > 1 needs plans of at least
    m - 1 actions, i.e. a base with chunk_len >= m)."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    if not isinstance(execute_steps, int) or execute_steps < 1:
        raise ValueError(f"execute_steps={execute_steps!r} is invalid; allowed: integer >= 1")
    successes, returns, lengths = 0, [], []
    qs, mc, edited = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed_base + i)
        rewards, done, success = [], False, False
        while not done:
            d = act(obs)
            if not isinstance(d, Decision):
                d = Decision(np.asarray(d))
            qs.append(d.q)
            edited.append(d.edited)
            for action in _executed(d, execute_steps):
                obs, reward, terminated, truncated, info = env.step(action)
                rewards.append(float(reward))
                done = terminated or truncated
                success = success or bool(info["success"])
                if done:
                    break
        mc.extend(discounted_returns(rewards, gamma).tolist())
        successes += int(success)
        returns.append(sum(rewards))
        lengths.append(len(rewards))
    low, high = wilson_interval(successes, episodes)
    q = _nanmean(qs)
    return EvalResult(
        episodes=episodes,
        successes=successes,
        success_rate=successes / episodes,
        success_ci_low=low,
        success_ci_high=high,
        mean_return=float(np.mean(returns)),
        mean_length=float(np.mean(lengths)),
        eval_q=q,
        eval_mc_return=float(np.mean(mc)),
        eval_edited_fraction=_nanmean(edited),
    )


def _executed(d: Decision, execute_steps: int) -> list[np.ndarray]:
    """The actions one decision applies: its action, then the first m - 1 of its plan."""
    if execute_steps == 1:
        return [d.action]
    plan_len = 0 if d.plan is None else len(d.plan)
    if plan_len < execute_steps - 1:
        raise ValueError(
            f"execute_steps={execute_steps} needs plans of >= {execute_steps - 1} actions; this policy's "
            f"have {plan_len} (a base with diffusion.chunk_len >= {execute_steps}, --chunk-len)"
        )
    return [d.action, *d.plan[: execute_steps - 1]]
