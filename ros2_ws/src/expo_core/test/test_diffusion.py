import math

import pytest
import torch
from expo_core.config import DiffusionConfig
from expo_core.diffusion import DiffusionBase, ddim_timesteps, vp_betas


def test_vp_schedule_matches_closed_form():
    T, bmin, bmax = 10, 0.1, 10.0
    betas = vp_betas(T, bmin, bmax)
    for i in range(T):
        t = i + 1
        expected = 1 - math.exp(-bmin / T - 0.5 * (bmax - bmin) * (2 * t - 1) / T**2)
        assert betas[i].item() == pytest.approx(expected, rel=1e-12)
    assert (betas > 0).all() and (betas < 1).all()
    assert (betas[1:] > betas[:-1]).all()  # noise grows with t
    abar = torch.cumprod(1 - betas, 0)
    # the continuous VP process: abar(T) = exp(-(bmin + (bmax - bmin)/2)) at t = 1
    assert abar[-1].item() == pytest.approx(math.exp(-(bmin + 0.5 * (bmax - bmin))), rel=1e-9)


def test_ddim_timesteps():
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    assert ddim_timesteps(10, 2) == [9, 0]
    assert ddim_timesteps(10, 1) == [9]
    assert len(set(ddim_timesteps(10, 4))) == 4
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


