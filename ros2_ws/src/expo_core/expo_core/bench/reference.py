"""Reference computations for the fast inference paths: the plain formulas, written as the code
was before issue 15, kept here so that tests (exactness) and the micro-benchmark (before/after
in one run) compare the fast paths with them.

  critic_forward          concat(s, a) -> every member, the observation repeated per candidate
  critic_forward_grouped  per-group member subsets, the input copied once per member
  critic_loop             one member at a time from its weights (an independent check of both)
  sample                  the DDPM / DDIM sampler step by step with tensor coefficients
  edit                    the editor's forward (edited action and log-prob)
  decide                  one OTF decision from these pieces (candidates, ensemble-mean Q, argmax)

Nothing here is used by the agent or the nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..critic import CriticEnsemble
from ..diffusion import DiffusionBase, ddim_timesteps
from ..editor import Editor


def critic_forward(
    critic: CriticEnsemble, obs: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None
) -> torch.Tensor:
    """obs (..., o), action (..., d) -> Q (E', ...): the batched ensemble on concat(s, a)."""
    x = torch.cat([obs, action], dim=-1)
    lead = x.shape[:-1]
    e = critic.num if members is None else members.shape[0]
    h = x.reshape(1, -1, x.shape[-1]).expand(e, -1, -1)
    for lin, norm in zip(critic.linears, critic.norms):
        h = lin(h, members)
        h = norm(h, members) if critic.cfg.layer_norm else h
        h = torch.relu(h)
    return critic.head(h, members).reshape(e, *lead)


def critic_forward_grouped(
    critic: CriticEnsemble, obs: torch.Tensor, action: torch.Tensor, members: torch.Tensor
) -> torch.Tensor:
    """obs (G, M, o), action (G, M, d), members (G, k) -> Q (k, G, M)."""
    G, M = obs.shape[:2]
    k = members.shape[1]
    x = torch.cat([obs, action], dim=-1)
    flat = members.reshape(-1)
    h = x[:, None].expand(G, k, M, x.shape[-1]).reshape(G * k, M, x.shape[-1])
    for lin, norm in zip(critic.linears, critic.norms):
        h = lin(h, flat)
        h = norm(h, flat) if critic.cfg.layer_norm else h
        h = torch.relu(h)
    return critic.head(h, flat).reshape(G, k, M).permute(1, 0, 2)


def critic_loop(critic: CriticEnsemble, obs: torch.Tensor, action: torch.Tensor, member: int) -> torch.Tensor:
    """One member as a plain MLP from its weights: obs (..., o), action (..., d) -> Q (...)."""
    h = torch.cat([obs, action], dim=-1)
    for lin, norm in zip(critic.linears, critic.norms):
        h = h @ lin.weight[member] + lin.bias[member, 0]
        if critic.cfg.layer_norm:
            h = F.layer_norm(h, (norm.dim,), norm.weight[member, 0], norm.bias[member, 0])
        h = torch.relu(h)
    return (h @ critic.head.weight[member] + critic.head.bias[member, 0])[..., 0]


def sample(
    base: DiffusionBase, obs: torch.Tensor, num_samples: int, noise: torch.Tensor, steps: int = 0
) -> torch.Tensor:
    """obs (B, o), noise `base.noise_shape(B, N, steps)` -> actions (B, N, d): the sampler as
    written in diffusion.py's docstring, the observation's share projected once per state."""
    T, den = base.num_steps, base.denoiser
    proj = den.obs_proj(obs)[:, None, :]
    if noise.shape[0] > 1:  # ancestral DDPM
        t_proj = den.time_proj(torch.arange(T, dtype=obs.dtype, device=obs.device))
        x = noise[0]
        for i, t in enumerate(range(T - 1, -1, -1)):
            eps = den.forward_proj(proj, x, t_proj[t])
            a, ab, b = base.alphas[t], base.alpha_bars[t], base.betas[t]
            x = (x - (b / (1 - ab).sqrt()) * eps) / a.sqrt()
            if t > 0:
                x = x + b.sqrt() * noise[i + 1]
            x = x.clamp(-1.0, 1.0)
        return x
    ts = ddim_timesteps(T, steps)
    t_proj = den.time_proj(torch.tensor(ts, dtype=obs.dtype, device=obs.device))
    x = noise[0]
    for j, t in enumerate(ts):
        eps = den.forward_proj(proj, x, t_proj[j])
        ab = base.alpha_bars[t]
        x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
        if j + 1 < len(ts):
            ab_prev = base.alpha_bars[ts[j + 1]]
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        else:
            x = x0
    return x


def edit(
    editor: Editor, obs: torch.Tensor, action: torch.Tensor, noise: torch.Tensor | None, deterministic: bool
) -> torch.Tensor:
    """obs (B, o), action (B, N, d) -> edited (B, N, d), through the editor's forward (which
    computes the log-prob too), the observation repeated per action."""
    obs_rep = obs[:, None, :].expand(-1, action.shape[1], -1)
    return editor(obs_rep, action, noise=noise, deterministic=deterministic).action


@torch.no_grad()
def decide(
    base: DiffusionBase,
    editor: Editor,
    critic: CriticEnsemble,
    nobs: torch.Tensor,
    base_noise: torch.Tensor,
    edit_noise: torch.Tensor | None,
    steps: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One OTF decision per normalized state, N = base_noise.shape[2]: N base samples and their
    edits, the ensemble-mean Q of each, the argmax. -> (action (B, d), candidates (B, 2N, d),
    q (B, 2N))."""
    N = base_noise.shape[2]
    base_actions = sample(base, nobs, N, base_noise, steps)
    cands = torch.cat([base_actions, edit(editor, nobs, base_actions, edit_noise, edit_noise is None)], 1)
    q = critic_forward(critic, nobs[:, None, :].expand(-1, cands.shape[1], -1), cands).mean(0)
    index = q.argmax(-1)
    return cands[torch.arange(cands.shape[0]), index], cands, q
