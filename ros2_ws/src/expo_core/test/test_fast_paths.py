"""Every fast inference path against the reference computation (expo_core.bench.reference):
same inputs and noise -> same Q, candidates and choice within float tolerance, on networks whose
parameters are random, non-default (LayerNorm affines too) and different from one another."""

import pytest
import torch
from expo_core.bench import reference
from expo_core.bench.fast_paths import fast_decide
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig
from expo_core.critic import CriticEnsemble
from expo_core.diffusion import DiffusionBase
from expo_core.policy import ExpoPolicy


def randomize(module: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Every parameter drawn afresh (LayerNorm weights around 1, everything else around 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            p.copy_(1.0 + noise if "norm" in name and name.endswith("weight") else noise)
    return module


def critic(layer_norm: bool = True, seed: int = 0) -> CriticEnsemble:
    cfg = CriticConfig(hidden_dims=(32, 24, 16), num_critics=5, num_min=2, layer_norm=layer_norm)
    return randomize(CriticEnsemble(cfg, obs_dim=6, act_dim=3), seed)


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("loop_min_rows", [0, 10**9], ids=["per-member", "batched"])
@pytest.mark.parametrize("subset", [False, True])
def test_q_candidates_equals_the_concat_path(layer_norm: bool, loop_min_rows: int, subset: bool) -> None:
    c = critic(layer_norm, seed=1)
    c.loop_min_rows = loop_min_rows
    g = torch.Generator().manual_seed(2)
    obs, acts = torch.randn(7, 6, generator=g), torch.rand(7, 11, 3, generator=g) * 2 - 1
    members = torch.tensor([4, 1]) if subset else None
    before = (obs.clone(), acts.clone())
    fast = c.q_candidates(obs, acts, members)
    ref = reference.critic_forward(c, obs[:, None].expand(7, 11, 6), acts, members)
    assert fast.shape == ref.shape == (2 if subset else 5, 7, 11)
    assert torch.allclose(fast, ref, atol=1e-5, rtol=1e-5)
    for j, m in enumerate(members.tolist() if subset else range(5)):  # and a plain per-member MLP
        plain = reference.critic_loop(c, obs[:, None].expand(7, 11, 6), acts, m)
        assert torch.allclose(fast[j], plain, atol=1e-5, rtol=1e-5)
    assert torch.equal(obs, before[0]) and torch.equal(acts, before[1])  # inputs untouched
    assert not fast.requires_grad


@pytest.mark.parametrize("loop_min_rows", [0, 10**9], ids=["per-member", "batched"])
@pytest.mark.parametrize("groups", [1, 3])
def test_grouped_paths_equal_the_reference(loop_min_rows: int, groups: int) -> None:
    c = critic(seed=3)
    c.loop_min_rows = loop_min_rows
    g = torch.Generator().manual_seed(4)
    G, B, K = groups, 5, 4
    obs, acts = torch.randn(G, B, 6, generator=g), torch.rand(G, B, K, 3, generator=g) * 2 - 1
    members = torch.stack([torch.randperm(5, generator=g)[:2] for _ in range(G)])
    obs_rows = obs[:, :, None].expand(G, B, K, 6).reshape(G, B * K, 6)
    ref = reference.critic_forward_grouped(c, obs_rows, acts.reshape(G, B * K, 3), members)  # (k, G, M)
    fast = c.q_candidates_grouped(obs, acts, members)
    assert fast.shape == (2, G, B, K)
    assert torch.allclose(fast.reshape(2, G, B * K), ref, atol=1e-5, rtol=1e-5)
    rows = c.forward_grouped(obs_rows, acts.reshape(G, B * K, 3), members)
    assert torch.allclose(rows, ref, atol=1e-5, rtol=1e-5)
    for gi in range(G):  # each group really is evaluated by its own members
        for j in range(2):
            plain = reference.critic_loop(c, obs_rows[gi], acts[gi].reshape(B * K, 3), int(members[gi, j]))
            assert torch.allclose(fast[j, gi].reshape(-1), plain, atol=1e-5, rtol=1e-5)


def base(steps: int = 6, seed: int = 5) -> DiffusionBase:
    cfg = DiffusionConfig(hidden_dim=32, num_blocks=2, block_dim=48, time_embed_dim=8, num_steps=steps)
    return randomize(DiffusionBase(cfg, obs_dim=6, act_dim=3), seed, scale=0.2)


@pytest.mark.parametrize("steps", [0, 6, 1, 2, 4])
@pytest.mark.parametrize("chunk_rows", [0, 9])
def test_sampler_equals_the_reference(steps: int, chunk_rows: int) -> None:
    b = base()
    g = torch.Generator().manual_seed(6)
    obs = torch.randn(5, 6, generator=g)
    noise = torch.randn(b.noise_shape(5, 4, steps), generator=g)
    kept = noise.clone()
    fast = b.sample(obs, 4, noise=noise, steps=steps, chunk_rows=chunk_rows)
    ref = reference.sample(b, obs, 4, noise, steps)
    assert fast.shape == (5, 4, 3)
    assert torch.allclose(fast, ref, atol=1e-5)
    assert torch.equal(noise, kept)  # the caller's noise is not updated in place
    assert not fast.requires_grad


def test_sampler_draws_the_same_noise_from_a_generator() -> None:
    b = base()
    obs = torch.randn(3, 6)
    fast = b.sample(obs, 4, torch.Generator().manual_seed(7))
    noise = torch.randn(b.noise_shape(3, 4), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(fast, reference.sample(b, obs, 4, noise), atol=1e-5)


def test_denoiser_shared_forward_equals_forward() -> None:
    den = base().denoiser
    obs, a, t = torch.randn(4, 6), torch.randn(4, 5, 3), torch.tensor(3.0)
    ref = den(obs[:, None].expand(4, 5, 6), a, t.expand(4, 5))
    with torch.no_grad():
        fast = den.forward_shared_((den.obs_proj(obs) + den.time_proj(t))[:, None], a)
    assert torch.allclose(fast, ref, atol=1e-5)


def _policy(cfg: ExpoConfig) -> ExpoPolicy:
    policy = ExpoPolicy(cfg)
    randomize(policy.base, 11, scale=0.15)
    randomize(policy.editor, 12)
    randomize(policy.critic, 13)
    return policy.eval()


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("steps", [0, 2])
def test_fast_decision_equals_the_reference(deterministic: bool, steps: int) -> None:
    cfg = ExpoConfig(
        obs_dim=6,
        act_dim=3,
        diffusion=DiffusionConfig(hidden_dim=32, num_blocks=2, block_dim=48, time_embed_dim=8, num_steps=5),
        editor=EditorConfig(hidden_dims=(24, 24), beta=0.3),
        critic=CriticConfig(hidden_dims=(32, 32), num_critics=4),
        num_samples=6,
        act_sampling_steps=steps,
    )
    policy = _policy(cfg)
    g = torch.Generator().manual_seed(14)
    obs = torch.randn(9, 6, generator=g)
    base_noise = torch.randn(policy.base.noise_shape(9, 6, steps), generator=g)
    edit_noise = None if deterministic else torch.randn(9, 6, 3, generator=g)
    parts = (policy.base, policy.editor, policy.critic, obs, base_noise, edit_noise, steps)
    a_ref, c_ref, q_ref = reference.decide(*parts)
    a, c, q = fast_decide(*parts)
    assert torch.allclose(c, c_ref, atol=1e-5) and torch.allclose(q, q_ref, atol=1e-5, rtol=1e-5)
    top2 = q_ref.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4  # the choice is the same wherever it is not a tie
    assert clear.sum() >= 7
    assert torch.equal(q.argmax(-1)[clear], q_ref.argmax(-1)[clear])
    assert torch.allclose(a[clear], a_ref[clear], atol=1e-5)


def test_fast_decision_at_published_sizes() -> None:
    policy = _policy(ExpoConfig(obs_dim=19, act_dim=7))
    g = torch.Generator().manual_seed(15)
    obs = torch.randn(2, 19, generator=g)
    noise, edit_noise = (
        torch.randn(policy.base.noise_shape(2, 8), generator=g),
        torch.randn(2, 8, 7, generator=g),
    )
    parts = (policy.base, policy.editor, policy.critic, obs, noise, edit_noise)
    _, c_ref, q_ref = reference.decide(*parts)
    _, c, q = fast_decide(*parts)
    assert torch.allclose(c, c_ref, atol=1e-5)
    assert torch.allclose(q, q_ref, atol=1e-4, rtol=1e-5)
