"""Synthetic episodes for replay tests (n-step rows, rewarded rows): states that identify their
episode and step, so a test can tell from a row which episode it came from."""

import numpy as np

OBS, ACT = 3, 2


def episode(start: float, rewards, terminated_at_end: bool, truncated_at_end: bool = False) -> dict:
    """One episode of len(rewards) rows, states start, start + 1, ...: row t goes from state
    start + t to start + t + 1 (so consecutive rows chain: next_obs[t] == obs[t + 1])."""
    n = len(rewards)
    s = start + np.arange(n + 1, dtype=np.float32)
    end = np.zeros(n, dtype=np.float32)
    term, trunc = end.copy(), end.copy()
    term[-1], trunc[-1] = float(terminated_at_end), float(truncated_at_end)
    return dict(
        obs=np.repeat(s[:-1, None], OBS, 1),
        action=np.repeat(s[:-1, None] / 100, ACT, 1),
        reward=np.asarray(rewards, dtype=np.float32),
        next_obs=np.repeat(s[1:, None], OBS, 1),
        terminated=term,
        truncated=trunc,
    )


def cat(*eps: dict) -> dict:
    return {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}
