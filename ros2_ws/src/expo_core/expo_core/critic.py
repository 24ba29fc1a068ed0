"""Critic ensemble Q_1..Q_E(s, a) evaluated in one batched matmul per layer, target copies,
and the REDQ subset-min estimate used for TD targets."""

from __future__ import annotations

import torch
from torch import nn

from .config import CriticConfig
from .nets import EnsembleLayerNorm, EnsembleLinear


class CriticEnsemble(nn.Module):
    """E critics, each MLP(hidden_dims) with LayerNorm + ReLU on concat(s, a)."""

    def __init__(self, cfg: CriticConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num = cfg.num_critics
        dims = (obs_dim + act_dim, *cfg.hidden_dims)
        self.linears = nn.ModuleList([EnsembleLinear(self.num, i, o) for i, o in zip(dims[:-1], dims[1:])])
        self.norms = nn.ModuleList(
            [EnsembleLayerNorm(self.num, o) if cfg.layer_norm else nn.Identity() for o in dims[1:]]
        )
        self.head = EnsembleLinear(self.num, dims[-1], 1)

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None
    ) -> torch.Tensor:
        """obs (..., o), action (..., d) -> Q (E', ...) for all members or the given subset."""
        x = torch.cat([obs, action], dim=-1)
        lead = x.shape[:-1]
        e = self.num if members is None else members.shape[0]
        h = x.reshape(1, -1, x.shape[-1]).expand(e, -1, -1)
        for lin, norm in zip(self.linears, self.norms):
            h = lin(h, members)
            h = norm(h, members) if self.cfg.layer_norm else h
            h = torch.relu(h)
        return self.head(h, members).reshape(e, *lead)

    def forward_grouped(self, obs: torch.Tensor, action: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """Per-group subsets in one call. obs (G, M, o), action (G, M, d), members (G, k) ->
        Q (k, G, M): group g is evaluated by its own k members (used by the batched TD path)."""
        G, M = obs.shape[:2]
        k = members.shape[1]
        x = torch.cat([obs, action], dim=-1)  # (G, M, in)
        flat = members.reshape(-1)  # (G*k,)
        h = x[:, None].expand(G, k, M, x.shape[-1]).reshape(G * k, M, x.shape[-1])
        for lin, norm in zip(self.linears, self.norms):
            h = lin(h, flat)
            h = norm(h, flat) if self.cfg.layer_norm else h
            h = torch.relu(h)
        q = self.head(h, flat).reshape(G, k, M)
        return q.permute(1, 0, 2)

    def random_subset(
        self, generator: torch.Generator | None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Indices of `num_min` distinct members drawn uniformly."""
        return torch.randperm(self.num, generator=generator, device=device)[: self.cfg.num_min]


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, parameter by parameter (buffers copied)."""
    if tau <= 0:
        return
    tp, sp = list(target.parameters()), list(source.parameters())
    torch._foreach_lerp_(tp, sp, tau)
    for tb, sb in zip(target.buffers(), source.buffers()):
        tb.copy_(sb)
