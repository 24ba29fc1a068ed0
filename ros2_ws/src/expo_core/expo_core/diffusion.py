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

Action chunks (`DiffusionConfig.chunk_len` = k > 1): the diffused variable is the chunk
[a_t, ..., a_t+k-1] flattened step-major to width k * act_dim; `sample_chunks` returns it as
(B, N, k, d) and `sample` its first action (B, N, d). The loss takes (B, k * d) targets and an
optional per-slot mask (B, k): slots past an episode's end are zeroed before noising (so their
value cannot matter) and left out of the mean. k = 1 is the per-step base, unchanged.
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
        self.act_dim = act_dim  # one action; the diffused width is act_dim * chunk_len
        self.chunk_len = cfg.chunk_len
        self.width = act_dim * cfg.chunk_len
        self.num_steps = cfg.num_steps
        self.denoiser = Denoiser(
            obs_dim, self.width, cfg.hidden_dim, cfg.num_blocks, cfg.block_dim, cfg.time_embed_dim
        )
        betas = vp_betas(cfg.num_steps, cfg.beta_min, cfg.beta_max)
        alphas = 1.0 - betas
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas", alphas.float())
        self.register_buffer("alpha_bars", torch.cumprod(alphas, 0).float())
        # The samplers' per-step coefficients as Python floats, computed in float64 from the
        # float32 buffers above (so they match the tensor formulas to rounding).
        b32, a32, ab32 = (x.double() for x in (self.betas, self.alphas, self.alpha_bars))
        self._eps_coef = (b32 / (1 - ab32).sqrt()).tolist()
        self._sqrt_alpha = a32.sqrt().tolist()
        self._sigma = b32.sqrt().tolist()
        self._sqrt_abar = ab32.sqrt().tolist()
        self._sqrt_one_minus_abar = (1 - ab32).sqrt().tolist()

    # --- training ------------------------------------------------------------------------
    def loss(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        generator: torch.Generator | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoising (imitation) loss: E_t,eps || eps - eps_hat(s, a_t, t) ||^2.
        obs (B, o); action (B, k * d), the chunk step-major (k = chunk_len; (B, d) when k = 1);
        mask (B, k) of 0/1, None = every slot counts. Masked slots (a step past the episode's
        end) are zeroed before noising and carry no weight: the mean is over the unmasked
        slots' components, so their target values cannot change the loss."""
        if action.shape[-1] != self.width:
            raise ValueError(
                f"action has width {action.shape[-1]}, expected act_dim * chunk_len = {self.width}"
            )
        B = obs.shape[0]
        t = torch.randint(0, self.num_steps, (B,), generator=generator, device=obs.device)
        eps = torch.randn(action.shape, generator=generator, device=obs.device)
        weight = None
        if mask is not None:
            if tuple(mask.shape) != (B, self.chunk_len):
                raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {(B, self.chunk_len)}")
            weight = mask.to(action.dtype).repeat_interleave(self.act_dim, dim=1)  # (B, k * d)
            action = action * weight
        abar = self.alpha_bars[t][:, None]
        a_t = abar.sqrt() * action + (1 - abar).sqrt() * eps
        eps_hat = self.denoiser(obs, a_t, t.float())
        if weight is None:
            return ((eps_hat - eps) ** 2).mean()
        return (weight * (eps_hat - eps) ** 2).sum() / weight.sum().clamp_min(1.0)

    # --- sampling ------------------------------------------------------------------------
    def noise_shape(self, batch: int, num_samples: int, steps: int = 0) -> tuple[int, ...]:
        """Shape of the explicit noise for `sample`: (T+1, B, N, w) for DDPM (initial + one per
        step), (1, B, N, w) for DDIM (deterministic after the initial draw); w = act_dim *
        chunk_len, the diffused width."""
        n = self.num_steps + 1 if steps in (0, self.num_steps) else 1
        return (n, batch, num_samples, self.width)

    @torch.no_grad()
    def sample_chunks(
        self,
        obs: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        steps: int = 0,
        chunk_rows: int = 0,
    ) -> torch.Tensor:
        """As `sample`, the whole chunk of each sample: obs (B, o) -> (B, N, k, d) in [-1, 1],
        k = chunk_len; [:, :, 0] is what `sample` returns for the same inputs."""
        x = self._sample_flat(obs, num_samples, generator, noise, steps, chunk_rows)
        return x.reshape(*x.shape[:2], self.chunk_len, self.act_dim)

    @torch.no_grad()
    def sample(
        self,
        obs: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        steps: int = 0,
        chunk_rows: int = 0,
    ) -> torch.Tensor:
        """Draw `num_samples` actions per state. obs (B,o) -> actions (B, N, d) in [-1, 1]: with
        action chunks (chunk_len > 1) the first action of each sampled chunk (`sample_chunks`
        for all of it); the noise has the chunk's width (`noise_shape`).
        steps = 0 or T: ancestral DDPM with all T steps; 1 <= steps < T: DDIM with that many.
        chunk_rows > 0 processes at most that many (state, sample) rows at a time: the result is
        identical (rows are independent) but activations stay cache-sized, which is much faster
        on CPUs for large batches; 0 runs everything at once (best on GPUs).

        Never differentiated (runs under no_grad). The first layer's observation share is
        computed once per state and its time share once per step index, summed once per chunk
        for all N samples and all steps; the update coefficients are precomputed floats and the
        update works in place; no host-to-device copies. Equal to the plain formulas (module
        docstring) within float rounding: tests compare it with the straightforward sampler,
        `expo_core.bench.reference.sample`. (The time share is not cached across calls: its
        cost is ~1 % of a decision, and a cache keyed on parameter versions would go stale under
        fused optimizers, which do not bump them.)"""
        x = self._sample_flat(obs, num_samples, generator, noise, steps, chunk_rows)
        return x if self.chunk_len == 1 else x[..., : self.act_dim].contiguous()

    def _sample_flat(
        self,
        obs: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None,
        noise: torch.Tensor | None,
        steps: int,
        chunk_rows: int,
    ) -> torch.Tensor:
        """The sampler (see `sample`): obs (B, o) -> (B, N, w), w = act_dim * chunk_len."""
        B = obs.shape[0]
        shape = self.noise_shape(B, num_samples, steps)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=obs.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {shape}")
        ddpm = shape[0] > 1
        ts = list(range(self.num_steps - 1, -1, -1)) if ddpm else ddim_timesteps(self.num_steps, steps)
        # time share of the steps taken only (DDIM: k of the T), in the order they are taken
        t_share = self.denoiser.time_proj(torch.tensor(ts, dtype=obs.dtype, device=obs.device))
        per = B if chunk_rows <= 0 else max(1, chunk_rows // num_samples)
        outs = []
        for s in range(0, B, per):
            proj = self.denoiser.obs_proj(obs[s : s + per])  # (b, h): shared by N and all steps
            shared = proj[None, :, None, :] + t_share[:, None, None, :]  # (len(ts), b, 1, h)
            nz = noise[:, s : s + per]
            outs.append(self._ddpm(shared, nz, ts) if ddpm else self._ddim(shared, nz[0], ts))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _ddpm(self, shared: torch.Tensor, noise: torch.Tensor, ts: list[int]) -> torch.Tensor:
        """shared (T, b, 1, h) in the order of ts; noise (T+1, b, N, d); ts = T-1, ..., 0."""
        x = noise[0]
        for i, t in enumerate(ts):
            eps = self.denoiser.forward_shared_(shared[i], x)
            # x <- (x - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) [+ sqrt(beta_t) z], clipped
            x = torch.sub(x, eps, alpha=self._eps_coef[t]).div_(self._sqrt_alpha[t])
            if t > 0:
                x.add_(noise[i + 1], alpha=self._sigma[t])
            x.clamp_(-1.0, 1.0)
        return x

    def _ddim(self, shared: torch.Tensor, x: torch.Tensor, ts: list[int]) -> torch.Tensor:
        """shared (k, b, 1, h) in the order of ts; x (b, N, d) the initial noise; ts the k steps."""
        for j, t in enumerate(ts):
            eps = self.denoiser.forward_shared_(shared[j], x)
            x0 = (
                torch.sub(x, eps, alpha=self._sqrt_one_minus_abar[t])
                .div_(self._sqrt_abar[t])
                .clamp_(-1.0, 1.0)
            )
            if j + 1 < len(ts):
                prev = ts[j + 1]
                x = x0.mul_(self._sqrt_abar[prev]).add_(eps, alpha=self._sqrt_one_minus_abar[prev])
            else:
                x = x0
        return x
