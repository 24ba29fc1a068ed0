"""DDPM base policy: VP noise schedule, denoising (BC) loss, ancestral and DDIM samplers.

Maths (Ho et al. 2020, eps-prediction), step index t = 0..T-1:
  beta_t = 1 - exp(-b_min/T - (b_max - b_min)(2t + 1) / (2 T^2))      (VP schedule, discretized)
  alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s
  forward:   a_t = sqrt(abar_t) a_0 + sqrt(1 - abar_t) eps
  ancestral: a_{t-1} = (a_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t) + sqrt(beta_t) z,
             z = 0 at the last step, clipped to [-1, 1] after every step (as published).
  DDIM (eta = 0) on k of the T steps: a0_hat = clip((a_t - sqrt(1-abar_t) eps_hat) / sqrt(abar_t)),
             a_prev = sqrt(abar_prev) a0_hat + sqrt(1 - abar_prev) eps_hat.
Noise can be passed explicitly (`noise`, shape from `noise_shape`) so that sampling is a pure
function of its inputs: checkpoints, exported graphs and the fast/faithful TD paths can then be
compared sample for sample.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import DiffusionConfig
from .nets import Denoiser


def vp_betas(num_steps: int, beta_min: float, beta_max: float) -> torch.Tensor:
    """(T,) float64 noise levels of the discretized variance-preserving schedule."""
    t = torch.arange(1, num_steps + 1, dtype=torch.float64)
    T = float(num_steps)
    alpha = torch.exp(-beta_min / T - 0.5 * (beta_max - beta_min) * (2 * t - 1) / T**2)
    return 1.0 - alpha


def ddim_timesteps(num_steps: int, k: int) -> list[int]:
    """k distinct step indices from T-1 down to 0, evenly spaced."""
    if not 1 <= k <= num_steps:
        raise ValueError(f"DDIM steps k={k} must be in [1, {num_steps}]")
    if k == 1:
        return [num_steps - 1]
    return [round((num_steps - 1) * (1 - i / (k - 1))) for i in range(k)]


class DiffusionBase(nn.Module):
    """The base policy pi_base(a | s) as a DDPM over actions in [-1, 1]^act_dim."""

    def __init__(self, cfg: DiffusionConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.act_dim = act_dim
        self.num_steps = cfg.num_steps
        self.denoiser = Denoiser(
            obs_dim, act_dim, cfg.hidden_dim, cfg.num_blocks, cfg.block_dim, cfg.time_embed_dim
        )
        betas = vp_betas(cfg.num_steps, cfg.beta_min, cfg.beta_max)
        alphas = 1.0 - betas
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas", alphas.float())
        self.register_buffer("alpha_bars", torch.cumprod(alphas, 0).float())

    # --- training ------------------------------------------------------------------------
    def loss(
        self, obs: torch.Tensor, action: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Denoising (imitation) loss: E_t,eps || eps - eps_hat(s, a_t, t) ||^2. obs (B,o), action (B,d)."""
        B = obs.shape[0]
        t = torch.randint(0, self.num_steps, (B,), generator=generator, device=obs.device)
        eps = torch.randn(action.shape, generator=generator, device=obs.device)
        abar = self.alpha_bars[t][:, None]
        a_t = abar.sqrt() * action + (1 - abar).sqrt() * eps
        eps_hat = self.denoiser(obs, a_t, t.float())
        return ((eps_hat - eps) ** 2).mean()

    # --- sampling ------------------------------------------------------------------------
    def noise_shape(self, batch: int, num_samples: int, steps: int = 0) -> tuple[int, ...]:
        """Shape of the explicit noise for `sample`: (T+1, B, N, d) for DDPM (initial + one per
        step), (1, B, N, d) for DDIM (deterministic after the initial draw)."""
        n = self.num_steps + 1 if steps in (0, self.num_steps) else 1
        return (n, batch, num_samples, self.act_dim)

    def sample(
        self,
        obs: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        steps: int = 0,
        chunk_rows: int = 0,
    ) -> torch.Tensor:
        """Draw `num_samples` actions per state. obs (B,o) -> actions (B, N, d) in [-1, 1].
        steps = 0 or T: ancestral DDPM with all T steps; 1 <= steps < T: DDIM with that many.
        chunk_rows > 0 processes at most that many (state, sample) rows at a time: the result is
        identical (rows are independent) but activations stay cache-sized, which is much faster
        on CPUs for large batches; 0 runs everything at once (best on GPUs)."""
        B = obs.shape[0]
        shape = self.noise_shape(B, num_samples, steps)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=obs.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {shape}")
        per = B if chunk_rows <= 0 else max(1, chunk_rows // num_samples)
        outs = []
        for s in range(0, B, per):
            proj = self.denoiser.obs_proj(obs[s : s + per])[:, None, :]  # (b, 1, h): shared by N and T
            nz = noise[:, s : s + per]
            if shape[0] == 1:
                outs.append(self._ddim(proj, nz[0], ddim_timesteps(self.num_steps, steps)))
            else:
                outs.append(self._ddpm(proj, nz))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _ddpm(self, proj: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        T = self.num_steps
        t_proj = self.denoiser.time_proj(torch.arange(T, dtype=proj.dtype, device=proj.device))
        x = noise[0]
        for i, t in enumerate(range(T - 1, -1, -1)):
            eps = self.denoiser.forward_proj(proj, x, t_proj[t])
            a, ab, b = self.alphas[t], self.alpha_bars[t], self.betas[t]
            x = (x - (b / (1 - ab).sqrt()) * eps) / a.sqrt()
            if t > 0:
                x = x + b.sqrt() * noise[i + 1]
            x = x.clamp(-1.0, 1.0)
        return x

    def _ddim(self, proj: torch.Tensor, x: torch.Tensor, ts: list[int]) -> torch.Tensor:
        t_all = torch.tensor(ts, dtype=proj.dtype, device=proj.device)
        t_proj = self.denoiser.time_proj(t_all)
        for j, t in enumerate(ts):
            eps = self.denoiser.forward_proj(proj, x, t_proj[j])
            ab = self.alpha_bars[t]
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
            if j + 1 < len(ts):
                ab_prev = self.alpha_bars[ts[j + 1]]
                x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
            else:
                x = x0
        return x
