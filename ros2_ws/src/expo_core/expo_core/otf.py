"""On-the-fly (OTF) policy: N base samples + their N edits, pick the candidate with the best score.

Batched over states: every function takes (B, ...) tensors. Candidate k < N is the k-th base
sample, candidate N + k its edit. The same construction serves acting and TD targets. With
`ExpoConfig.use_editor=False` (an ablation) there are only the N base samples.

Scoring, one rule for acting and targets (`score_candidates`): the critics that score
(Q_j, j in S) each evaluate every candidate, and their values are reduced over j:
  "mean":        score_k = mean_{j in all critics} Q_j(s, c_k)
  "subset_min":  score_k = min_{j in S} Q_j(s, c_k),  S a random subset of `critic.num_min` (REDQ)
Acting scores with the online critics (`ExpoConfig.act_score`), targets with the target critics
(`ExpoConfig.target_score`).

Choosing among the K candidates:
  argmax (acting; TD targets by default):  a* = c_k*, k* = argmax_k score_k
  softmax sampling (the paper's Eq. 4-5, TD targets with entropy_backup="paper"):
    p_k = softmax_k(beta_s * score_k), k* ~ p (Gumbel-max on explicit noise), log p_k* reported.
The "softmax_entropy" backup variant instead keeps the argmax and adds alpha * H(softmax(score /
alpha)), H in closed form (`softmax_entropy`). td.py states the full backups.

Action chunks (`DiffusionConfig.chunk_len` = k > 1): candidates are the first actions of the
base's sampled chunks (and their edits); everything above works on them unchanged. The decision
also returns the plan: the rest of the chunk (k - 1 actions) that the chosen candidate's base
sample came with (candidate index % N; an edited candidate keeps its base sample's unedited
tail), for an executor that runs it open-loop or blends it while the next decision is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import SCORE_RULES
from .diffusion import DiffusionBase
from .editor import Editor


@dataclass(frozen=True)
class OTFResult:
    action: torch.Tensor  # (B, d) chosen action
    index: torch.Tensor  # (B,) long, index of the chosen candidate (>= N means edited)
    candidates: torch.Tensor  # (B, K, d), K = 2N
    q: torch.Tensor  # (B, K) the score the choice was made on
    # (B, k-1, d) the chosen candidate's base-sample chunk after its first action, in [-1, 1];
    # None without action chunks (chunk_len = 1). See the module docstring.
    plan: torch.Tensor | None = None

    @property
    def chosen_q(self) -> torch.Tensor:
        """(B,) the score of the chosen candidate (e.g. to compare with Monte-Carlo returns)."""
        return self.q.gather(1, self.index[:, None])[:, 0]


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
    edit=False (the no-editor ablation): the N base samples alone, (B, N, d). With action
    chunks the base samples are the chunks' first actions (`build_candidates_and_tails`)."""
    return build_candidates_and_tails(
        base,
        editor,
        obs,
        num_samples,
        generator,
        steps,
        deterministic_edit,
        base_noise,
        edit_noise,
        chunk_rows,
        edit,
    )[0]


def build_candidates_and_tails(
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
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`build_candidates` and the base samples' chunk tails: (candidates (B, K, d), tails
    (B, N, k-1, d) or None when chunk_len = 1). Same random stream as `build_candidates`."""
    B = obs.shape[0]
    tails = None
    if base.chunk_len == 1:
        base_actions = base.sample(obs, num_samples, generator, base_noise, steps, chunk_rows)  # (B, N, d)
    else:
        chunks = base.sample_chunks(obs, num_samples, generator, base_noise, steps, chunk_rows)
        base_actions, tails = chunks[:, :, 0].contiguous(), chunks[:, :, 1:]
    if not edit:
        return base_actions, tails
    obs_rep = obs[:, None, :].expand(B, num_samples, obs.shape[-1])
    edited = editor(obs_rep, base_actions, generator, edit_noise, deterministic_edit).action
    return torch.cat([base_actions, edited], dim=1), tails


def plan_of(tails: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    """The chosen candidates' plans: tails (B, N, k-1, d) of the base samples, index (B,) of
    the chosen candidates (edits at N + i share base sample i's tail) -> (B, k-1, d) clipped
    to [-1, 1], or None without chunks."""
    if tails is None:
        return None
    n = tails.shape[1]
    i = (index % n)[:, None, None, None].expand(-1, 1, *tails.shape[2:])
    return tails.gather(1, i)[:, 0].clamp(-1.0, 1.0)


def score_candidates(q: torch.Tensor, rule: str) -> torch.Tensor:
    """The scoring rule: per-critic Q (m, ...) of the critics that score -> (...).
    "mean" averages them (the caller passes all critics), "subset_min" takes their min (the
    caller passes the subset's)."""
    if rule == "mean":
        return q.mean(0)
    if rule == "subset_min":
        return q.amin(0)
    raise ValueError(f"rule={rule!r} is invalid; allowed: {' | '.join(map(repr, SCORE_RULES))}")


def take(candidates: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """candidates (B, K, d), index (B,) -> the chosen actions (B, d)."""
    return candidates.gather(1, index[:, None, None].expand(-1, 1, candidates.shape[-1]))[:, 0]


def select(candidates: torch.Tensor, q: torch.Tensor, tails: torch.Tensor | None = None) -> OTFResult:
    """Argmax over candidates. candidates (B, K, d), q (B, K); tails (B, N, k-1, d) of the base
    samples with action chunks (`build_candidates_and_tails`), giving the result's plan."""
    if q.shape != candidates.shape[:2]:
        raise ValueError(f"q has shape {tuple(q.shape)}, expected {tuple(candidates.shape[:2])}")
    index = q.argmax(dim=-1)
    return OTFResult(take(candidates, index), index, candidates, q, plan_of(tails, index))


def gumbel_noise(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Standard Gumbel noise g = -log(-log u), u ~ U[0, 1) (u = 0 gives -inf: never chosen)."""
    u = torch.rand(shape, generator=generator, device=device)
    return -torch.log(-torch.log(u))


def sample_softmax(
    q: torch.Tensor, inv_temperature: float, gumbel: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """k* ~ softmax(inv_temperature * q) over the last dim by Gumbel-max on the given noise.
    q (B, K), gumbel (B, K) -> (index (B,) long, log p(k*) (B,))."""
    logp = torch.log_softmax(inv_temperature * q, dim=-1)
    index = (logp + gumbel).argmax(dim=-1)
    return index, logp.gather(1, index[:, None])[:, 0]


def softmax_entropy(q: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """Closed-form entropy of p = softmax(q / alpha) over the last dim. q (B, K) -> (B,)."""
    logp = torch.log_softmax(q / alpha, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def edited_fraction(index: torch.Tensor, num_samples: int) -> float:
    """Share of choices that are edited candidates (index >= N). index (B,) -> float in [0, 1]."""
    return (index >= num_samples).float().mean().item()
