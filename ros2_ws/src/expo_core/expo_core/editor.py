"""The edit policy: a small tanh-Gaussian on (s, a) that adds a bounded edit to a base action.

  z ~ N(mu(s,a), sigma(s,a)^2),  u = tanh(z) in (-1, 1)^d,  a_edit = clip(a + beta * u, -1, 1)
  log pi_edit(a + beta u | s, a) = sum_i [ log N(z_i) - log(1 - tanh(z_i)^2) ] - d * log(beta)
The last term is the change of variables from u to the scaled edit beta*u. Clipping to the
action box only moves a_edit toward a (a is inside the box), so |a_edit - a| <= beta always.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import EditorConfig
from .nets import MLP

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class EditSample:
    action: torch.Tensor  # (..., d) edited action in [-1, 1]
    log_prob: torch.Tensor  # (...,) log density of the scaled edit (beta-corrected)


class Editor(nn.Module):
    def __init__(self, cfg: EditorConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.act_dim = act_dim
        self.net = MLP(obs_dim + act_dim, cfg.hidden_dims, 2 * act_dim, activation=nn.ReLU)

    @property
    def beta(self) -> float:
        """The edit bound, ``cfg.beta``: replacing ``cfg`` changes it (no weight depends on it)."""
        return self.cfg.beta

    def dist_params(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (..., o), action (..., d) -> mean, log_std each (..., d)."""
        mu, log_std = self.net(torch.cat([obs, action], dim=-1)).chunk(2, dim=-1)
        log_std = log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max)
        return mu, log_std

    def forward(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        deterministic: bool = False,
    ) -> EditSample:
        """Edit `action`. Reparameterized (gradients flow to mu, sigma). `noise` (..., d) standard
        normal may be given explicitly; `deterministic` uses u = tanh(mu) (its log-prob is still
        reported at z = mu)."""
        mu, log_std = self.dist_params(obs, action)
        std = log_std.exp()
        if deterministic:
            eps = torch.zeros_like(mu)
        elif noise is not None:
            eps = noise
        else:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + std * eps
        u = torch.tanh(z)
        # log(1 - tanh(z)^2) = 2 (log 2 - z - softplus(-2z)), stable for large |z|
        log_det = 2.0 * (math.log(2.0) - z - F.softplus(-2.0 * z))
        log_normal = -0.5 * eps**2 - log_std - _LOG_SQRT_2PI
        log_prob = (log_normal - log_det).sum(-1) - self.act_dim * math.log(self.beta)
        edited = (action + self.beta * u).clamp(-1.0, 1.0)
        return EditSample(edited, log_prob)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        deterministic: bool = False,
    ) -> torch.Tensor:
        """The edited actions alone, for acting and TD targets: `forward(...).action` without
        the log-prob (and without autograd). obs (B, o) with action (B, N, d) edits N actions
        per state, the observation's share of the first layer computed once per state; obs with
        action's own leading shape (..., o) works too. Consumes the generator exactly as
        `forward` does (one normal draw of shape action.shape unless deterministic or `noise`)."""
        first, *rest = self.net.net
        o = obs.shape[-1]
        shared = F.linear(obs, first.weight[:, :o], first.bias)
        h = F.linear(action, first.weight[:, o:])
        h.add_(shared[..., None, :] if obs.dim() == action.dim() - 1 else shared)
        for layer in rest:
            h = layer(h) if not isinstance(layer, nn.ReLU) else h.relu_()
        mu, log_std = h.chunk(2, dim=-1)
        if deterministic:
            u = torch.tanh(mu)
        else:
            if noise is None:
                noise = torch.randn(mu.shape, generator=generator, device=mu.device)
            std = log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max).exp_()
            u = torch.addcmul(mu, std, noise).tanh_()
        return torch.add(action, u, alpha=self.beta).clamp_(-1.0, 1.0)
