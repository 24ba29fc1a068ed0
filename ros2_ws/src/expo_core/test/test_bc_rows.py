"""The base imitating rewarded rows only (ExpoConfig.bc_rows): the replay's labels of the rows of
episodes that earned a reward, the batches carrying them, and the agent's base step using them."""

import numpy as np
import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.config import ExpoConfig
from expo_core.replay import MixedSampler, ReplayBuffer
from replay_episodes import ACT, OBS, cat, episode

SUCCESS = episode(0, [0.0, 0.0, 0.0, 1.0], terminated_at_end=True)  # states 0..3
FAILURE = episode(100, [0.0] * 5, False, truncated_at_end=True)  # states 100..104
# a reward in the middle, then more steps without one: rows up to the reward are labelled
MIDDLE = episode(200, [0.0, 1.0, 0.0, 0.0], False, truncated_at_end=True)  # states 200..203
WANT = [1, 1, 1, 1] + [0] * 5 + [1, 1, 0, 0]


def labels(buf: ReplayBuffer) -> list[int]:
    """The labels of the stored rows, oldest first."""
    n, cap = len(buf), buf.capacity
    order = np.arange(n) if n < cap else (buf._ptr + np.arange(cap)) % cap
    return buf.rewarded(order).astype(int).tolist()


def test_rows_of_an_episode_are_labelled_up_to_its_last_reward():
    buf = ReplayBuffer.from_arrays(cat(SUCCESS, FAILURE, MIDDLE))
    assert labels(buf) == WANT
    assert "rewarded" not in buf.arrays()  # derived, not stored: a rebuilt buffer labels again
    assert labels(ReplayBuffer.from_arrays(buf.arrays())) == WANT


