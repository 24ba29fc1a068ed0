"""Critic ensemble Q_1..Q_E(s, a) evaluated in one batched matmul per layer, target copies,
and the REDQ subset-min estimate used for TD targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        Q (k, G, M): group g is evaluated by its own k members. Inference only (no gradients).
        The split first layer of `q_candidates_grouped` with one candidate per row: the rows are
        never concatenated or copied k times (for G = 1 not copied at all)."""
        return self.q_candidates_grouped(obs, action[:, :, None, :], members)[..., 0]

    # --- fast evaluation of many candidate actions per state (inference only) ---------------
    @torch.no_grad()
    def q_candidates(
        self, obs: torch.Tensor, actions: torch.Tensor, members: torch.Tensor | None = None
    ) -> torch.Tensor:
        """obs (B, o), actions (B, K, d) -> Q (E', B, K) for all E members or the subset
        `members` (k,). Equals `forward(obs[:, None].expand(B, K, o), actions, members)` within
        float rounding, without building the (B*K, o + d) input: the first layer is split,
        W [s; a] + b = (W_s s + b) + W_a a, and W_s s + b is computed once per state and
        broadcast over its K candidates. Inference only (no gradients)."""
        B, K, d = actions.shape
        n = self.num if members is None else members.shape[0]
        obs_s = obs.expand(n, B, obs.shape[-1])  # stride-0 views: nothing is copied
        act_s = actions.reshape(1, B * K, d).expand(n, B * K, d)
        return self._q_slots(obs_s, act_s, members, K).view(n, B, K)

    @torch.no_grad()
    def q_candidates_grouped(
        self, obs: torch.Tensor, actions: torch.Tensor, members: torch.Tensor
    ) -> torch.Tensor:
        """G groups, each evaluated by its own k members (the batched TD path: one REDQ subset
        per minibatch). obs (G, B, o), actions (G, B, K, d), members (G, k) -> Q (k, G, B, K)
        (a transposed view). For G > 1 the (B*K, d) actions and (B, o) observations of a group
        are repeated k times (one slot per group and member); the activations never are."""
        G, B, K, d = actions.shape
        k, o = members.shape[1], obs.shape[-1]
        if G == 1:
            return self.q_candidates(obs[0], actions[0], members[0])[:, None]
        obs_s = obs[:, None].expand(G, k, B, o).reshape(G * k, B, o)
        act_s = actions.reshape(G, 1, B * K, d).expand(G, k, B * K, d).reshape(G * k, B * K, d)
        q = self._q_slots(obs_s, act_s, members.reshape(-1), K)
        return q.view(G, k, B, K).transpose(0, 1)

    #: On CPUs, slots (members) with at least this many candidate rows are evaluated one member
    #: at a time with 2-D GEMMs and the fused LayerNorm (measured faster there than the batched
    #: form's separate per-member affine pass); fewer rows, or any GPU, use batched matmuls
    #: (fewer ops, fewer launches). Both compute the same function; tests cover both.
    loop_min_rows: int = 1024

    def _q_slots(
        self, obs: torch.Tensor, act: torch.Tensor, members: torch.Tensor | None, K: int
    ) -> torch.Tensor:
        """n slots, slot j evaluated by member members[j] (member j when None).
        obs (n, B, o), act (n, B*K, d) with act's rows grouped by state -> Q (n, B*K)."""
        if act.device.type == "cpu" and act.shape[1] >= self.loop_min_rows:
            return self._q_slots_loop(obs, act, members, K)
        o = obs.shape[-1]
        lin0 = self.linears[0]
        w, b = (lin0.weight, lin0.bias) if members is None else (lin0.weight[members], lin0.bias[members])
        shared = torch.baddbmm(b, obs, w[:, :o])  # (n, B, H): once per state
        h = torch.bmm(act, w[:, o:])  # (n, B*K, H)
        n, B, H = shared.shape
        h.view(n, B, K, H).add_(shared[:, :, None])
        h = self._norm_relu_(0, h, members)
        for i, lin in enumerate(self.linears[1:], 1):
            h = self._norm_relu_(i, lin(h, members), members)
        return self.head(h, members)[..., 0]

    def _norm_relu_(self, i: int, h: torch.Tensor, members: torch.Tensor | None) -> torch.Tensor:
        """relu(LayerNorm_i(h)) with per-member affine, in place where possible. h (n, M, H)."""
        if self.cfg.layer_norm:
            norm = self.norms[i]
            w, b = (norm.weight, norm.bias) if members is None else (norm.weight[members], norm.bias[members])
            ln = F.layer_norm(h, (norm.dim,))
            h = torch.addcmul(b, ln, w, out=ln)
        return h.relu_()

    def _q_slots_loop(
        self, obs: torch.Tensor, act: torch.Tensor, members: torch.Tensor | None, K: int
    ) -> torch.Tensor:
        """`_q_slots` one slot at a time (CPU, many rows): 2-D addmm and the fused LayerNorm."""
        o = obs.shape[-1]
        ids = range(obs.shape[0]) if members is None else members.tolist()
        out = []
        for j, m in enumerate(ids):
            lin0 = self.linears[0]
            w = lin0.weight[m]
            shared = torch.addmm(lin0.bias[m, 0], obs[j], w[:o])  # (B, H)
            h = torch.mm(act[j], w[o:])  # (B*K, H)
            B, H = shared.shape
            h.view(B, K, H).add_(shared[:, None])
            for i, lin in enumerate(self.linears):
                if i > 0:
                    h = torch.addmm(lin.bias[m, 0], h, lin.weight[m])
                if self.cfg.layer_norm:
                    norm = self.norms[i]
                    h = F.layer_norm(h, (norm.dim,), norm.weight[m, 0], norm.bias[m, 0])
                h = h.relu_()
            out.append(torch.addmm(self.head.bias[m, 0], h, self.head.weight[m])[:, 0])
        return torch.stack(out)

    def random_subset(
        self, generator: torch.Generator | None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Indices of `num_min` distinct members drawn uniformly."""
        return torch.randperm(self.num, generator=generator, device=device)[: self.cfg.num_min]

    def draws_subset(self, rule: str) -> bool:
        """Whether scoring by `rule` needs a random member subset: "subset_min" over fewer than
        all members (with num_min = num_critics it is the min of all, nothing to draw)."""
        return rule == "subset_min" and self.cfg.num_min < self.num


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, parameter by parameter (buffers copied)."""
    if tau <= 0:
        return
    tp, sp = list(target.parameters()), list(source.parameters())
    torch._foreach_lerp_(tp, sp, tau)
    for tb, sb in zip(target.buffers(), source.buffers()):
        tb.copy_(sb)
