"""ExpoAgent: the small contract the rest of the stack uses.

act(obs) -> action                 OTF decision with the EMA base (numpy in, numpy out)
decide(obs) -> OTFResult           the same with candidates and their Q (and, with action
                                   chunks, the plan), tensors
pretrain_step(batch) -> stats      offline imitation of the base only
update(batch_iter) -> stats        one env step's worth of learning (UTD critic steps, then one
                                   base, one editor and one temperature step)
evaluate_bc_loss(batch) -> float   the base's imitation loss on given data, no training step
policy_state() / load_policy_state()   the acting bundle (EMA base, editor, critics, normalizer)
state_dict() / load_state_dict()   everything (see checkpoint.py for files)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .batch import Batch
from .config import ExpoConfig
from .critic import polyak_update
from .diffusion import DiffusionBase
from .losses import critic_loss, editor_loss, temperature_loss
from .otf import OTFResult
from .policy import ExpoPolicy
from .td import TDTargets, draw_td_noise, precision_context, td_targets

EVAL_SEED = 12345  # base-sampling seed of the deterministic eval policy


class ExpoAgent(nn.Module):
    def __init__(self, cfg: ExpoConfig, device: str | torch.device = "cpu", seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.base = DiffusionBase(cfg.diffusion, cfg.obs_dim, cfg.act_dim)  # online, trained by BC
            self.policy = ExpoPolicy(cfg)  # EMA base + editor + critics: what acts
        self.policy.base.load_state_dict(self.base.state_dict())
        self.critic_target = copy.deepcopy(self.policy.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.to(self.device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        d = cfg.diffusion
        self.base_opt = torch.optim.AdamW(self.base.parameters(), lr=d.lr, weight_decay=d.weight_decay)
        decay = d.lr_decay_steps
        self.base_sched = torch.optim.lr_scheduler.LambdaLR(
            self.base_opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, decay) / decay)) if decay else 1.0
        )
        self.critic_opt = torch.optim.Adam(self.policy.critic.parameters(), lr=cfg.critic.lr)
        self.editor_opt = torch.optim.Adam(self.policy.editor.parameters(), lr=cfg.editor.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr)
        self.target_entropy = cfg.effective_target_entropy()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_rejected", torch.zeros((), dtype=torch.long))

    # --- acting --------------------------------------------------------------------------
    @property
    def alpha(self) -> torch.Tensor:
        """The temperature, never below `cfg.min_temperature`."""
        return self.log_alpha.detach().exp().clamp(min=self.cfg.min_temperature)

    def _sampling_generator(self, deterministic: bool) -> torch.Generator:
        """The training stream, or a fresh fixed-seed one so eval actions depend on obs alone."""
        return torch.Generator(self.device).manual_seed(EVAL_SEED) if deterministic else self.generator

    def decide(self, obs: torch.Tensor, deterministic: bool = False) -> OTFResult:
        """obs (B, o) raw. deterministic: editor mean and a fixed base-noise seed, so the action
        is a function of the observation alone (the eval policy)."""
        return self.policy.decide(obs.to(self.device), self._sampling_generator(deterministic), deterministic)

    @torch.no_grad()
    def base_act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """The base policy alone, one EMA-base sample per state (the imitation baseline).
        obs (o,) or (B, o) -> action (d,) or (B, d)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        single = x.ndim == 1
        nobs = self.policy.normalizer(x[None] if single else x)
        gen = self._sampling_generator(deterministic)
        out = self.policy.base.sample(nobs, 1, gen, steps=self.cfg.act_sampling_steps)[:, 0].cpu().numpy()
        return out[0] if single else out

    @torch.no_grad()
    def base_act_chunk(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """`base_act` with the whole sampled chunk (action chunks, diffusion.chunk_len = k):
        obs (o,) or (B, o) -> (k, d) or (B, k, d); [..., 0, :] is `base_act`'s action for the
        same generator state, the rest the sample's plan."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        single = x.ndim == 1
        nobs = self.policy.normalizer(x[None] if single else x)
        gen = self._sampling_generator(deterministic)
        out = self.policy.base.sample_chunks(nobs, 1, gen, steps=self.cfg.act_sampling_steps)[:, 0]
        out = out.cpu().numpy()
        return out[0] if single else out

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """obs (o,) or (B, o) -> action (d,) or (B, d), float32 in [-1, 1]."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        single = x.ndim == 1
        out = self.decide(x[None] if single else x, deterministic).action.cpu().numpy()
        return out[0] if single else out

    # --- learning ------------------------------------------------------------------------
    def set_obs_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.policy.normalizer.set_stats(torch.as_tensor(mean), torch.as_tensor(std))

    def _normalized(self, b: Batch) -> Batch:
        n = self.policy.normalizer
        b = b.to(self.device)
        return b.replace(obs=n(b.obs), next_obs=n(b.next_obs))

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> bool:
        """One optimizer step, unless the loss or any gradient is non-finite: then the step is
        rejected (weights untouched) and counted."""
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            self.num_rejected += 1
            return False
        loss.backward()
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(params, float("inf"))):
            opt.zero_grad(set_to_none=True)
            self.num_rejected += 1
            return False
        opt.step()
        return True

    def _bc_loss(
        self, base: DiffusionBase, b: Batch, generator: torch.Generator, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The base's denoising loss on b (normalized). With action chunks (chunk_len = k > 1)
        on the chunk targets and their mask (`Batch.chunk_targets`: demonstration chunks, or the
        first slot alone for online rows); k = 1: on the action alone, as before chunks.
        rows: (B,) 0/1, the rows that count (None: all); the others carry no weight."""
        k = base.chunk_len
        if k == 1 and rows is None:
            return base.loss(b.obs, b.action, generator)
        chunk, mask = b.chunk_targets(k)
        if rows is not None:
            mask = mask * rows[:, None]
        return base.loss(b.obs, chunk.reshape(len(b), -1), generator, mask)

    def _base_step(self, b: Batch, rows: torch.Tensor | None = None) -> float:
        """One imitation step of the base (and its EMA copy) on b's `rows` (None: all). With rows
        given and none of them 1 there is nothing to imitate: no step, and the loss is NaN."""
        if rows is not None and not bool(rows.any()):
            return float("nan")
        loss = self._bc_loss(self.base, b, self.generator, rows)
        if self._step(self.base_opt, loss):
            self.base_sched.step()
            polyak_update(self.policy.base, self.base, self.cfg.diffusion.ema_tau)
        return loss.item()

    def _bc_rows(self, b: Batch) -> torch.Tensor | None:
        """The rows of an online update's batch the base imitates (`ExpoConfig.bc_rows`)."""
        if self.cfg.bc_rows == "all":
            return None
        if b.rewarded is None:
            raise ValueError(
                "ExpoConfig.bc_rows='rewarded' needs batches that carry Batch.rewarded "
                "(ReplayBuffer.sample and MixedSampler give it)"
            )
        return b.rewarded

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """Offline imitation of the base policy only (no RL)."""
        return {"bc_loss": self._base_step(self._normalized(batch))}

    @torch.no_grad()
    def evaluate_bc_loss(self, batch: Batch, ema: bool = False, seed: int = EVAL_SEED) -> float:
        """The base's imitation (denoising) loss on `batch` (raw observations) without a training
        step, on fixed-seed noise so that values at different evaluation points compare (e.g. on
        online transitions only: how well the base imitates what the agent now does).
        ema: the acting EMA copy instead of the online base."""
        b = self._normalized(batch)
        base = self.policy.base if ema else self.base
        return self._bc_loss(base, b, torch.Generator(self.device).manual_seed(seed)).item()

    def update(self, batch_iter: Iterator[Batch]) -> dict[str, float]:
        """One env step of EXPO learning. Pulls `utd` minibatches from `batch_iter` first (so the
        fast and faithful paths consume identical random streams), then:
        utd x [OTF TD target -> critic step -> Polyak], base BC step + EMA, editor step,
        temperature step (the last two skipped when `use_editor` is off). Returns flat float stats."""
        cfg = self.cfg
        batches = [self._normalized(next(batch_iter)) for _ in range(cfg.utd)]
        alpha = self.alpha
        stats = self._critic_steps(batches, alpha)
        last = batches[-1]
        stats["bc_loss"] = self._base_step(last, self._bc_rows(last))
        if cfg.use_editor:
            stats.update(self._editor_and_temperature_steps(last, alpha))
        self.num_updates += 1
        stats["alpha"] = self.alpha.item()
        stats["rejected_steps"] = float(self.num_rejected.item())
        return stats

    def _target_sampling_base(self) -> DiffusionBase:
        """The base whose samples form the TD-target candidates (`cfg.target_base`): the online
        (BC-trained) weights or their EMA copy, the one that acts."""
        return self.base if self.cfg.target_base == "online" else self.policy.base

    def _td_targets(self, batches: list[Batch], alpha: torch.Tensor) -> TDTargets:
        """Targets of `batches`, one TD-noise draw per minibatch in order, by the target critics."""
        cfg, base = self.cfg, self._target_sampling_base()
        noises = [draw_td_noise(cfg, base, len(b), self.generator, self.device) for b in batches]
        return td_targets(cfg, base, self.policy.editor, self.critic_target, batches, noises, alpha)

    def _critic_steps(self, batches: list[Batch], alpha: torch.Tensor) -> dict[str, float]:
        """utd x [TD target -> critic step -> Polyak]. With `batched_td` the targets of all
        minibatches come from one call before the first step; otherwise each just before its step."""
        cfg = self.cfg
        batched = self._td_targets(batches, alpha) if cfg.batched_td else None
        losses, qs, rows = [], [], []
        for i, b in enumerate(batches):
            td, row = (batched, i) if batched is not None else (self._td_targets([b], alpha), 0)
            with precision_context(cfg.critic_precision, self.device):  # float32: no context
                loss, q = critic_loss(self.policy.critic, b.obs, b.action, td.target[row])
            self._step(self.critic_opt, loss)
            polyak_update(self.critic_target, self.policy.critic, cfg.tau)
            losses.append(loss.item())
            qs.append(q.item())
            rows.append((td, row))
        stats = {"critic_loss": float(np.mean(losses)), "q_mean": float(np.mean(qs))}
        stats.update(_td_stats(rows))
        return stats

    def _editor_and_temperature_steps(self, last: Batch, alpha: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        critic = self.policy.critic
        if cfg.editor_on_base_samples:
            with torch.no_grad():
                base_action = self.policy.base.sample(
                    last.obs, 1, self.generator, steps=cfg.act_sampling_steps
                )[:, 0]
        else:
            base_action = last.action
        members = None  # the editor's critics: all, or a random subset for a subset_min objective
        if critic.draws_subset(cfg.editor_score):
            members = critic.random_subset(self.generator, last.obs.device)
        editor, gen = self.policy.editor, self.generator
        ed = editor_loss(editor, critic, last.obs, base_action, alpha, gen, cfg.editor_score, members)
        self._step(self.editor_opt, ed.loss)
        t_loss = temperature_loss(self.log_alpha, ed.log_prob, self.target_entropy)
        self._step(self.alpha_opt, t_loss)
        if cfg.min_temperature > 0:  # projected onto the floor
            with torch.no_grad():
                self.log_alpha.clamp_(min=math.log(cfg.min_temperature))
        return dict(
            editor_loss=ed.loss.item(),
            editor_q=ed.q.item(),
            editor_entropy=-ed.log_prob.mean().item(),
            temperature_loss=t_loss.item(),
        )

    # --- weights -------------------------------------------------------------------------
    def policy_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()}

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None:
        self.policy.load_state_dict(state)


def _td_stats(rows: list[tuple[TDTargets, int]]) -> dict[str, float]:
    """Means over the minibatches' targets (row `row` of each TDTargets): the same numbers
    whether the targets came from one batched call or one call per minibatch."""

    def mean(get) -> float:
        return torch.stack([get(td)[row].float().mean() for td, row in rows]).mean().item()

    stats = {
        "target_mean": mean(lambda td: td.target),
        "target_next_q": mean(lambda td: td.next_q),  # Q* of the chosen next actions
        "td_edited_fraction": mean(lambda td: td.edited),
    }
    if rows[0][0].entropy is not None:
        stats["otf_entropy"] = mean(lambda td: td.entropy)
    if rows[0][0].log_prob is not None:
        stats["backup_log_prob"] = mean(lambda td: td.log_prob)
    return stats
