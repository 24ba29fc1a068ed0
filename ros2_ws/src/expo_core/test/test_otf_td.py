import torch
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.otf import build_candidates, select, softmax_entropy
from expo_core.td import draw_td_noise, td_targets


def _batch(cfg, n=16, seed=0, terminated=None, truncated=None):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, cfg.obs_dim, generator=g),
        action=torch.rand(n, cfg.act_dim, generator=g) * 2 - 1,
        reward=torch.rand(n, generator=g),
        next_obs=torch.randn(n, cfg.obs_dim, generator=g),
        terminated=torch.zeros(n) if terminated is None else terminated,
        truncated=torch.zeros(n) if truncated is None else truncated,
    )


def test_otf_returns_the_argmax_of_the_q_it_reports(tiny_cfg):
    agent = ExpoAgent(tiny_cfg, seed=0)
    res = agent.decide(torch.randn(32, tiny_cfg.obs_dim))
    K = 2 * tiny_cfg.num_samples
    assert res.candidates.shape == (32, K, tiny_cfg.act_dim) and res.q.shape == (32, K)
    assert torch.equal(res.index, res.q.argmax(-1))
    assert torch.equal(res.action, res.candidates[torch.arange(32), res.index])
    # the reported Q is the ensemble-mean Q of each candidate
    nobs = agent.policy.normalizer(torch.zeros(1, tiny_cfg.obs_dim))
    r1 = agent.decide(torch.zeros(1, tiny_cfg.obs_dim))
    q = agent.policy.critic(nobs[:, None].expand(1, K, -1), r1.candidates).mean(0)
    assert torch.allclose(q, r1.q, atol=1e-6)


def test_edited_candidates_follow_their_base_sample(tiny_cfg):
    agent = ExpoAgent(tiny_cfg, seed=0)
    obs = torch.randn(8, tiny_cfg.obs_dim)
    c = build_candidates(agent.policy.base, agent.policy.editor, obs, tiny_cfg.num_samples)
    n = tiny_cfg.num_samples
    assert (c[:, n:] - c[:, :n]).abs().max() <= tiny_cfg.editor.beta + 1e-6


def test_select_rejects_mismatched_q():
    import pytest

    with pytest.raises(ValueError):
        select(torch.zeros(2, 4, 3), torch.zeros(2, 5))


def test_entropy_backup_equals_numerical_entropy():
    q = torch.randn(5, 16, dtype=torch.float64) * 3
    for alpha in (0.05, 0.5, 2.0):
        w = torch.exp((q - q.max(-1, keepdim=True).values) / alpha)
        p = w / w.sum(-1, keepdim=True)
        numeric = -(p * torch.log(p)).sum(-1)
        assert torch.allclose(softmax_entropy(q, alpha), numeric, atol=1e-10)
    assert torch.allclose(
        softmax_entropy(torch.zeros(1, 16), 1.0), torch.tensor([torch.log(torch.tensor(16.0))])
    )


def _manual_target(agent, cfg, b, noise, alpha):
    cands = build_candidates(
        agent.base,
        agent.policy.editor,
        b.next_obs,
        cfg.num_samples,
        steps=cfg.td_sampling_steps,
        base_noise=noise.base,
        edit_noise=noise.edit,
    )
    K = cands.shape[1]
    q_all = agent.critic_target(b.next_obs[:, None].expand(-1, K, -1), cands)  # (E, B, K)
    q = q_all[noise.members].amin(0)
    best = q.max(-1).values
    return q, best


def test_td_target_uses_the_otf_action_and_masks_only_true_terminations(tiny_cfg):
    agent = ExpoAgent(tiny_cfg, seed=3)
    term = torch.tensor([1.0, 0, 0, 0] * 4)
    trunc = torch.tensor([0.0, 1, 0, 0] * 4)
    b = _batch(tiny_cfg, terminated=term, truncated=trunc)
    g = torch.Generator().manual_seed(7)
    noise = draw_td_noise(tiny_cfg, agent.base, len(b), g, torch.device("cpu"))
    alpha = torch.tensor(0.3)
    with torch.no_grad():
        _, best = _manual_target(agent, tiny_cfg, b, noise, alpha)
        td = td_targets(tiny_cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
    expected = b.reward + tiny_cfg.gamma * (1 - term) * best  # truncated rows still bootstrap
    assert torch.allclose(td.target[0], expected, atol=1e-5)
    assert torch.allclose(td.target[0][term == 1], b.reward[term == 1])
    # reference behaviour: truncation treated as terminal
    ref_cfg = tiny_cfg.replace(bootstrap_truncated=False)
    with torch.no_grad():
        td_ref = td_targets(
            ref_cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha
        )
    mask = 1 - torch.maximum(term, trunc)
    assert torch.allclose(td_ref.target[0], b.reward + tiny_cfg.gamma * mask * best, atol=1e-5)


def test_entropy_backup_adds_alpha_times_softmax_entropy(tiny_cfg):
    cfg = tiny_cfg.replace(entropy_backup=True)
    agent = ExpoAgent(cfg, seed=4)
    b = _batch(cfg)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(1), torch.device("cpu"))
    alpha = torch.tensor(0.7)
    with torch.no_grad():
        q, best = _manual_target(agent, cfg, b, noise, alpha)
        td = td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
    expected = b.reward + cfg.gamma * (best + alpha * softmax_entropy(q, alpha))
    assert torch.allclose(td.target[0], expected, atol=1e-5)
    assert (td.entropy > 0).all()
