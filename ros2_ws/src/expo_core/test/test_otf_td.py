import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.otf import build_candidates, edited_fraction, select, softmax_entropy
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


def _acting_noise(agent, B, seed=0):
    cfg, g = agent.cfg, torch.Generator().manual_seed(seed)
    base = torch.randn(agent.policy.base.noise_shape(B, cfg.num_samples, cfg.act_sampling_steps), generator=g)
    return base, torch.randn(B, cfg.num_samples, cfg.act_dim, generator=g)


def test_otf_acts_with_the_ema_base_and_scores_by_the_online_critics_mean(tiny_cfg):
    agent = diverge(ExpoAgent(tiny_cfg, seed=0))
    obs = torch.randn(32, tiny_cfg.obs_dim)
    base_noise, edit_noise = _acting_noise(agent, 32)
    res = agent.policy.decide(obs, base_noise=base_noise, edit_noise=edit_noise)
    K = 2 * tiny_cfg.num_samples
    assert res.candidates.shape == (32, K, tiny_cfg.act_dim) and res.q.shape == (32, K)
    assert torch.equal(res.index, res.q.argmax(-1))
    assert torch.equal(res.action, res.candidates[torch.arange(32), res.index])
    assert torch.equal(res.chosen_q, res.q.max(-1).values)

    nobs = agent.policy.normalizer(obs)
    noise = dict(base_noise=base_noise, edit_noise=edit_noise)
    with torch.no_grad():

        def candidates(base, x=nobs):
            return build_candidates(base, agent.policy.editor, x, tiny_cfg.num_samples, **noise)

        def mean_q(critic, cands):
            return critic(nobs[:, None].expand(-1, K, -1), cands).mean(0)

        cands = candidates(agent.policy.base)  # the EMA copy acts
        assert torch.allclose(res.candidates, cands, atol=1e-6)
        assert torch.allclose(res.q, mean_q(agent.policy.critic, cands), atol=1e-6)  # online critics
        # the other copies give other numbers, so the two checks above can fail
        assert not torch.allclose(candidates(agent.base), cands, atol=1e-3)
        assert not torch.allclose(mean_q(agent.critic_target, cands), res.q, atol=1e-3)
        # and the observation is normalized first
        assert not torch.allclose(candidates(agent.policy.base, obs), cands, atol=1e-3)


def test_edited_candidates_follow_their_base_sample(tiny_cfg):
    agent = ExpoAgent(tiny_cfg, seed=0)
    obs = torch.randn(8, tiny_cfg.obs_dim)
    c = build_candidates(agent.policy.base, agent.policy.editor, obs, tiny_cfg.num_samples)
    n = tiny_cfg.num_samples
    assert (c[:, n:] - c[:, :n]).abs().max() <= tiny_cfg.editor.beta + 1e-6


def test_select_rejects_mismatched_q():
    with pytest.raises(ValueError):
        select(torch.zeros(2, 4, 3), torch.zeros(2, 5))


def test_edited_fraction_counts_candidates_past_the_base_samples():
    assert edited_fraction(torch.tensor([0, 3, 4, 7]), 4) == 0.5
    assert edited_fraction(torch.tensor([0, 1]), 2) == 0.0


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


def _subset_min_q(agent, cfg, b, noise, base, critic):
    """Candidates at s' from `base` with the TD noise, scored by the min over the noise's subset
    of `critic`: (B, K)."""
    cands = build_candidates(
        base,
        agent.policy.editor,
        b.next_obs,
        cfg.num_samples,
        steps=cfg.td_sampling_steps,
        base_noise=noise.base,
        edit_noise=noise.edit,
    )
    K = cands.shape[1]
    return critic(b.next_obs[:, None].expand(-1, K, -1), cands)[noise.members].amin(0)


def test_td_target_uses_the_otf_action_and_masks_only_true_terminations(tiny_cfg):
    agent = diverge(ExpoAgent(tiny_cfg, seed=3))
    term = torch.tensor([1.0, 0, 0, 0] * 4)
    trunc = torch.tensor([0.0, 1, 0, 0] * 4)
    b = _batch(tiny_cfg, terminated=term, truncated=trunc)
    g = torch.Generator().manual_seed(7)
    noise = draw_td_noise(tiny_cfg, agent.base, len(b), g, torch.device("cpu"))
    alpha = torch.tensor(0.3)
    with torch.no_grad():
        # targets: the online base's samples, scored by the target critics
        best = _subset_min_q(agent, tiny_cfg, b, noise, agent.base, agent.critic_target).max(-1).values
        td = td_targets(tiny_cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
        wrong = _subset_min_q(agent, tiny_cfg, b, noise, agent.base, agent.policy.critic).max(-1).values
    expected = b.reward + tiny_cfg.gamma * (1 - term) * best  # truncated rows still bootstrap
    assert torch.allclose(td.target[0], expected, atol=1e-5)
    assert torch.allclose(td.next_q[0], best, atol=1e-5)
    assert not torch.allclose(wrong, best, atol=1e-3)  # the online critics would differ
    assert torch.allclose(td.target[0][term == 1], b.reward[term == 1])
    # reference behaviour: truncation treated as terminal
    ref_cfg = tiny_cfg.replace(bootstrap_truncated=False)
    with torch.no_grad():
        td_ref = td_targets(
            ref_cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha
        )
    mask = 1 - torch.maximum(term, trunc)
    assert torch.allclose(td_ref.target[0], b.reward + tiny_cfg.gamma * mask * best, atol=1e-5)


def test_softmax_entropy_backup_adds_alpha_times_softmax_entropy(make_cfg):
    cfg = make_cfg(entropy_backup="softmax_entropy")
    agent = diverge(ExpoAgent(cfg, seed=4))
    b = _batch(cfg)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(1), torch.device("cpu"))
    assert noise.gumbel is None  # this variant draws nothing beyond the max-Q backup
    alpha = torch.tensor(0.7)
    with torch.no_grad():
        q = _subset_min_q(agent, cfg, b, noise, agent.base, agent.critic_target)
        td = td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
    expected = b.reward + cfg.gamma * (q.max(-1).values + alpha * softmax_entropy(q, alpha))
    assert torch.allclose(td.target[0], expected, atol=1e-5)
    assert (td.entropy > 0).all() and td.log_prob is None


