"""OTF temporal-difference targets, for one minibatch (faithful) or all UTD minibatches of an env
step at once (fast path), and the Monte-Carlo returns to check the critics against.

  y = r + gamma * m * V(s'),  c = N base samples at s' and their N edits (K = 2N candidates),
  score_k = the target critics' score of c_k (otf.score_candidates, rule `target_score`:
            min over a random subset S of `num_min` critics (REDQ, default), or the mean of all)
  entropy_backup="none":            k* = argmax_k score_k            V = Q*
  entropy_backup="paper" (Eq. 4-5): k* ~ p = softmax(beta_s * score)  V = Q* - alpha_b * log p_k*
  entropy_backup="softmax_entropy": k* = argmax_k score_k            V = Q* + alpha * H(p'),
                                    p' = softmax(score / alpha)
  Q* = score_k* (target_eval_subset="same": the subset that picked a* = c_k* also scores it), or
       min_{j in S'} Q'_j(s', a*) with S' a second subset disjoint from S ("independent", double Q)
  m = 1 - terminated                     (bootstrap through time-limit truncation: the fix)
  m = 1 - max(terminated, truncated)     (reference behaviour: time limits treated as terminal)
beta_s = `backup_temperature`, alpha_b = `backup_alpha` or the learned temperature alpha.
n-step rows (`ExpoConfig.n_step` > 1, `Batch.steps` = k): r is the rows' discounted k-step
reward, s' the state after step t+k-1, and gamma becomes gamma^k (`Batch.discount`).

The base samples come from the base the caller passes (the agent passes the online or EMA copy,
`target_base`) with the sampler `ExpoConfig.target_sampling_steps()` ("fast": DDIM with
`td_sampling_steps`; "faithful": the acting sampler).

Ablations (ExpoConfig): `use_editor=False` drops the edits (c = the N base samples), and
`backup_edits=False` drops them from the backup only (acting still picks among base + edits);
`max_q_backup=False` replaces the argmax by one sampled action: a* = the edit of a single base
sample (the sample itself without editor), V(s') = Q*(s', a*).

Random numbers are drawn per minibatch in a fixed order (critic permutation, base noise, edit
noise, then Gumbel noise for "paper") by `draw_td_noise`, so the batched path consumes exactly
the faithful path's random stream. With frozen targets (tau = 0) the two paths are then
mathematically identical; with tau > 0 the batched path uses the target critics as they were at
the start of the env step (at most UTD-1 Polyak steps of tau each older).

`td_precision="bfloat16"` runs the whole target computation under torch.autocast (bfloat16
matmuls, float32 results): the same random stream and choices up to bfloat16 rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .batch import Batch
from .config import ExpoConfig
from .critic import CriticEnsemble
from .diffusion import DiffusionBase
from .editor import Editor
from .otf import (
    build_candidates,
    gumbel_noise,
    sample_softmax,
    score_candidates,
    softmax_entropy,
    take,
)


@dataclass(frozen=True)
class TDNoise:
    members: torch.Tensor  # (k,) target critics that score the candidates ("subset_min")
    base: torch.Tensor  # DiffusionBase.noise_shape(B, N, steps)
    edit: torch.Tensor  # (B, N, d)
    eval_members: torch.Tensor  # (k,) target critics that score a* (members unless "independent")
    gumbel: torch.Tensor | None  # (B, K) Gumbel noise of the "paper" backup's draw, else None


def td_num_samples(cfg: ExpoConfig) -> int:
    """Base samples per next state in the backup: `backup_samples` (0: N; at most N) for the
    max-Q backup, 1 for the sampled one."""
    if not cfg.max_q_backup:
        return 1
    return min(cfg.backup_samples or cfg.num_samples, cfg.num_samples)


def td_edits(cfg: ExpoConfig) -> bool:
    """Whether the backup's candidates include the edits (the editor is on and `backup_edits`)."""
    return cfg.use_editor and cfg.backup_edits


