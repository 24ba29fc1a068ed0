"""The paper's ablation switches: `use_editor=False` (OTF over base samples only) and
`max_q_backup=False` (TD target from one sampled action, no argmax). Defaults stay EXPO.
Also: the batched TD path equals the per-minibatch one under every OTF switch."""

import itertools

import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.config import ExpoConfig
from expo_core.td import draw_td_noise, td_targets


def _batches(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in itertools.count():
        B = cfg.batch_size
        yield Batch(
            torch.randn(B, cfg.obs_dim, generator=g),
            torch.rand(B, cfg.act_dim, generator=g) * 2 - 1,
            torch.rand(B, generator=g),
            torch.randn(B, cfg.obs_dim, generator=g),
            (torch.rand(B, generator=g) < 0.2).float(),
            torch.zeros(B),
        )


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_defaults_are_expo_and_flags_are_validated():
    c = ExpoConfig(obs_dim=5, act_dim=2)
    assert c.use_editor and c.max_q_backup
    with pytest.raises(ValueError, match=r"^use_editor=.*allowed"):
        ExpoConfig(obs_dim=5, act_dim=2, use_editor=0)
    for backup in ("paper", "softmax_entropy"):
        with pytest.raises(ValueError, match=rf"^entropy_backup='{backup}'.*max_q_backup"):
            ExpoConfig(obs_dim=5, act_dim=2, max_q_backup=False, entropy_backup=backup)
    off = c.replace(use_editor=False, max_q_backup=False)
    assert ExpoConfig.from_json(off.to_json()) == off


def test_without_editor_otf_picks_among_base_samples_and_editor_never_trains(make_cfg):
    cfg = make_cfg(use_editor=False)
    agent = ExpoAgent(cfg, seed=0)
    res = agent.decide(torch.randn(6, cfg.obs_dim))
    assert res.candidates.shape == (6, cfg.num_samples, cfg.act_dim)
    assert torch.equal(res.index, res.q.argmax(-1))
    editor_before, alpha_before = _params(agent.policy.editor), agent.alpha.item()
    stats = agent.update(_batches(cfg))
    assert stats["td_edited_fraction"] == 0.0 and "editor_loss" not in stats
    assert all(torch.equal(a, b) for a, b in zip(editor_before, _params(agent.policy.editor)))
    assert agent.alpha.item() == alpha_before


def test_without_editor_the_target_is_the_max_over_base_samples(make_cfg):
    cfg = make_cfg(use_editor=False)
    agent = diverge(ExpoAgent(cfg, seed=2))
    b = next(_batches(cfg, seed=3))
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(1), torch.device("cpu"))
    alpha = torch.tensor(0.5)

    def best_q(base, critic):
        samples = base.sample(b.next_obs, cfg.num_samples, noise=noise.base)
        K = samples.shape[1]
        return critic(b.next_obs[:, None].expand(-1, K, -1), samples)[noise.members].amin(0).max(-1).values

    with torch.no_grad():
        td = td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
        q = best_q(agent.base, agent.critic_target)  # online base, target critics
        assert not torch.allclose(best_q(agent.policy.base, agent.critic_target), q, atol=1e-3)
        assert not torch.allclose(best_q(agent.base, agent.policy.critic), q, atol=1e-3)
    expected = b.reward + cfg.gamma * (1 - b.terminated) * q
    assert torch.allclose(td.target[0], expected, atol=1e-5)


@pytest.mark.parametrize("use_editor", [True, False])
def test_sampled_backup_uses_one_sampled_action_without_argmax(make_cfg, use_editor):
    cfg = make_cfg(max_q_backup=False, use_editor=use_editor)
    agent = diverge(ExpoAgent(cfg, seed=4))
    b = next(_batches(cfg, seed=5))
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(1), torch.device("cpu"))
    assert noise.base.shape[2] == 1 and noise.edit.shape[1] == 1  # one base sample per next state
    alpha = torch.tensor(0.5)

    def sampled_q(base, critic):
        a = base.sample(b.next_obs, 1, noise=noise.base)[:, 0]
        if use_editor:
            a = agent.policy.editor(b.next_obs, a, noise=noise.edit[:, 0]).action
        return critic(b.next_obs, a)[noise.members].amin(0)

    with torch.no_grad():
        td = td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
        q = sampled_q(agent.base, agent.critic_target)
        assert not torch.allclose(sampled_q(agent.policy.base, agent.critic_target), q, atol=1e-3)
        assert not torch.allclose(sampled_q(agent.base, agent.policy.critic), q, atol=1e-3)
    assert torch.allclose(td.target[0], b.reward + cfg.gamma * (1 - b.terminated) * q, atol=1e-5)
    assert td.edited_fraction == (1.0 if use_editor else 0.0)
    # acting still takes the max over N base samples and their N edits
    res = agent.decide(torch.randn(3, cfg.obs_dim))
    assert res.candidates.shape[1] == (2 if use_editor else 1) * cfg.num_samples


@pytest.mark.parametrize(
    "changes",
    [
        dict(use_editor=False),
        dict(max_q_backup=False),
        dict(entropy_backup="paper", backup_temperature=3.0),
        dict(entropy_backup="softmax_entropy"),
        dict(target_eval_subset="independent"),
        dict(target_score="mean", act_score="mean"),
        dict(target_sampler="faithful", target_base="ema", td_sampling_steps=2),
        dict(entropy_backup="paper", use_editor=False, td_chunk_rows=40),
    ],
)
def test_batched_td_equals_faithful_path_for_every_switch(make_cfg, changes):
    cfg = make_cfg(tau=0.0, utd=3, **changes)
    fast = diverge(ExpoAgent(cfg.replace(batched_td=True), seed=1))
    slow = diverge(ExpoAgent(cfg.replace(batched_td=False), seed=1))
    sf, ss = fast.update(_batches(cfg, seed=5)), slow.update(_batches(cfg, seed=5))
    assert sf == pytest.approx(ss, rel=1e-5)
    for a, b in zip(_params(fast), _params(slow)):
        assert torch.allclose(a, b, atol=1e-5)