def test_backup_samples_takes_the_max_over_fewer_base_samples_than_acting(make_cfg):
    cfg = make_cfg(num_samples=4, backup_samples=2)
    agent = diverge(ExpoAgent(cfg, seed=5))
    b = _batch(cfg)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(2), torch.device("cpu"))
    assert noise.edit.shape == (len(b), 2, cfg.act_dim)  # 2 base samples (and their edits) per s'
    alpha = torch.tensor(0.3)
    with torch.no_grad():
        two = cfg.replace(num_samples=2, backup_samples=0)  # the candidates of 2 samples
        q = _subset_min_q(agent, two, b, noise, agent.base, agent.critic_target)
        td = td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
    assert q.shape == (len(b), 4)
    assert torch.allclose(td.target[0], b.reward + cfg.gamma * q.max(-1).values, atol=1e-5)
    # the same targets one minibatch at a time and in cache-sized chunks of whole minibatches
    b2 = _batch(cfg, seed=1)
    noise2 = draw_td_noise(cfg, agent.base, len(b2), torch.Generator().manual_seed(3), torch.device("cpu"))
    chunked = cfg.replace(td_chunk_rows=2 * len(b))  # rows = B * backup samples: one minibatch a chunk
    with torch.no_grad():
        both = td_targets(
            chunked, agent.base, agent.policy.editor, agent.critic_target, [b, b2], [noise, noise2], alpha
        )
        one = td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, [b2], [noise2], alpha)
    assert torch.allclose(both.target[0], td.target[0], atol=1e-6)
    assert torch.allclose(both.target[1], one.target[0], atol=1e-6)
    # 0 and anything above N mean all N (an acting copy may lower num_samples); the sampled
    # (SARSA) backup takes one either way
    cpu = torch.device("cpu")
    for n in (0, 4, 9):
        assert (
            draw_td_noise(cfg.replace(backup_samples=n), agent.base, 3, torch.Generator(), cpu).edit.shape[1]
            == 4
        )
    assert cfg.replace(num_samples=1).num_samples == 1  # backup_samples=2 does not block it
    sarsa = cfg.replace(max_q_backup=False)
    assert draw_td_noise(sarsa, agent.base, 3, torch.Generator(), cpu).edit.shape[1] == 1
    with pytest.raises(ValueError, match="backup_samples"):
        make_cfg(backup_samples=-1)


def test_backup_samples_is_left_out_of_the_json_at_0(make_cfg):
    from expo_core.config import ExpoConfig

    assert "backup_samples" not in make_cfg().to_dict()  # configs without it hash as before
    cfg = make_cfg(num_samples=4, backup_samples=2)
    assert cfg.to_dict()["backup_samples"] == 2
    assert ExpoConfig.from_dict(cfg.to_dict()) == cfg


def test_backup_edits_off_takes_the_max_over_the_base_samples_only(make_cfg):
    cfg = make_cfg(num_samples=4, backup_edits=False)
    agent = diverge(ExpoAgent(cfg, seed=6))
    b = _batch(cfg)
    noise = draw_td_noise(cfg, agent.base, len(b), torch.Generator().manual_seed(4), torch.device("cpu"))
    alpha = torch.tensor(0.3)
    with torch.no_grad():
        both = _subset_min_q(agent, cfg, b, noise, agent.base, agent.critic_target)  # (B, 2N)
        td = td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, [b], [noise], alpha)
        with_edits = td_targets(
            cfg.replace(backup_edits=True),
            agent.base,
            agent.policy.editor,
            agent.critic_target,
            [b],
            [noise],
            alpha,
        )
    n = cfg.num_samples
    assert torch.allclose(td.target[0], b.reward + cfg.gamma * both[:, :n].max(-1).values, atol=1e-5)
    assert not td.edited.any()
    assert torch.allclose(with_edits.target[0], b.reward + cfg.gamma * both.max(-1).values, atol=1e-5)
    assert with_edits.edited.any() and not torch.allclose(with_edits.target, td.target)
    assert "backup_edits" not in make_cfg().to_dict() and cfg.to_dict()["backup_edits"] is False
    # acting keeps the edits: the policy's candidates are still base samples and their edits
    obs = torch.randn(3, cfg.obs_dim)
    assert agent.decide(obs, deterministic=True).candidates.shape[1] == 2 * n
