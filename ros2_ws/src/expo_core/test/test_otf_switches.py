"""The OTF switches of issue 14, each checked against its maths on an agent whose online, EMA and
target networks differ (divergent.py): the paper's entropy backup, the scoring rule of acting
and targets, the independent evaluation subset, the target sampler and its weights; and the
Monte-Carlo returns the critics are compared with."""

import math

import numpy as np
import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.config import CriticConfig
from expo_core.otf import build_candidates, gumbel_noise, sample_softmax, take
from expo_core.td import discounted_returns, draw_td_noise, td_targets

CPU = torch.device("cpu")


def _batch(cfg, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, cfg.obs_dim, generator=g),
        action=torch.rand(n, cfg.act_dim, generator=g) * 2 - 1,
        reward=torch.rand(n, generator=g),
        next_obs=torch.randn(n, cfg.obs_dim, generator=g),
        terminated=(torch.rand(n, generator=g) < 0.25).float(),
        truncated=torch.zeros(n),
    )


def _per_critic_q(agent, b, noise, base, critic, steps=None):
    """Candidates at s' from `base` with the TD noise and every critic's Q of them:
    (candidates (B, K, d), Q (E, B, K))."""
    cfg = agent.cfg
    cands = build_candidates(
        base,
        agent.policy.editor,
        b.next_obs,
        cfg.num_samples,
        steps=cfg.target_sampling_steps() if steps is None else steps,
        base_noise=noise.base,
        edit_noise=noise.edit,
    )
    K = cands.shape[1]
    return cands, critic(b.next_obs[:, None].expand(-1, K, -1), cands)


def _targets(agent, b, noise, alpha):
    return td_targets(agent.cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)


def test_sample_softmax_draws_from_the_softmax_of_beta_times_q():
    n = 40_000
    q = torch.tensor([0.0, 0.5, 1.0, 2.0]).expand(n, -1)
    index, log_p = sample_softmax(q, 2.0, gumbel_noise((n, 4), torch.Generator().manual_seed(0)))
    p = torch.softmax(2.0 * q[0], -1)
    freq = torch.bincount(index, minlength=4).float() / n
    assert torch.allclose(freq, p, atol=0.012), (freq, p)  # > 4 standard errors
    assert torch.allclose(log_p, torch.log(p)[index], atol=1e-6)


@pytest.mark.parametrize("backup_alpha", [None, 0.05])
def test_paper_backup_draws_a_star_and_subtracts_alpha_log_p(make_cfg, backup_alpha):
    cfg = make_cfg(entropy_backup="paper", backup_temperature=3.0, backup_alpha=backup_alpha)
    agent = diverge(ExpoAgent(cfg, seed=4))
    b = _batch(cfg)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(1), CPU)
    K = 2 * cfg.num_samples
    assert noise.gumbel.shape == (len(b), K)
    alpha = torch.tensor(0.7)
    with torch.no_grad():
        td = _targets(agent, b, noise, alpha)
        _, q_all = _per_critic_q(agent, b, noise, agent.base, agent.critic_target)
        q = q_all[noise.members].amin(0)
        log_p = torch.log_softmax(3.0 * q, -1)
        k = (log_p + noise.gumbel).argmax(-1)
        q_k, log_p_k = q.gather(1, k[:, None])[:, 0], log_p.gather(1, k[:, None])[:, 0]
    a_b = alpha if backup_alpha is None else backup_alpha
    expected = b.reward + cfg.gamma * (1 - b.terminated) * (q_k - a_b * log_p_k)
    assert torch.allclose(td.target[0], expected, atol=1e-5)
    assert torch.allclose(td.next_q[0], q_k, atol=1e-6) and torch.allclose(td.log_prob[0], log_p_k, atol=1e-6)
    assert (k != q.argmax(-1)).any()  # a draw, not the argmax
    p = log_p.exp()
    assert torch.allclose(td.entropy[0], -(p * log_p).sum(-1), atol=1e-5)
    # the same explicit generator seed gives the same draw and target
    again = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(1), CPU)
    assert torch.equal(_targets(agent, b, again, alpha).target, td.target)


