"""Each learning step trains the network it must and reads the copies it must, checked on agents
whose online, EMA and target networks differ (divergent.py), against a manual step on a twin
agent; a twin wired the other way must end elsewhere, so each check can fail."""

import itertools

import numpy as np
import torch
from divergent import diverge
from expo_core.agent import EVAL_SEED, ExpoAgent
from expo_core.batch import Batch
from expo_core.losses import critic_loss, editor_loss


def _batch(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    B = cfg.batch_size
    return Batch(
        torch.randn(B, cfg.obs_dim, generator=g),
        torch.rand(B, cfg.act_dim, generator=g) * 2 - 1,
        torch.rand(B, generator=g),
        torch.randn(B, cfg.obs_dim, generator=g),
        (torch.rand(B, generator=g) < 0.2).float(),
        torch.zeros(B),
    )


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b, atol=1e-6):
    return all(torch.allclose(x, y, atol=atol) for x, y in zip(_params(a), _params(b)))


def _twins(cfg, n=3):
    return [diverge(ExpoAgent(cfg, seed=0)) for _ in range(n)]


def test_agent_decide_is_the_ema_policy_decision(tiny_cfg):
    agent = diverge(ExpoAgent(tiny_cfg, seed=0))
    obs = torch.randn(5, tiny_cfg.obs_dim)
    res = agent.decide(obs, deterministic=True)
    ref = agent.policy.decide(obs, torch.Generator().manual_seed(EVAL_SEED), deterministic=True)
    assert torch.equal(res.action, ref.action) and torch.equal(res.q, ref.q)
    np.testing.assert_array_equal(agent.act(obs.numpy(), deterministic=True), ref.action.numpy())


def test_editor_trains_on_ema_base_samples_against_the_online_critics(make_cfg):
    cfg = make_cfg(act_sampling_steps=2)  # the editor's samples use the acting sampler
    agent, twin, wrong = _twins(cfg)
    b = agent._normalized(_batch(cfg))
    alpha = agent.alpha
    agent._editor_and_temperature_steps(b, alpha)
    for other, base, critic in (
        (twin, twin.policy.base, twin.policy.critic),  # as it must be
        (wrong, wrong.base, wrong.policy.critic),  # the online base's samples
    ):
        with torch.no_grad():
            a = base.sample(b.obs, 1, other.generator, steps=cfg.act_sampling_steps)[:, 0]
        ed = editor_loss(other.policy.editor, critic, b.obs, a, alpha, other.generator)
        other._step(other.editor_opt, ed.loss)
    assert _same(agent.policy.editor, twin.policy.editor)
    assert not _same(agent.policy.editor, wrong.policy.editor, atol=1e-4)
    # the target critics instead of the online ones end elsewhere too
    third = diverge(ExpoAgent(cfg, seed=0))
    with torch.no_grad():
        a = third.policy.base.sample(b.obs, 1, third.generator, steps=cfg.act_sampling_steps)[:, 0]
    ed = editor_loss(third.policy.editor, third.critic_target, b.obs, a, alpha, third.generator)
    third._step(third.editor_opt, ed.loss)
    assert not _same(agent.policy.editor, third.policy.editor, atol=1e-4)


def test_bc_step_trains_the_online_base_and_the_ema_copy_follows(tiny_cfg):
    agent, twin, _ = _twins(tiny_cfg)
    b = agent._normalized(_batch(tiny_cfg))
    ema_before = _params(agent.policy.base)
    agent._base_step(b)
    loss = twin.base.loss(b.obs, b.action, twin.generator)  # the online base imitates
    twin._step(twin.base_opt, loss)
    assert _same(agent.base, twin.base)
    tau = tiny_cfg.diffusion.ema_tau
    for old, new, online in zip(ema_before, _params(agent.policy.base), _params(agent.base)):
        assert torch.allclose(new, (1 - tau) * old + tau * online, atol=1e-6)


def test_critic_step_trains_the_online_critics_and_the_targets_follow(make_cfg):
    cfg = make_cfg(utd=1, tau=0.05)
    agent, twin, _ = _twins(cfg)
    target_before = _params(agent.critic_target)
    it = itertools.repeat(_batch(cfg))
    b = twin._normalized(next(it))
    agent._critic_steps([agent._normalized(next(it))], agent.alpha)
    y = twin._td_targets([b], twin.alpha).target[0]  # the target critics' backup
    loss, _ = critic_loss(twin.policy.critic, b.obs, b.action, y)
    twin._step(twin.critic_opt, loss)
    assert _same(agent.policy.critic, twin.policy.critic)
    for old, new, online in zip(target_before, _params(agent.critic_target), _params(agent.policy.critic)):
        assert torch.allclose(new, (1 - cfg.tau) * old + cfg.tau * online, atol=1e-6)
