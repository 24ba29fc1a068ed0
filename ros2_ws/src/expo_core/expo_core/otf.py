"""On-the-fly (OTF) policy: N base samples + their N edits, pick the candidate with highest Q.

Batched over states: every function takes (B, ...) tensors. Candidate k < N is the k-th base
sample, candidate N + k its edit. The same construction serves acting and TD targets. With
`ExpoConfig.use_editor=False` (an ablation) there are only the N base samples.

Entropy backup (paper Eq. 4-5, as implemented here): the OTF choice is relaxed to a categorical
distribution over the K = 2N candidates, p_k = softmax_k(Q_k / alpha). Its entropy has the
closed form H(s) = -sum_k p_k log p_k, and the backup adds alpha * H(s') to Q(s', a*_OTF):
  y = r + gamma * (1 - terminated) * (Q(s', a*) + alpha * H(s')).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .diffusion import DiffusionBase
from .editor import Editor


@dataclass(frozen=True)
class OTFResult:
    action: torch.Tensor  # (B, d) chosen action
    index: torch.Tensor  # (B,) long, index of the chosen candidate (>= N means edited)
    candidates: torch.Tensor  # (B, K, d), K = 2N
    q: torch.Tensor  # (B, K) the Q estimate the choice was made on


def build_candidates(
    base: DiffusionBase,
    editor: Editor,
    obs: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    steps: int = 0,
    deterministic_edit: bool = False,
    base_noise: torch.Tensor | None = None,
    edit_noise: torch.Tensor | None = None,
    chunk_rows: int = 0,
    edit: bool = True,
) -> torch.Tensor:
    """obs (B, o) -> candidates (B, 2N, d): N base samples followed by their N edits.
    edit=False (the no-editor ablation): the N base samples alone, (B, N, d)."""
    B = obs.shape[0]
    base_actions = base.sample(obs, num_samples, generator, base_noise, steps, chunk_rows)  # (B, N, d)
    if not edit:
        return base_actions
    obs_rep = obs[:, None, :].expand(B, num_samples, obs.shape[-1])
    edited = editor(obs_rep, base_actions, generator, edit_noise, deterministic_edit).action
    return torch.cat([base_actions, edited], dim=1)


def select(candidates: torch.Tensor, q: torch.Tensor) -> OTFResult:
    """Argmax over candidates. candidates (B, K, d), q (B, K)."""
    if q.shape != candidates.shape[:2]:
        raise ValueError(f"q has shape {tuple(q.shape)}, expected {tuple(candidates.shape[:2])}")
    index = q.argmax(dim=-1)
    action = candidates.gather(1, index[:, None, None].expand(-1, 1, candidates.shape[-1]))[:, 0]
    return OTFResult(action, index, candidates, q)


def softmax_entropy(q: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """Closed-form entropy of p = softmax(q / alpha) over the last dim. q (B, K) -> (B,)."""
    logp = torch.log_softmax(q / alpha, dim=-1)
    return -(logp.exp() * logp).sum(-1)
