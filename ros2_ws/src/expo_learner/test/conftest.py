"""Shared test data (as fixtures): transition tables whose rows carry their own id (obs[:, 0] == id)."""

from __future__ import annotations

import numpy as np
import pytest
from expo_learner.transition_table import TransitionTable

OBS_DIM, ACT_DIM = 19, 7  # lift


def _make_table(n: int, start: int = 0, source: str = "sim_0", episode_len: int = 10) -> TransitionTable:
    """Rows ``start .. start+n-1``: obs[:, 0] is the row id, episodes of ``episode_len`` steps."""
    ids = np.arange(start, start + n)
    rng = np.random.default_rng(start)
    obs = rng.standard_normal((n, OBS_DIM)).astype(np.float32)
    obs[:, 0] = ids
    last = ids % episode_len == episode_len - 1
    return TransitionTable.from_arrays(
        obs,
        rng.uniform(-1, 1, (n, ACT_DIM)),
        last.astype(np.float32),
        obs + 1.0,
        last & (ids % 2 == 1),
        last & (ids % 2 == 0),
        episode=ids // episode_len,
        step=ids % episode_len,
        policy_version=ids // 7,
        source=source,
        stamp_ns=1_700_000_000_000_000_000 + ids * 50_000_000,
    )


def _assert_tables_equal(a: TransitionTable, b: TransitionTable) -> None:
    assert len(a) == len(b)
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("episode", "step", "policy_version", "source", "stamp_ns", "intervention"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture
def make_table():
    """Factory ``make_table(n, start=0, source="sim_0", episode_len=10) -> TransitionTable``."""
    return _make_table


@pytest.fixture
def assert_tables_equal():
    """``assert_tables_equal(a, b)``: every column equal."""
    return _assert_tables_equal


@pytest.fixture
def tiny_config():
    """The tiny preset for lift (obs 19, act 7) with UTD 2: a learner update takes milliseconds."""
    from expo_core.presets import preset_config

    return preset_config("tiny", OBS_DIM, ACT_DIM).replace(utd=2, batch_size=16)


@pytest.fixture
def base_checkpoint(tmp_path, tiny_config):
    """A save_checkpoint of a fresh tiny agent (the 'pretrained base'); returns its path stem."""
    from expo_core.agent import ExpoAgent
    from expo_core.checkpoint import save_checkpoint

    path = tmp_path / "base" / "tiny"
    save_checkpoint(path, ExpoAgent(tiny_config, seed=0), {"note": "test base"})
    return path
