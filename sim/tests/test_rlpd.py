"""RLPD baseline: update maths on random batches, deterministic acting, checkpoint round trip."""

import itertools

import numpy as np
import pytest
import torch
from expo_core.batch import Batch
from expo_core.config import CriticConfig
from expo_core.presets import preset_config
from expo_sim.train.rlpd import RLPDAgent, RLPDConfig, load_rlpd, save_rlpd


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def small_config(**changes) -> RLPDConfig:
    base = dict(
        obs_dim=5,
        act_dim=3,
        actor_hidden_dims=(32, 32),
        critic=CriticConfig(hidden_dims=(32, 32), num_critics=4, num_min=2),
        batch_size=16,
        utd=3,
    )
    base.update(changes)
    return RLPDConfig(**base)


def batches(cfg, seed=0, terminated=0.2):
    g = torch.Generator().manual_seed(seed)
    for _ in itertools.count():
        B = cfg.batch_size
        yield Batch(
            torch.randn(B, cfg.obs_dim, generator=g),
            torch.rand(B, cfg.act_dim, generator=g) * 2 - 1,
            torch.rand(B, generator=g),
            torch.randn(B, cfg.obs_dim, generator=g),
            (torch.rand(B, generator=g) < terminated).float(),
            torch.zeros(B),
        )


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_update_trains_critic_actor_and_temperature():
    cfg = small_config()
    agent = RLPDAgent(cfg, seed=0)
    critic0, actor0, alpha0 = params(agent.critic), params(agent.actor), agent.alpha.item()
    target0 = params(agent.critic_target)
    stats = agent.update(batches(cfg))
    assert all(isinstance(v, float) and np.isfinite(v) for v in stats.values())
    for key in ("critic_loss", "q_mean", "actor_loss", "alpha", "actor_entropy", "rejected_steps"):
        assert key in stats
    for before, module in ((critic0, agent.critic), (actor0, agent.actor), (target0, agent.critic_target)):
        assert any(not torch.equal(a, b) for a, b in zip(before, params(module)))
    assert agent.alpha.item() != alpha0
    assert stats["rejected_steps"] == 0


def test_critic_target_is_the_soft_subset_min_backup():
    """y = r + gamma (1 - terminated) (min_S Q'(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s')."""
    cfg = small_config(utd=1, gamma=0.9)
    agent = RLPDAgent(cfg, seed=1)
    b = next(batches(cfg, terminated=0.5))
    state = agent.generator.get_state()
    alpha = torch.tensor(0.3)
    y = agent._target(b, alpha)
    g = torch.Generator()
    g.set_state(state)  # replay the same actor noise and critic subset
    with torch.no_grad():
        a, log_prob = agent.actor(b.next_obs, g)
        members = agent.critic_target.random_subset(g)
        v = agent.critic_target(b.next_obs, a, members).amin(0) - alpha * log_prob
    assert torch.allclose(y, b.reward + cfg.gamma * (1 - b.terminated) * v, atol=1e-5)
    term = b.terminated == 1
    assert term.any() and torch.equal(y[term], b.reward[term])


def test_actions_are_bounded_and_deterministic_acting_is_repeatable():
    cfg = small_config()
    agent = RLPDAgent(cfg, seed=0)
    obs = np.random.default_rng(0).standard_normal((4, cfg.obs_dim)).astype(np.float32)
    a = agent.act(obs)
    assert a.shape == (4, cfg.act_dim) and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(agent.act(obs, True), agent.act(obs, True))
    assert agent.act(obs[0]).shape == (cfg.act_dim,)
    assert not np.array_equal(agent.act(obs), agent.act(obs))


def test_checkpoint_round_trip_continues_training_identically(tmp_path):
    cfg = small_config()
    agent = RLPDAgent(cfg, seed=0)
    agent.set_obs_normalization(np.arange(cfg.obs_dim), np.full(cfg.obs_dim, 2.0))
    agent.update(batches(cfg, seed=2))
    save_rlpd(tmp_path / "ckpt", agent, {"env_steps": 3})
    loaded, meta = load_rlpd(tmp_path / "ckpt")
    assert meta == {"env_steps": 3} and loaded.cfg == cfg
    obs = np.ones((2, cfg.obs_dim), dtype=np.float32)
    np.testing.assert_array_equal(agent.act(obs, True), loaded.act(obs, True))
    s1, s2 = agent.update(batches(cfg, seed=9)), loaded.update(batches(cfg, seed=9))
    assert s1 == pytest.approx(s2, rel=1e-6)


def test_config_from_expo_shares_the_budget_and_validates():
    ecfg = preset_config("cpu", 19, 7)
    cfg = RLPDConfig.from_expo(ecfg)
    assert (cfg.utd, cfg.batch_size, cfg.critic, cfg.offline_fraction) == (
        ecfg.utd,
        ecfg.batch_size,
        ecfg.critic,
        ecfg.offline_fraction,
    )
    assert RLPDConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"^utd=0 is invalid"):
        small_config(utd=0)
    with pytest.raises(ValueError, match=r"^gamma="):
        small_config(gamma=1.0)
