"""OTF temporal-difference targets, for one minibatch (faithful) or all UTD minibatches of an env
step at once (fast path).

  y = r + gamma * m * V(s'),   V(s') = min_{j in S} Q'_j(s', a*)  [+ alpha * H(s')]
  a* = argmax_k min_{j in S} Q'_j(s', c_k),  c = N online-base samples at s' and their edits,
  S = a random subset of `num_min` target critics (REDQ), drawn per minibatch,
  m = 1 - terminated                     (bootstrap through time-limit truncation: the fix)
  m = 1 - max(terminated, truncated)     (reference behaviour: time limits treated as terminal)

Ablations (ExpoConfig): `use_editor=False` drops the edits (c = the N base samples);
`max_q_backup=False` replaces the argmax by one sampled action: a* = the edit of a single base
sample (the sample itself without editor), V(s') = min_{j in S} Q'_j(s', a*).

Random numbers are drawn per minibatch in a fixed order (subset, base noise, edit noise) by
`draw_td_noise`, so the batched path consumes exactly the faithful path's random stream. With
frozen targets (tau = 0) the two paths are then mathematically identical; with tau > 0 the
batched path uses the target critics as they were at the start of the env step (at most UTD-1
Polyak steps of tau each older).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batch import Batch
from .config import ExpoConfig
from .critic import CriticEnsemble
from .diffusion import DiffusionBase
from .editor import Editor
from .otf import OTFResult, build_candidates, select, softmax_entropy


@dataclass(frozen=True)
class TDNoise:
    members: torch.Tensor  # (k,) target-critic subset
    base: torch.Tensor  # DiffusionBase.noise_shape(B, N, steps)
    edit: torch.Tensor  # (B, N, d)


def td_num_samples(cfg: ExpoConfig) -> int:
    """Base samples per next state in the backup: N for the max-Q backup, 1 for the sampled one."""
    return cfg.num_samples if cfg.max_q_backup else 1


def draw_td_noise(
    cfg: ExpoConfig, base: DiffusionBase, batch_size: int, generator: torch.Generator, device: torch.device
) -> TDNoise:
    members = torch.randperm(cfg.critic.num_critics, generator=generator, device=device)[: cfg.critic.num_min]
    n = td_num_samples(cfg)
    shape = base.noise_shape(batch_size, n, cfg.td_sampling_steps)
    base_noise = torch.randn(shape, generator=generator, device=device)
    edit_noise = torch.randn((batch_size, n, cfg.act_dim), generator=generator, device=device)
    return TDNoise(members, base_noise, edit_noise)


@dataclass(frozen=True)
class TDTargets:
    target: torch.Tensor  # (G, B)
    next_q: torch.Tensor  # (G, B) subset-min Q of the chosen next action
    edited_fraction: float  # share of next actions that were edited candidates
    entropy: torch.Tensor | None  # (G, B) softmax entropy when the entropy backup is on


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
    rows = B * cfg.num_samples
    per = len(batches) if cfg.td_chunk_rows <= 0 else max(1, cfg.td_chunk_rows // rows)
    parts = [
        _td_targets_groups(cfg, base, editor, target_critic, batches[i : i + per], noises[i : i + per], alpha)
        for i in range(0, len(batches), per)
    ]
    if len(parts) == 1:
        return parts[0]
    n = sum(p.target.shape[0] for p in parts)
    return TDTargets(
        torch.cat([p.target for p in parts]),
        torch.cat([p.next_q for p in parts]),
        sum(p.edited_fraction * p.target.shape[0] for p in parts) / n,
        None if parts[0].entropy is None else torch.cat([p.entropy for p in parts]),
    )


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
    N = td_num_samples(cfg)
    K = 2 * N if cfg.use_editor else N
    next_obs = torch.cat([b.next_obs for b in batches])  # (G*B, o)
    base_noise = torch.cat([n.base for n in noises], dim=1)
    edit_noise = torch.cat([n.edit for n in noises])
    cands = build_candidates(
        base,
        editor,
        next_obs,
        N,
        steps=cfg.td_sampling_steps,
        base_noise=base_noise,
        edit_noise=edit_noise,
        chunk_rows=cfg.td_chunk_rows,
        edit=cfg.use_editor,
    )  # (G*B, K, d)
    obs_rep = next_obs[:, None, :].expand(-1, K, -1)
    members = torch.stack([n.members for n in noises])  # (G, k)
    q = target_critic.forward_grouped(
        obs_rep.reshape(G, B * K, -1), cands.reshape(G, B * K, -1), members
    ).amin(0)  # (G, B*K)
    q = q.reshape(G * B, K)
    if cfg.max_q_backup:
        chosen = select(cands, q)
    else:  # the single sampled action: the last candidate (the edit, or the base sample without editor)
        last = torch.full((G * B,), K - 1, dtype=torch.long, device=q.device)
        chosen = OTFResult(cands[:, K - 1], last, cands, q)
    v = chosen.q.gather(1, chosen.index[:, None])[:, 0]
    next_q = v
    entropy = None
    if cfg.entropy_backup:
        entropy = softmax_entropy(q, alpha)
        v = v + alpha * entropy
        entropy = entropy.reshape(G, B)
    reward = torch.cat([b.reward for b in batches])
    term = torch.cat([b.terminated for b in batches])
    if cfg.bootstrap_truncated:
        done = term
    else:
        done = torch.maximum(term, torch.cat([b.truncated for b in batches]))
    target = reward + cfg.gamma * (1.0 - done) * v
    edited = (chosen.index >= N).float().mean().item()
    return TDTargets(target.reshape(G, B), next_q.reshape(G, B), edited, entropy)