@pytest.mark.parametrize("split", [1, 2, 3, 6, 10])
def test_rows_written_one_at_a_time_or_in_blocks_get_the_same_labels(split):
    a = cat(FAILURE, SUCCESS, MIDDLE)
    want = [0] * 5 + [1, 1, 1, 1] + [1, 1, 0, 0]
    one = ReplayBuffer(OBS, ACT, 64)
    for i in range(len(a["obs"])):
        one.add(*(a[k][i] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated")))
    assert labels(one) == want
    blocks = ReplayBuffer(OBS, ACT, 64)  # a block boundary inside an episode: the label flows back
    blocks.add_many(**{k: v[:split] for k, v in a.items()})
    blocks.add_many(**{k: v[split:] for k, v in a.items()})
    assert labels(blocks) == want


def test_a_label_never_flows_into_another_episode():
    # a failed episode cut without a flag (the next row does not start at its next_obs) is not
    # joined to the successful episode stored after it
    cut = episode(50, [0.0, 0.0], False)
    buf = ReplayBuffer.from_arrays(cat(cut, SUCCESS))
    assert labels(buf) == [0, 0, 1, 1, 1, 1]
    online = ReplayBuffer(OBS, ACT, 16)  # the same written row by row
    a = cat(cut, SUCCESS)
    for i in range(6):
        online.add(*(a[k][i] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated")))
    assert labels(online) == [0, 0, 1, 1, 1, 1]


def test_a_wrapped_ring_relabels_overwritten_rows_and_labels_a_cut_episode():
    buf = ReplayBuffer(OBS, ACT, capacity=6)
    buf.add_many(**SUCCESS)  # storage rows 0-3
    buf.add_many(**episode(400, [0.0, 0.0, 0.0, 0.0, 1.0], True))  # rows 4, 5, 0, 1, 2: wraps
    assert labels(buf) == [1] * 6  # SUCCESS's last row, then the new episode
    buf.add_many(**episode(500, [0.0, 0.0, 0.0], False))  # rows 3, 4, 5: a failure overwrites
    # the stored part of the successful episode (its last 3 rows) keeps its label; the failure
    # written over labelled rows is not labelled
    assert labels(buf) == [1, 1, 1, 0, 0, 0]
    failure_first = ReplayBuffer(OBS, ACT, capacity=4)  # a failure's rows overwritten by a success
    failure_first.add_many(**FAILURE)
    failure_first.add_many(**episode(600, [0.0, 1.0], True))
    assert labels(failure_first) == [0, 0, 1, 1]


def test_sampled_batches_carry_the_labels_of_their_rows_with_and_without_n_step():
    off = ReplayBuffer.from_arrays(cat(SUCCESS, FAILURE))
    on = ReplayBuffer.from_arrays(MIDDLE)
    want = {s: w for s, w in zip(cat(SUCCESS, FAILURE, MIDDLE)["obs"][:, 0].tolist(), WANT)}
    for n_step in (1, 3):
        sampler = MixedSampler(on, off, 0.5, n_step=n_step, gamma=0.9)
        b = sampler.sample(64, torch.Generator().manual_seed(n_step))
        assert b.rewarded is not None and b.rewarded.shape == (64,)
        assert b.rewarded.tolist() == [float(want[s]) for s in b.obs[:, 0].tolist()]
        assert 0 < b.rewarded.sum() < 64


def test_batch_cat_keeps_rewarded_only_when_every_part_has_it():
    def b(n, rewarded=None):
        z, obs = torch.zeros(n), torch.zeros(n, OBS)
        return Batch(obs, torch.zeros(n, ACT), z, obs, z, z, rewarded=rewarded)

    both = Batch.cat([b(2, torch.tensor([1.0, 0.0])), b(1, torch.tensor([1.0]))])
    assert both.rewarded.tolist() == [1.0, 0.0, 1.0]
    assert Batch.cat([b(2, torch.ones(2)), b(1)]).rewarded is None
    with pytest.raises(ValueError, match="rewarded"):
        b(2, torch.ones(3))


def _batch(cfg: ExpoConfig, rewarded: torch.Tensor, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    n = len(rewarded)
    return Batch(
        obs=torch.randn(n, cfg.obs_dim, generator=g),
        action=torch.rand(n, cfg.act_dim, generator=g) * 2 - 1,
        reward=rewarded.clone(),
        next_obs=torch.randn(n, cfg.obs_dim, generator=g),
        terminated=torch.zeros(n),
        truncated=torch.zeros(n),
        rewarded=rewarded,
    )


def _base_after_update(cfg: ExpoConfig, batch: Batch) -> dict[str, torch.Tensor]:
    agent = diverge(ExpoAgent(cfg, seed=3))  # online, EMA and target networks all differ
    agent.update(iter([batch] * cfg.utd))
    return {k: v.clone() for k, v in agent.base.state_dict().items()}


@pytest.mark.parametrize("bc_rows", ["all", "rewarded"])
def test_the_base_step_reads_only_the_rewarded_rows_actions(make_cfg, bc_rows):
    cfg = make_cfg(bc_rows=bc_rows)
    rewarded = torch.tensor([1.0, 0.0, 1.0, 0.0] * 4)
    batch = _batch(cfg, rewarded)
    other = batch.replace(action=torch.where(rewarded[:, None] > 0, batch.action, -batch.action))
    a, b = _base_after_update(cfg, batch), _base_after_update(cfg, other)
    same = all(torch.equal(a[k], b[k]) for k in a)
    # "rewarded": the unrewarded rows' actions cannot move the base; "all": they do
    assert same == (bc_rows == "rewarded")
    moved = batch.replace(action=torch.where(rewarded[:, None] > 0, -batch.action, batch.action))
    c = _base_after_update(cfg, moved)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the rewarded rows' actions do


def test_a_batch_without_rewarded_rows_skips_the_base_step_and_pretraining_imitates_all(make_cfg):
    cfg = make_cfg(bc_rows="rewarded")
    agent = ExpoAgent(cfg, seed=3)
    before = {k: v.clone() for k, v in agent.base.state_dict().items()}
    stats = agent.update(iter([_batch(cfg, torch.zeros(16))] * cfg.utd))
    assert np.isnan(stats["bc_loss"])
    assert all(torch.equal(before[k], v) for k, v in agent.base.state_dict().items())
    agent.pretrain_step(_batch(cfg, torch.zeros(16)))  # offline imitation: every row, labels or not
    assert not all(torch.equal(before[k], v) for k, v in agent.base.state_dict().items())
    with pytest.raises(ValueError, match="Batch.rewarded"):
        agent.update(iter([_batch(cfg, torch.ones(16)).replace(rewarded=None)] * cfg.utd))


def test_config_bc_rows_validates_and_is_left_out_of_the_json_at_its_default():
    cfg = ExpoConfig(obs_dim=3, act_dim=2)
    assert "bc_rows" not in cfg.to_dict()
    r = cfg.replace(bc_rows="rewarded")
    assert r.to_dict()["bc_rows"] == "rewarded" and ExpoConfig.from_dict(r.to_dict()) == r
    with pytest.raises(ValueError, match="bc_rows"):
        cfg.replace(bc_rows="successful")