def td_num_candidates(cfg: ExpoConfig) -> int:
    """Candidates per next state in the backup: the base samples and, with the edits in the
    backup (`td_edits`), their edits."""
    return td_num_samples(cfg) * (2 if td_edits(cfg) else 1)


def draw_td_noise(
    cfg: ExpoConfig, base: DiffusionBase, batch_size: int, generator: torch.Generator, device: torch.device
) -> TDNoise:
    k = cfg.critic.num_min
    perm = torch.randperm(cfg.critic.num_critics, generator=generator, device=device)
    members = perm[:k]
    eval_members = perm[k : 2 * k] if cfg.target_eval_subset == "independent" else members
    n = td_num_samples(cfg)
    shape = base.noise_shape(batch_size, n, cfg.target_sampling_steps())
    base_noise = torch.randn(shape, generator=generator, device=device)
    edit_noise = torch.randn((batch_size, n, cfg.act_dim), generator=generator, device=device)
    gumbel = None
    if cfg.entropy_backup == "paper":
        gumbel = gumbel_noise((batch_size, td_num_candidates(cfg)), generator, device)
    return TDNoise(members, base_noise, edit_noise, eval_members, gumbel)


@dataclass(frozen=True)
class TDTargets:
    target: torch.Tensor  # (G, B)
    next_q: torch.Tensor  # (G, B) Q* of the chosen next action (before any entropy term)
    edited: torch.Tensor  # (G, B) bool, the chosen next action is an edited candidate
    entropy: torch.Tensor | None  # (G, B) entropy of the backup's softmax (entropy backups only)
    log_prob: torch.Tensor | None  # (G, B) log p(a*) of the "paper" backup's draw, else None

    @property
    def edited_fraction(self) -> float:
        """Share of next actions that were edited candidates."""
        return self.edited.float().mean().item()


