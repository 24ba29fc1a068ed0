"""ReplayBuffer ring semantics, deterministic sampling, validation; MixedSampler fractions."""

import numpy as np
import pytest
import torch
from expo_core.batch import Batch
from expo_core.replay import MixedSampler, ReplayBuffer

OBS_DIM, ACT_DIM = 4, 2


def rows(start: int, n: int, reward: float | None = None) -> dict[str, np.ndarray]:
    """n transitions whose obs rows are filled with their id start..start+n-1 (next_obs = id + 0.5)."""
    ids = np.arange(start, start + n, dtype=np.float32)
    return dict(
        obs=np.repeat(ids[:, None], OBS_DIM, axis=1),
        action=np.repeat(ids[:, None] / 1000.0, ACT_DIM, axis=1),
        reward=ids if reward is None else np.full(n, reward, dtype=np.float32),
        next_obs=np.repeat(ids[:, None] + 0.5, OBS_DIM, axis=1),
        terminated=(ids % 2 == 0).astype(np.float32),
        truncated=np.zeros(n, dtype=np.float32),
    )


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_add_one_at_a_time_matches_add_many():
    a, b = ReplayBuffer(OBS_DIM, ACT_DIM, 8), ReplayBuffer(OBS_DIM, ACT_DIM, 8)
    data = rows(0, 5)
    a.add_many(**data)
    for i in range(5):
        b.add(**{k: v[i] for k, v in data.items()})
    assert len(a) == len(b) == 5
    for k in data:
        np.testing.assert_array_equal(a.arrays()[k], b.arrays()[k])
        np.testing.assert_array_equal(a.arrays()[k], data[k])