def test_acting_scores_by_the_rule_it_is_configured_with(make_cfg):
    obs = torch.randn(8, 4)
    for rule in ("mean", "subset_min"):
        cfg = make_cfg(act_score=rule)  # 4 critics, subsets of 2
        agent = diverge(ExpoAgent(cfg, seed=0))
        res = agent.policy.decide(obs, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        nobs = agent.policy.normalizer(obs)
        with torch.no_grad():
            cands = build_candidates(agent.policy.base, agent.policy.editor, nobs, cfg.num_samples, g)
            q_all = agent.policy.critic(nobs[:, None].expand(-1, cands.shape[1], -1), cands)
        if rule == "mean":
            expected = q_all.mean(0)
        else:  # one subset per decision, drawn from the same generator after the candidates
            members = torch.randperm(cfg.critic.num_critics, generator=g)[: cfg.critic.num_min]
            expected = q_all[members].amin(0)
            assert not torch.allclose(q_all.mean(0), expected, atol=1e-3)
        assert torch.allclose(res.candidates, cands, atol=1e-6)
        assert torch.allclose(res.q, expected, atol=1e-6)
        assert torch.equal(res.index, expected.argmax(-1))


def test_subset_min_acting_needs_a_generator_unless_the_subset_is_every_critic(make_cfg):
    cfg = make_cfg(act_score="subset_min")
    agent = ExpoAgent(cfg, seed=0)
    noise = torch.randn(agent.policy.base.noise_shape(2, cfg.num_samples)), torch.randn(2, cfg.num_samples, 3)
    with pytest.raises(ValueError, match="subset_min"):
        agent.policy.decide(torch.zeros(2, 4), base_noise=noise[0], edit_noise=noise[1])
    members = torch.tensor([1, 3])
    res = agent.policy.decide(torch.zeros(2, 4), base_noise=noise[0], edit_noise=noise[1], members=members)
    nobs = agent.policy.normalizer(torch.zeros(2, 4))
    q = agent.policy.critic(nobs[:, None].expand(-1, res.candidates.shape[1], -1), res.candidates)
    assert torch.allclose(res.q, q[members].amin(0), atol=1e-6)
    # the min over all critics needs no draw: acting stays a pure function of (obs, noise)
    all_three = CriticConfig(hidden_dims=(32,), num_critics=3, num_min=3)
    every = ExpoAgent(make_cfg(act_score="subset_min", critic=all_three))
    r1 = every.policy.decide(torch.zeros(2, 4), base_noise=noise[0], edit_noise=noise[1])
    q = every.policy.critic(nobs[:, None].expand(-1, r1.candidates.shape[1], -1), r1.candidates)
    assert torch.allclose(r1.q, q.amin(0), atol=1e-6)


def test_mean_target_score_averages_every_target_critic(make_cfg):
    cfg = make_cfg(target_score="mean")
    agent = diverge(ExpoAgent(cfg, seed=2))
    b = _batch(cfg, seed=1)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(5), CPU)
    with torch.no_grad():
        td = _targets(agent, b, noise, torch.tensor(0.5))
        _, q_all = _per_critic_q(agent, b, noise, agent.base, agent.critic_target)
    best = q_all.mean(0).max(-1).values
    assert torch.allclose(td.target[0], b.reward + cfg.gamma * (1 - b.terminated) * best, atol=1e-5)
    subset_best = q_all[noise.members].amin(0).max(-1).values
    assert not torch.allclose(best, subset_best, atol=1e-3)


def test_independent_subset_scores_the_chosen_action(make_cfg):
    cfg = make_cfg(target_eval_subset="independent")  # 4 critics, two disjoint subsets of 2
    agent = diverge(ExpoAgent(cfg, seed=6))
    b = _batch(cfg, seed=2)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(3), CPU)
    assert len(noise.eval_members) == len(noise.members) == 2
    assert not set(noise.eval_members.tolist()) & set(noise.members.tolist())
    with torch.no_grad():
        td = _targets(agent, b, noise, torch.tensor(0.5))
        cands, q_all = _per_critic_q(agent, b, noise, agent.base, agent.critic_target)
        pick = q_all[noise.members].amin(0)
        k = pick.argmax(-1)  # picked by the first subset...
        a_star = take(cands, k)
        q_eval = agent.critic_target(b.next_obs, a_star)[noise.eval_members].amin(0)  # ...scored by the other
    mask = 1 - b.terminated
    assert torch.allclose(td.target[0], b.reward + cfg.gamma * mask * q_eval, atol=1e-5)
    assert torch.allclose(td.next_q[0], q_eval, atol=1e-5)
    assert not torch.allclose(q_eval, pick.max(-1).values, atol=1e-3)  # "same" would differ
    same = draw_td_noise(cfg.replace(target_eval_subset="same"), agent.base, 4, torch.Generator(), CPU)
    assert torch.equal(same.eval_members, same.members)


@pytest.mark.parametrize("sampler", ["fast", "faithful"])
@pytest.mark.parametrize("weights", ["online", "ema"])
def test_target_candidates_come_from_the_configured_sampler_and_weights(make_cfg, sampler, weights):
    # fast: 2 DDIM steps; faithful: the acting sampler, here full DDPM (T = 5)
    cfg = make_cfg(td_sampling_steps=2, target_sampler=sampler, target_base=weights)
    agent = diverge(ExpoAgent(cfg, seed=1))
    b = agent._normalized(_batch(cfg, seed=4))
    alpha = torch.tensor(0.3)
    agent.generator.manual_seed(11)
    td = agent._td_targets([b], alpha)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(11), CPU)
    steps = 2 if sampler == "fast" else 0
    assert noise.base.shape[0] == (1 if sampler == "fast" else cfg.diffusion.num_steps + 1)
    right, wrong = (agent.base, agent.policy.base) if weights == "online" else (agent.policy.base, agent.base)

    def target(base, steps):
        with torch.no_grad():
            _, q_all = _per_critic_q(agent, b, noise, base, agent.critic_target, steps=steps)
        return b.reward + cfg.gamma * (1 - b.terminated) * q_all[noise.members].amin(0).max(-1).values

    assert torch.allclose(td.target[0], target(right, steps), atol=1e-5)
    assert not torch.allclose(target(wrong, steps), td.target[0], atol=1e-3)


def test_discounted_returns_of_an_episode():
    r = [0.0, 0.0, 1.0]
    np.testing.assert_allclose(discounted_returns(r, 0.9), [0.81, 0.9, 1.0])
    np.testing.assert_allclose(discounted_returns([1.0] * 4, 1.0), [4.0, 3.0, 2.0, 1.0])
    long = discounted_returns(np.ones(2000), 0.99)
    assert long[0] == pytest.approx((1 - 0.99**2000) / (1 - 0.99)) and math.isclose(long[-1], 1.0)
    assert discounted_returns([], 0.9).shape == (0,)
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(r, 1.5)
    with pytest.raises(ValueError, match="rewards"):
        discounted_returns(np.zeros((2, 3)), 0.9)
