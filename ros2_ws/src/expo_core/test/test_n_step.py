"""n-step TD targets (ExpoConfig.n_step): the replay's n-step rows, the sampler and Batch carrying
them, and the targets discounting their bootstrap by gamma^k."""

import numpy as np
import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.config import ExpoConfig
from expo_core.replay import MixedSampler, ReplayBuffer
from expo_core.td import draw_td_noise, td_targets
from replay_episodes import ACT, OBS, cat, episode

GAMMA = 0.9


def manual(rewards, t: int, n: int, gamma: float = GAMMA) -> tuple[float, int]:
    """The n-step reward and k from step t of an episode with these rewards (ends at its end)."""
    k = min(n, len(rewards) - t)
    return sum(gamma**j * rewards[t + j] for j in range(k)), k


def test_rows_sum_discounted_rewards_and_stop_at_episode_ends():
    r1, r2 = [0.0, 0.5, 0.0, 1.0], [0.2, 0.3, 0.4, 0.0, 0.6, 0.7]
    a = cat(episode(0, r1, terminated_at_end=True), episode(100, r2, False, truncated_at_end=True))
    buf = ReplayBuffer.from_arrays(a)
    rows = buf.n_step_rows(np.arange(len(buf)), 3, GAMMA)
    for i in range(len(buf)):
        rewards, t, first = (r1, i, 0) if i < len(r1) else (r2, i - len(r1), len(r1))
        want, k = manual(rewards, t, 3)
        assert rows["reward"][i] == pytest.approx(want, rel=1e-6), i
        assert rows["steps"][i] == k
        last = first + t + k - 1
        np.testing.assert_array_equal(rows["next_obs"][i], a["next_obs"][last])
        assert rows["terminated"][i] == a["terminated"][last] and rows["truncated"][i] == a["truncated"][last]
        np.testing.assert_array_equal(rows["obs"][i], a["obs"][i])
        np.testing.assert_array_equal(rows["action"][i], a["action"][i])
    assert rows["terminated"][2] == 1.0 and rows["steps"][2] == 2  # the success is reached, not skipped
    assert rows["truncated"][len(r1) + 4] == 1.0  # truncation ends the chain too (and bootstraps)


def test_n_step_1_is_the_stored_row():
    a = cat(episode(0, [0.0, 1.0, 0.0], False), episode(50, [1.0, 0.0], True))
    buf = ReplayBuffer.from_arrays(a)
    rows = buf.n_step_rows(np.arange(len(buf)), 1, GAMMA)
    for name in a:
        np.testing.assert_array_equal(rows[name], a[name])
    assert np.all(rows["steps"] == 1)


def test_rows_never_join_a_different_episode_or_run_past_the_newest_row():
    # an episode cut without a flag (its next row starts elsewhere): the obs check stops the chain
    cut = episode(0, [0.1, 0.2], False)
    a = cat(cut, episode(10, [0.4, 0.8, 0.0], False))
    buf = ReplayBuffer.from_arrays(a, capacity=8)
    rows = buf.n_step_rows(np.arange(len(buf)), 4, GAMMA)
    assert rows["steps"].tolist() == [2, 1, 3, 2, 1]  # the last rows run out of stored data
    np.testing.assert_array_equal(rows["next_obs"][0], cut["next_obs"][1])
    assert rows["reward"][2] == pytest.approx(0.4 + GAMMA * 0.8)


def test_a_wrapped_ring_chains_in_time_order_and_not_into_overwritten_rows():
    buf = ReplayBuffer(OBS, ACT, capacity=5)
    ep = episode(0, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], False)  # 7 rows: 2 overwritten
    buf.add_many(**{k: v[:4] for k, v in ep.items()})
    buf.add_many(**{k: v[4:] for k, v in ep.items()})
    # storage rows now hold t = 5, 6, 2, 3, 4 (ptr at 2: row 2 is the oldest, t = 2)
    rows = buf.n_step_rows(np.arange(5), 3, GAMMA)
    t_of_row = [5, 6, 2, 3, 4]
    for i, t in enumerate(t_of_row):
        k = min(3, 7 - t)  # the chain stops at the newest row, t = 6
        assert rows["steps"][i] == k, (i, t)
        assert rows["reward"][i] == pytest.approx(
            sum(GAMMA**j * ep["reward"][t + j] for j in range(k)), rel=1e-6
        )
        np.testing.assert_array_equal(rows["next_obs"][i], ep["next_obs"][t + k - 1])


