"""ExpoAgent: the small contract the rest of the stack uses.

act(obs) -> action                 OTF decision with the EMA base (numpy in, numpy out)
decide(obs) -> OTFResult           the same with candidates and their Q, tensors
pretrain_step(batch) -> stats      offline imitation of the base only
update(batch_iter) -> stats        one env step's worth of learning (UTD critic steps, then one
                                   base, one editor and one temperature step)
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
from .td import draw_td_noise, td_targets

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
        return self.log_alpha.detach().exp()

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
        return Batch(n(b.obs), b.action, b.reward, n(b.next_obs), b.terminated, b.truncated)

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

    def _base_step(self, b: Batch) -> float:
        loss = self.base.loss(b.obs, b.action, self.generator)
        if self._step(self.base_opt, loss):
            self.base_sched.step()
            polyak_update(self.policy.base, self.base, self.cfg.diffusion.ema_tau)
        return loss.item()

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """Offline imitation of the base policy only (no RL)."""
        return {"bc_loss": self._base_step(self._normalized(batch))}

    def update(self, batch_iter: Iterator[Batch]) -> dict[str, float]:
        """One env step of EXPO learning. Pulls `utd` minibatches from `batch_iter` first (so the
        fast and faithful paths consume identical random streams), then:
        utd x [OTF TD target -> critic step -> Polyak], base BC step + EMA, editor step,
        temperature step (the last two skipped when `use_editor` is off). Returns flat float stats."""
        cfg = self.cfg
        batches = [self._normalized(next(batch_iter)) for _ in range(cfg.utd)]
        alpha = self.alpha
        critic = self.policy.critic
        stats: dict[str, float] = {}

        def noise() -> list:
            return [draw_td_noise(cfg, self.base, len(b), self.generator, self.device) for b in batches]

        if cfg.batched_td:
            td = td_targets(cfg, self.base, self.policy.editor, self.critic_target, batches, noise(), alpha)
            targets = list(td.target)
        c_losses, c_q = [], []
        for i, b in enumerate(batches):
            if not cfg.batched_td:
                n = [draw_td_noise(cfg, self.base, len(b), self.generator, self.device)]
                td = td_targets(cfg, self.base, self.policy.editor, self.critic_target, [b], n, alpha)
                y = td.target[0]
            else:
                y = targets[i]
            loss, q = critic_loss(critic, b.obs, b.action, y)
            self._step(self.critic_opt, loss)
            polyak_update(self.critic_target, critic, cfg.tau)
            c_losses.append(loss.item())
            c_q.append(q.item())
        stats["critic_loss"] = float(np.mean(c_losses))
        stats["q_mean"] = float(np.mean(c_q))
        stats["target_mean"] = y.mean().item()
        stats["td_edited_fraction"] = td.edited_fraction
        if td.entropy is not None:
            stats["otf_entropy"] = td.entropy.mean().item()

        last = batches[-1]
        stats["bc_loss"] = self._base_step(last)
        if cfg.use_editor:
            stats.update(self._editor_and_temperature_steps(last, alpha))
        self.num_updates += 1
        stats["alpha"] = self.alpha.item()
        stats["rejected_steps"] = float(self.num_rejected.item())
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
        ed = editor_loss(self.policy.editor, critic, last.obs, base_action, alpha, self.generator)
        self._step(self.editor_opt, ed.loss)
        t_loss = temperature_loss(self.log_alpha, ed.log_prob, self.target_entropy)
        self._step(self.alpha_opt, t_loss)
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
