"""The four EXPO losses, each one screen of maths. Inputs are observation-normalized tensors.

critic:      L_Q  = mean_{j,i} (Q_j(s_i, a_i) - y_i)^2                        (all E members)
editor:      L_pi = mean_i [ alpha * log pi_edit(a~_i | s_i, a_i) - mean_j Q_j(s_i, a~_i) ],
             a_i ~ pi_base(.|s_i) fresh (fix) or the buffer action (reference), a~_i ~ pi_edit;
             editor_score "subset_min": min_{j in subset} Q_j in place of the mean
temperature: L_a  = mean_i [ -alpha * (log pi_edit(a~_i) + H_target) ]          (log pi detached)
base (BC):   the DDPM denoising loss on buffer (s, a), see DiffusionBase.loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .critic import CriticEnsemble
from .editor import Editor
from .otf import score_candidates


def critic_loss(
    critic: CriticEnsemble, obs: torch.Tensor, action: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (loss, mean Q over members and batch)."""
    q = critic(obs, action)  # (E, B)
    loss = ((q - target[None]) ** 2).mean()
    return loss, q.detach().mean()


@dataclass(frozen=True)
class EditorLoss:
    loss: torch.Tensor
    log_prob: torch.Tensor  # (B,) detached, for the temperature step
    q: torch.Tensor  # scalar, mean Q of the edited actions


def editor_loss(
    editor: Editor,
    critic: CriticEnsemble,
    obs: torch.Tensor,
    base_action: torch.Tensor,
    alpha: torch.Tensor,
    generator: torch.Generator | None,
    score: str = "mean",
    members: torch.Tensor | None = None,
) -> EditorLoss:
    """Gradients reach only the editor (the critic's parameters are frozen for this pass).
    ``score``: how the critics' Q of the edited action is aggregated (`otf.score_candidates`):
    "mean" over all critics, or "subset_min" over ``members`` (None: all critics)."""
    sample = editor(obs, base_action, generator)
    critic.requires_grad_(False)
    try:
        q = score_candidates(critic(obs, sample.action, members if score == "subset_min" else None), score)
    finally:
        critic.requires_grad_(True)
    loss = (alpha.detach() * sample.log_prob - q).mean()
    return EditorLoss(loss, sample.log_prob.detach(), q.detach().mean())


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """alpha rises while the editor's entropy (-log pi) is below target, falls when above."""
    return -(log_alpha.exp() * (log_prob + target_entropy).detach()).mean()