def test_sampler_batches_carry_steps_from_both_buffers_and_validate():
    off = ReplayBuffer.from_arrays(episode(0, [0.0] * 6 + [1.0], True))
    on = ReplayBuffer.from_arrays(episode(50, [0.0] * 10, False, truncated_at_end=True))
    b = MixedSampler(on, off, 0.5, n_step=4, gamma=GAMMA).sample(64, torch.Generator().manual_seed(0))
    assert b.steps is not None and b.steps.shape == (64,)
    assert set(b.steps.tolist()) <= {1.0, 2.0, 3.0, 4.0} and (b.steps == 4).any()
    assert torch.allclose(b.discount(GAMMA), GAMMA**b.steps)
    one = MixedSampler(on, off, 0.5).sample(8, torch.Generator().manual_seed(0))
    assert one.steps is None and torch.allclose(one.discount(GAMMA), torch.full((8,), GAMMA))
    with pytest.raises(ValueError, match="gamma"):
        MixedSampler(on, off, 0.5, n_step=3)
    with pytest.raises(ValueError, match="n_step"):
        off.sample(4, torch.Generator(), n_step=0, gamma=GAMMA)


def test_batch_cat_keeps_steps_and_gives_one_to_rows_without():
    def b(n, steps=None):
        z = torch.zeros(n)
        return Batch(torch.zeros(n, OBS), torch.zeros(n, ACT), z, torch.zeros(n, OBS), z, z, steps=steps)

    both = Batch.cat([b(2), b(3, torch.tensor([3.0, 2.0, 1.0]))])
    assert both.steps.tolist() == [1.0, 1.0, 3.0, 2.0, 1.0]
    assert Batch.cat([b(2), b(1)]).steps is None
    with pytest.raises(ValueError, match="steps"):
        b(2, torch.ones(3))


def test_td_targets_discount_the_bootstrap_by_gamma_to_the_k(tiny_cfg):
    agent = diverge(ExpoAgent(tiny_cfg, seed=5))
    g = torch.Generator().manual_seed(1)
    n = 12
    b1 = Batch(
        obs=torch.randn(n, tiny_cfg.obs_dim, generator=g),
        action=torch.rand(n, tiny_cfg.act_dim, generator=g) * 2 - 1,
        reward=torch.rand(n, generator=g),
        next_obs=torch.randn(n, tiny_cfg.obs_dim, generator=g),
        terminated=torch.tensor([0.0, 1.0] * 6),
        truncated=torch.zeros(n),
    )
    steps = torch.tensor([1.0, 2.0, 3.0, 5.0] * 3)
    bk = b1.replace(steps=steps)
    alpha = torch.tensor(0.2)

    def targets(batch):
        noise = draw_td_noise(tiny_cfg, agent.base, n, torch.Generator().manual_seed(9), torch.device("cpu"))
        with torch.no_grad():
            return td_targets(
                tiny_cfg, agent.base, agent.policy.editor, agent.critic_target, [batch], [noise], alpha
            )

    one, k = targets(b1), targets(bk)
    assert torch.equal(one.next_q, k.next_q)  # same noise: the same backup value
    bootstrap = (1 - b1.terminated) * one.next_q[0]
    assert torch.allclose(one.target[0], b1.reward + tiny_cfg.gamma * bootstrap, atol=1e-6)
    assert torch.allclose(k.target[0], b1.reward + tiny_cfg.gamma**steps * bootstrap, atol=1e-6)
    assert not torch.allclose(k.target[0], one.target[0])


def test_config_n_step_validates_and_is_left_out_of_the_json_at_1():
    cfg = ExpoConfig(obs_dim=3, act_dim=2)
    assert "n_step" not in cfg.to_dict()
    five = cfg.replace(n_step=5)
    assert five.to_dict()["n_step"] == 5 and ExpoConfig.from_dict(five.to_dict()) == five
    for bad in (0, 101, True, 2.0):
        with pytest.raises(ValueError, match="n_step"):
            cfg.replace(n_step=bad)
