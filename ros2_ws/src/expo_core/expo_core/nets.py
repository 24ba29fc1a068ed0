"""Network building blocks: MLP, learned Fourier time embedding, the residual denoiser.

The denoiser's first layer is split into an observation part and an (action, time) part so that
samplers project each observation once and reuse it across all N samples and T denoising steps
(the dominant cost of OTF acting and of TD targets).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """in -> [Linear -> (LayerNorm) -> act] * len(hidden) -> Linear(out)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dims: tuple[int, ...],
        out_dim: int,
        layer_norm: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden_dims:
            layers.append(nn.Linear(d, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(activation())
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FourierTimeEmbedding(nn.Module):
    """Learned Fourier features of a scalar t: [cos(2 pi t w), sin(2 pi t w)], w ~ N(0, 0.2^2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.freqs = nn.Parameter(torch.randn(dim // 2) * 0.2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (...,) float -> (..., dim)."""
        f = 2 * math.pi * t[..., None] * self.freqs
        return torch.cat([torch.cos(f), torch.sin(f)], dim=-1)


class ResidualBlock(nn.Module):
    """x + Dense(hidden)(swish(Dense(block)(LayerNorm(x))))."""

    def __init__(self, hidden: int, block: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, block)
        self.fc2 = nn.Linear(block, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.silu(self.fc1(self.norm(x))))


class Denoiser(nn.Module):
    """eps-prediction network eps(s, a_t, t) as published: Dense(hidden) on
    concat(s, a_t, time features) + residual blocks + swish + Dense(act_dim).

    `obs_proj(s)` computes the observation's share of the first layer once;
    `forward_proj(proj, a_t, t)` finishes the pass. `forward(s, a_t, t)` does both.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: int, num_blocks: int, block: int, time_dim: int
    ) -> None:
        super().__init__()
        self.time_embed = FourierTimeEmbedding(time_dim)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.in_obs = nn.Linear(obs_dim, hidden)  # carries the first layer's bias
        self.in_act = nn.Linear(act_dim, hidden, bias=False)
        self.in_time = nn.Linear(hidden, hidden, bias=False)
        self.blocks = nn.ModuleList([ResidualBlock(hidden, block) for _ in range(num_blocks)])
        self.out = nn.Linear(hidden, act_dim)

    def time_proj(self, t: torch.Tensor) -> torch.Tensor:
        """t: (...,) step index as float -> (..., hidden), the time share of the first layer."""
        return self.in_time(self.time_mlp(self.time_embed(t)))

    def obs_proj(self, obs: torch.Tensor) -> torch.Tensor:
        return self.in_obs(obs)

    def forward_proj(self, proj: torch.Tensor, a_t: torch.Tensor, t_proj: torch.Tensor) -> torch.Tensor:
        """proj: (..., hidden) from obs_proj; a_t: (..., act_dim); t_proj broadcastable to proj."""
        x = proj + self.in_act(a_t) + t_proj
        for blk in self.blocks:
            x = blk(x)
        return self.out(F.silu(x))

    def forward(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.forward_proj(self.obs_proj(obs), a_t, self.time_proj(t))

    def forward_shared_(self, shared: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
        """Inference-only `forward_proj` with the observation and time shares summed beforehand:
        shared = obs_proj(s) + time_proj(t), (..., hidden) broadcastable to a_t's (..., act_dim)
        rows. Works in place on its own intermediates (no autograd), so one denoising step is
        ~half the elementwise ops and allocations of `forward_proj`; same function."""
        x = F.linear(a_t, self.in_act.weight).add_(shared)
        for blk in self.blocks:
            n = blk.norm
            h = F.linear(
                F.layer_norm(x, n.normalized_shape, n.weight, n.bias, n.eps), blk.fc1.weight, blk.fc1.bias
            )
            x = x.add_(F.linear(F.silu(h, inplace=True), blk.fc2.weight, blk.fc2.bias))
        return F.linear(F.silu(x, inplace=True), self.out.weight, self.out.bias)


class EnsembleLinear(nn.Module):
    """E independent Linear layers applied in one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, num: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x: (E', B, in) where E' = E, or len(members) when `members` selects a subset."""
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return torch.baddbmm(b, x, w)


class EnsembleLayerNorm(nn.Module):
    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num, 1, dim))
        self.bias = nn.Parameter(torch.zeros(num, 1, dim))
        self.dim = dim

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return F.layer_norm(x, (self.dim,)) * w + b