def test_ring_wraps_around_and_keeps_newest_oldest_first():
    buf = ReplayBuffer(OBS_DIM, ACT_DIM, 5)
    buf.add_many(**rows(0, 3))
    buf.add_many(**rows(3, 4))  # ids 0..6 written into 5 slots: 0 and 1 overwritten
    assert len(buf) == 5
    np.testing.assert_array_equal(buf.arrays()["obs"][:, 0], [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(buf.arrays()["reward"], [2, 3, 4, 5, 6])
    buf.add(**{k: v[0] for k, v in rows(7, 1).items()})
    np.testing.assert_array_equal(buf.arrays()["obs"][:, 0], [3, 4, 5, 6, 7])


def test_add_many_larger_than_capacity_keeps_last_rows():
    buf = ReplayBuffer(OBS_DIM, ACT_DIM, 4)
    buf.add_many(**rows(0, 2))
    buf.add_many(**rows(2, 11))  # ids 2..12: only 9..12 survive
    assert len(buf) == 4
    np.testing.assert_array_equal(buf.arrays()["obs"][:, 0], [9, 10, 11, 12])
    buf.add_many(**rows(13, 1))
    np.testing.assert_array_equal(buf.arrays()["obs"][:, 0], [10, 11, 12, 13])


def test_sample_is_deterministic_and_only_from_valid_rows():
    buf = ReplayBuffer(OBS_DIM, ACT_DIM, 100)
    buf.add_many(**rows(0, 7))
    b1, b2 = buf.sample(64, gen(3)), buf.sample(64, gen(3))
    b3 = buf.sample(64, gen(4))
    assert isinstance(b1, Batch) and len(b1) == 64
    assert torch.equal(b1.obs, b2.obs) and torch.equal(b1.reward, b2.reward)
    assert not torch.equal(b1.obs, b3.obs)
    assert b1.obs.shape == (64, OBS_DIM) and b1.action.shape == (64, ACT_DIM)
    assert b1.terminated.shape == (64,) and b1.truncated.shape == (64,)
    assert all(t.dtype == torch.float32 for t in (b1.obs, b1.action, b1.reward, b1.terminated))
    ids = b1.obs[:, 0]
    assert ids.max() <= 6 and ids.min() >= 0  # never the zero-filled unused rows 7..99
    assert len(set(ids.tolist())) > 1
    # each row stays one transition: its fields all carry the same id
    assert torch.equal(b1.reward, ids) and torch.equal(b1.next_obs[:, 0], ids + 0.5)
    assert torch.equal(b1.terminated, (ids % 2 == 0).float())


def test_validation_errors_name_field_and_shape():
    buf = ReplayBuffer(OBS_DIM, ACT_DIM, 10)
    bad = rows(0, 3)
    bad["action"] = np.zeros((3, ACT_DIM + 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'action'.*\(3, 3\).*expected \('N', 2\)"):
        buf.add_many(**bad)
    bad = rows(0, 3)
    bad["reward"] = np.zeros(2, dtype=np.float32)
    with pytest.raises(ValueError, match="'reward'"):
        buf.add_many(**bad)
    bad = rows(0, 3)
    bad["next_obs"][1, 2] = np.nan
    with pytest.raises(ValueError, match="'next_obs' has non-finite"):
        buf.add_many(**bad)
    bad = rows(0, 3)
    bad["truncated"][0] = 0.5
    with pytest.raises(ValueError, match="'truncated' must hold only 0 or 1"):
        buf.add_many(**bad)
    with pytest.raises(ValueError, match=r"'obs'.*expected \(4,\)"):
        buf.add(np.zeros(3), np.zeros(ACT_DIM), 0.0, np.zeros(OBS_DIM), False, False)
    with pytest.raises(ValueError, match="'obs'"):
        buf.add_many(np.zeros(OBS_DIM), np.zeros(ACT_DIM), 0.0, np.zeros(OBS_DIM), 0.0, 0.0)
    assert len(buf) == 0  # nothing partially written
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4, gen())
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(OBS_DIM, ACT_DIM, 0)


def test_from_arrays_round_trip():
    data = rows(0, 6)
    buf = ReplayBuffer.from_arrays(data)
    assert (buf.capacity, len(buf), buf.obs_dim, buf.act_dim) == (6, 6, OBS_DIM, ACT_DIM)
    small = ReplayBuffer.from_arrays(buf.arrays(), capacity=4)
    np.testing.assert_array_equal(small.arrays()["reward"], [2, 3, 4, 5])
    with pytest.raises(KeyError, match="reward"):
        ReplayBuffer.from_arrays({k: v for k, v in data.items() if k != "reward"})


def make_sampler(n_online: int, n_offline: int | None, fraction: float = 0.5) -> MixedSampler:
    """Offline rows carry reward 1, online rows reward 0, so a batch tells where each row came from."""
    online = ReplayBuffer(OBS_DIM, ACT_DIM, 64)
    if n_online:
        online.add_many(**rows(0, n_online, reward=0.0))
    offline = None
    if n_offline is not None:
        offline = ReplayBuffer(OBS_DIM, ACT_DIM, 64)
        if n_offline:
            offline.add_many(**rows(100, n_offline, reward=1.0))
    return MixedSampler(online, offline, fraction)


@pytest.mark.parametrize(
    ("n_online", "n_offline", "fraction", "expected_offline"),
    [
        (10, 10, 0.5, 128),
        (10, 10, 0.25, 64),
        (10, 10, 0.0, 0),
        (10, 10, 1.0, 256),
        (10, None, 0.5, 0),  # no offline buffer: all online
        (10, 0, 0.5, 0),  # empty offline buffer: all online
        (0, 10, 0.5, 256),  # empty online buffer: offline-only pretraining
        (0, 10, 0.0, 256),
    ],
)
def test_mixed_sampler_fractions(n_online, n_offline, fraction, expected_offline):
    batch = make_sampler(n_online, n_offline, fraction).sample(256, gen(1))
    assert len(batch) == 256
    assert int(batch.reward.sum()) == expected_offline
    assert torch.all(batch.reward[:expected_offline] == 1.0)  # offline rows come first
    assert torch.all(batch.obs[:expected_offline, 0] >= 100)
    assert torch.all(batch.obs[expected_offline:, 0] < 100)


def test_mixed_sampler_rounds_and_is_deterministic():
    sampler = make_sampler(10, 10, 0.3)
    assert sampler.split(5) == (2, 3)  # round(1.5) == 2
    a, b = sampler.sample(5, gen(9)), sampler.sample(5, gen(9))
    assert torch.equal(a.obs, b.obs)
    it = sampler.batches(8, gen(2))
    first, second = next(it), next(it)
    assert len(first) == len(second) == 8 and not torch.equal(first.obs, second.obs)


def test_mixed_sampler_validation():
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="offline_fraction"):
            make_sampler(1, 1, bad)
    with pytest.raises(ValueError, match="both the online and the offline buffer are empty"):
        make_sampler(0, 0).sample(4, gen())
    with pytest.raises(ValueError, match="dims"):
        MixedSampler(ReplayBuffer(OBS_DIM, ACT_DIM, 4), ReplayBuffer(OBS_DIM + 1, ACT_DIM, 4))