def _bimodal_base(steps: int = 600) -> tuple[DiffusionBase, torch.Generator]:
    torch.manual_seed(0)
    cfg = DiffusionConfig(
        hidden_dim=64, num_blocks=2, block_dim=128, time_embed_dim=16, num_steps=10, lr=2e-3
    )
    base = DiffusionBase(cfg, obs_dim=1, act_dim=1)
    opt = torch.optim.Adam(base.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        sign = torch.randint(0, 2, (256, 1), generator=g).float() * 2 - 1
        a = 0.6 * sign + 0.05 * torch.randn(256, 1, generator=g)
        loss = base.loss(torch.zeros(256, 1), a, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return base, g


def test_sampler_reproduces_a_two_mode_distribution():
    base, g = _bimodal_base()
    with torch.no_grad():
        a = base.sample(torch.zeros(1, 1), 2000, g)[0, :, 0]
    assert a.abs().max() <= 1.0
    near_pos = ((a - 0.6).abs() < 0.2).float().mean().item()
    near_neg = ((a + 0.6).abs() < 0.2).float().mean().item()
    assert near_pos > 0.3 and near_neg > 0.3, (near_pos, near_neg)  # both modes covered
    assert near_pos + near_neg > 0.85  # little mass between the modes (no mode averaging)
    with torch.no_grad():  # DDIM with few steps keeps both modes too
        d = base.sample(torch.zeros(1, 1), 2000, g, steps=3)[0, :, 0]
    assert ((d - 0.6).abs() < 0.25).float().mean() > 0.25 and ((d + 0.6).abs() < 0.25).float().mean() > 0.25


def test_explicit_noise_makes_sampling_a_pure_function():
    cfg = DiffusionConfig(hidden_dim=16, num_blocks=1, block_dim=32, time_embed_dim=8, num_steps=4)
    base = DiffusionBase(cfg, obs_dim=3, act_dim=2)
    obs = torch.randn(5, 3)
    for steps in (0, 2):
        noise = torch.randn(base.noise_shape(5, 3, steps))
        with torch.no_grad():
            a1, a2 = (
                base.sample(obs, 3, noise=noise, steps=steps),
                base.sample(obs, 3, noise=noise, steps=steps),
            )
        assert a1.shape == (5, 3, 2) and torch.equal(a1, a2)
        assert a1.abs().max() <= 1.0
    with pytest.raises(ValueError, match="noise has shape"):
        base.sample(obs, 3, noise=torch.randn(1, 5, 3, 2), steps=0)


def test_sampling_with_precomputed_projection_matches_plain_forward():
    """The sampler's obs/time projection split equals the unsplit denoiser."""
    cfg = DiffusionConfig(hidden_dim=16, num_blocks=2, block_dim=32, time_embed_dim=8, num_steps=4)
    base = DiffusionBase(cfg, obs_dim=3, act_dim=2)
    obs, a, t = torch.randn(6, 3), torch.randn(6, 2), torch.full((6,), 2.0)
    den = base.denoiser
    split = den.forward_proj(den.obs_proj(obs), a, den.time_proj(t))
    x = torch.cat([obs, a], -1) @ torch.cat([den.in_obs.weight, den.in_act.weight], 1).T + den.in_obs.bias
    x = x + den.time_proj(t)
    for blk in den.blocks:
        x = blk(x)
    ref = den.out(torch.nn.functional.silu(x))
    assert torch.allclose(split, ref, atol=1e-6)


def test_chunked_sampling_equals_one_pass():
    cfg = DiffusionConfig(hidden_dim=16, num_blocks=1, block_dim=32, time_embed_dim=8, num_steps=4)
    base = DiffusionBase(cfg, obs_dim=3, act_dim=2)
    obs = torch.randn(7, 3)
    for steps in (0, 2):
        noise = torch.randn(base.noise_shape(7, 3, steps))
        with torch.no_grad():
            whole = base.sample(obs, 3, noise=noise, steps=steps)
            chunked = base.sample(obs, 3, noise=noise, steps=steps, chunk_rows=5)  # 1 state per chunk
        assert torch.allclose(whole, chunked, atol=1e-6)


def _reference_sample(base, obs, noise, steps):
    """DDPM / DDIM written from the module docstring's formulas with the plain denoiser forward,
    one step at a time (no shared projections, no chunking): the reference for `sample`."""
    T = base.num_steps
    abar = torch.cumprod(1 - vp_betas(T, base.cfg.beta_min, base.cfg.beta_max), 0).float()
    alpha = (1 - vp_betas(T, base.cfg.beta_min, base.cfg.beta_max)).float()
    B, N, d = noise.shape[1:]
    o = obs[:, None].expand(B, N, obs.shape[-1]).reshape(B * N, -1)
    x = noise[0].reshape(B * N, d)

    def eps(x, t):
        return base.denoiser(o, x, torch.full((B * N,), float(t)))

    if steps in (0, T):
        for i, t in enumerate(range(T - 1, -1, -1)):
            x = (x - (1 - alpha[t]) / (1 - abar[t]).sqrt() * eps(x, t)) / alpha[t].sqrt()
            if t > 0:
                x = x + (1 - alpha[t]).sqrt() * noise[i + 1].reshape(B * N, d)
            x = x.clamp(-1, 1)
    else:
        ts = ddim_timesteps(T, steps)
        for j, t in enumerate(ts):
            e = eps(x, t)
            x0 = ((x - (1 - abar[t]).sqrt() * e) / abar[t].sqrt()).clamp(-1, 1)
            x = x0 if j + 1 == len(ts) else abar[ts[j + 1]].sqrt() * x0 + (1 - abar[ts[j + 1]]).sqrt() * e
    return x.reshape(B, N, d)


def test_ddpm_and_ddim_samplers_equal_the_reference_with_this_modules_weights():
    """Each sampler is the formula applied with the module's own denoiser: a second module with
    other weights gives other samples from the same noise, so the check can catch a sampler that
    reads another network's (cached) weights."""
    cfg = DiffusionConfig(hidden_dim=16, num_blocks=2, block_dim=32, time_embed_dim=8, num_steps=5)
    torch.manual_seed(0)
    base, other = DiffusionBase(cfg, obs_dim=3, act_dim=2), DiffusionBase(cfg, obs_dim=3, act_dim=2)
    with torch.no_grad():
        for p in list(base.parameters()) + list(other.parameters()):
            p.add_(0.3 * torch.randn(p.shape))  # no zero-initialized layer leaves eps_hat at 0
    obs = torch.randn(4, 3)
    for steps in (0, 2, 3):
        noise = torch.randn(base.noise_shape(4, 3, steps))
        with torch.no_grad():
            fast = base.sample(obs, 3, noise=noise, steps=steps)
            ref = _reference_sample(base, obs, noise, steps)
            theirs = other.sample(obs, 3, noise=noise, steps=steps)
        assert torch.allclose(fast, ref, atol=1e-5), steps
        assert not torch.allclose(theirs, ref, atol=1e-3), steps
        if steps:  # DDIM is deterministic after x_T: not the first slice of DDPM noise by accident
            assert not torch.allclose(fast, noise[0].clamp(-1, 1), atol=1e-3)