def _cat(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if parts[0] is None else torch.cat(parts)


@torch.no_grad()
def td_targets(
    cfg: ExpoConfig,
    base: DiffusionBase,
    editor: Editor,
    target_critic: CriticEnsemble,
    batches: list[Batch],
    noises: list[TDNoise],
    alpha: torch.Tensor,
) -> TDTargets:
    """Targets for G minibatches (already observation-normalized) in one batched computation.

    With `cfg.td_chunk_rows` > 0 the minibatches are processed a few at a time (whole groups of
    at most that many state-sample rows, at least one group): identical results, activations
    that stay cache-sized on CPUs. 0 computes all G at once (GPUs)."""
    B = len(batches[0])
    rows = B * td_num_samples(cfg)
    per = len(batches) if cfg.td_chunk_rows <= 0 else max(1, cfg.td_chunk_rows // rows)
    with precision_context(cfg.td_precision, batches[0].next_obs.device):
        parts = [
            _td_targets_groups(
                cfg, base, editor, target_critic, batches[i : i + per], noises[i : i + per], alpha
            )
            for i in range(0, len(batches), per)
        ]
    if len(parts) == 1:
        return parts[0]
    return TDTargets(
        torch.cat([p.target for p in parts]),
        torch.cat([p.next_q for p in parts]),
        torch.cat([p.edited for p in parts]),
        _cat([p.entropy for p in parts]),
        _cat([p.log_prob for p in parts]),
    )


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Nothing for "float32", bfloat16 autocast on `device`'s type for "bfloat16"."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _grouped_score(
    rule: str, critic: CriticEnsemble, obs: torch.Tensor, actions: torch.Tensor, members: torch.Tensor
) -> torch.Tensor:
    """Each group's score of its candidates by its own critics. obs (G, B, o), actions
    (G, B, K, d), members (G, m) -> (G, B, K)."""
    return score_candidates(critic.q_candidates_grouped(obs, actions, members), rule)


def _td_targets_groups(
    cfg: ExpoConfig,
    base: DiffusionBase,
    editor: Editor,
    target_critic: CriticEnsemble,
    batches: list[Batch],
    noises: list[TDNoise],
    alpha: torch.Tensor,
) -> TDTargets:
    G, B = len(batches), len(batches[0])
    N, K = td_num_samples(cfg), td_num_candidates(cfg)
    next_obs = torch.cat([b.next_obs for b in batches])  # (G*B, o)
    cands = build_candidates(
        base,
        editor,
        next_obs,
        N,
        steps=cfg.target_sampling_steps(),
        base_noise=torch.cat([n.base for n in noises], dim=1),
        edit_noise=torch.cat([n.edit for n in noises]),
        chunk_rows=cfg.td_chunk_rows,
        edit=td_edits(cfg),
    ).float()  # (G*B, K, d); a no-op in float32, bfloat16 rounding kept otherwise

    # score every candidate with the target critics of the rule
    if cfg.target_score == "subset_min":
        pick = torch.stack([n.members for n in noises])  # (G, k)
    else:
        pick = torch.arange(target_critic.num, device=next_obs.device).expand(G, -1)
    obs_g = next_obs.reshape(G, B, -1)
    score = _grouped_score(cfg.target_score, target_critic, obs_g, cands.reshape(G, B, K, -1), pick)
    score = score.reshape(G * B, K).float()

    # choose the next action
    log_prob = None
    if not cfg.max_q_backup:  # the single sampled action: the last candidate (its edit, or itself)
        index = torch.full((G * B,), K - 1, dtype=torch.long, device=score.device)
    elif cfg.entropy_backup == "paper":
        gumbel = torch.cat([n.gumbel for n in noises])
        index, log_prob = sample_softmax(score, cfg.backup_temperature, gumbel)
    else:
        index = score.argmax(-1)

    # its value, by the subset that picked it or by an independent one
    if cfg.target_eval_subset == "independent":
        evaluators = torch.stack([n.eval_members for n in noises])
        a_star = take(cands, index).reshape(G, B, 1, -1)
        q_star = _grouped_score("subset_min", target_critic, obs_g, a_star, evaluators).reshape(G * B).float()
    else:
        q_star = score.gather(1, index[:, None])[:, 0]

    # the backup
    v, entropy = q_star, None
    if cfg.entropy_backup == "paper":
        alpha_b = alpha if cfg.backup_alpha is None else cfg.backup_alpha
        v = q_star - alpha_b * log_prob
        entropy = softmax_entropy(score, 1.0 / cfg.backup_temperature)
    elif cfg.entropy_backup == "softmax_entropy":
        entropy = softmax_entropy(score, alpha)
        v = q_star + alpha * entropy
    reward = torch.cat([b.reward for b in batches])
    term = torch.cat([b.terminated for b in batches])
    if cfg.bootstrap_truncated:
        done = term
    else:
        done = torch.maximum(term, torch.cat([b.truncated for b in batches]))
    discount = torch.cat([b.discount(cfg.gamma) for b in batches])  # gamma^k of n-step rows
    target = reward + discount * (1.0 - done) * v
    return TDTargets(
        target.reshape(G, B),
        q_star.reshape(G, B),
        (index >= N).reshape(G, B),  # never without editor: then K = N
        None if entropy is None else entropy.reshape(G, B),
        None if log_prob is None else log_prob.reshape(G, B),
    )


def discounted_returns(rewards: Sequence[float] | np.ndarray, gamma: float) -> np.ndarray:
    """Monte-Carlo discounted return from every step of one episode, the quantity Q(s_t, a_t)
    estimates: G_t = sum_{i >= t} gamma^(i - t) r_i. rewards (T,) -> (T,) float64.

    Nothing is bootstrapped after the last reward, so for an episode cut by a time limit G_t
    is a lower bound of the true return (short by gamma^(T - t) times the value at the cut);
    compare Q with it on terminated episodes, or far from the cut."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"rewards has shape {r.shape}; allowed: one episode, shape (T,)")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma!r} is invalid; allowed: [0, 1]")
    out = np.empty_like(r)
    acc = 0.0
    for t in range(len(r) - 1, -1, -1):
        acc = r[t] + gamma * acc
        out[t] = acc
    return out
