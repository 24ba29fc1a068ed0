"""ExpoPolicy: everything acting needs, as one module (the "policy weights" bundle).

EMA base diffusion + editor + critic ensemble + observation normalizer. The agent shares its
editor and critic with this module and keeps the EMA base here; the policy node, exporters and
inference backends load only this.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ExpoConfig
from .critic import CriticEnsemble
from .diffusion import DiffusionBase
from .editor import Editor
from .otf import OTFResult, build_candidates_and_tails, score_candidates, select


class ObsNormalizer(nn.Module):
    """(obs - mean) / std with statistics stored as buffers (so they travel with the weights)."""

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor, min_std: float = 1e-3) -> None:
        mean, std = torch.as_tensor(mean).float(), torch.as_tensor(std).float()
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f"normalizer stats must have shape {tuple(self.mean.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("normalizer stats must be finite")
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(min_std))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


class ExpoPolicy(nn.Module):
    def __init__(self, cfg: ExpoConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.normalizer = ObsNormalizer(cfg.obs_dim)
        self.base = DiffusionBase(cfg.diffusion, cfg.obs_dim, cfg.act_dim)  # the EMA copy
        self.editor = Editor(cfg.editor, cfg.obs_dim, cfg.act_dim)
        self.critic = CriticEnsemble(cfg.critic, cfg.obs_dim, cfg.act_dim)

    def q_values(
        self, nobs: torch.Tensor, candidates: torch.Tensor, members: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Acting score of each candidate by the online critics, with the rule `cfg.act_score`
        (`otf.score_candidates`, the same function the TD targets use): "mean" over all critics
        (default; the quantity the editor maximizes), or "subset_min" over `members` (k,)
        (None: all critics). nobs (B, o) normalized, candidates (B, K, d) -> (B, K)."""
        rule = self.cfg.act_score
        obs_rep = nobs[:, None, :].expand(-1, candidates.shape[1], -1)
        q = self.critic(obs_rep, candidates, members if rule == "subset_min" else None)
        return score_candidates(q, rule)

    def scoring_members(self, generator: torch.Generator | None) -> torch.Tensor | None:
        """The critics that score one decision: None (all of them) unless act_score is
        "subset_min" with critic.num_min < num_critics; then a random subset from `generator`."""
        if not self.critic.draws_subset(self.cfg.act_score):
            return None
        if generator is None:
            raise ValueError(
                "act_score='subset_min' with critic.num_min < critic.num_critics draws a random "
                "critic subset per decision: pass a generator or explicit members"
            )
        return self.critic.random_subset(generator, self.normalizer.mean.device)

    @torch.no_grad()
    def decide(
        self,
        obs: torch.Tensor,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        base_noise: torch.Tensor | None = None,
        edit_noise: torch.Tensor | None = None,
        members: torch.Tensor | None = None,
    ) -> OTFResult:
        """One OTF decision per state. obs (B, o) raw (unnormalized) -> OTFResult.
        deterministic: the editor uses its mean; pass a seeded generator (or explicit noise)
        to make the base samples reproducible too. members: the scoring critics' indices for
        act_score="subset_min" (drawn from `generator` after the candidates when None).
        With action chunks (diffusion.chunk_len = k > 1) the result's `plan` (B, k-1, d) is the
        chosen candidate's base-sample tail; base_noise then has the chunk's width
        (`base.noise_shape`)."""
        nobs = self.normalizer(obs)
        cands, tails = build_candidates_and_tails(
            self.base,
            self.editor,
            nobs,
            self.cfg.num_samples,
            generator,
            steps=self.cfg.act_sampling_steps,
            deterministic_edit=deterministic,
            base_noise=base_noise,
            edit_noise=edit_noise,
            edit=self.cfg.use_editor,
        )
        if members is None:
            members = self.scoring_members(generator)
        return select(cands, self.q_values(nobs, cands, members), tails)
