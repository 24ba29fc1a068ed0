"""RLPD baseline (Ball et al. 2023): SAC with a tanh-Gaussian actor on s, a LayerNorm critic
ensemble with REDQ subset-min targets, symmetric 50/50 offline/online sampling and UTD > 1.

It reuses expo_core's critic ensemble, Polyak update, critic and temperature losses and replay,
so the comparison with EXPO differs only in the policy:

  critic:      y = r + gamma * m * min_{j in S} Q'_j(s', a'),  a' ~ pi(.|s'),  S a random subset
               (m as in EXPO: 1 - terminated; ``backup_entropy`` adds - alpha * log pi(a'|s'))
  actor:       L_pi = mean_i [ alpha * log pi(a~_i|s_i) - mean_j Q_j(s_i, a~_i) ],  a~_i ~ pi(.|s_i)
  temperature: L_a  = -alpha * (log pi + H_target),  H_target = -|A|/2

No entropy backup by default (as RLPD's and EXPO's reference runs on sparse-reward tasks,
``--config.backup_entropy=False``): with it, Q is the soft value, which adds
alpha * H(pi) / (1 - gamma) to the return, 100 * alpha * H for gamma 0.99. On lift with 0/1
rewards (every true Q in [0, 1]) that term was 0.05 * 4.6 * 100 = 23 early in a run, so the
critic's Q climbed past 1 (3.5 after 8000 env steps in docs/results.md) while the actor, near
uniform (entropy 4.6 of at most 7 log 2 = 4.85), was rewarded for staying random.
The target uses one random critic of the ensemble (``num_min`` 1, RLPD's setting for sparse
rewards, ``--config.num_min_qs=1``, also in EXPO's reference runs) instead of the EXPO cpu
preset's min over all 5: a min over several members at a near-uniform actor's actions, which no
data covers, is pessimistic by their spread at every step, and that compounds through the backup
to about -gamma * spread / (1 - gamma). On the lift demonstrations (offline batches, seed 0) the
min over all 5 held Q near -0.8 over 1250 updates; with a random 2 it was -0.54 after 250 updates
and -0.10 after 2500 (online, in a 2000-step lift run: -0.52 after 1000 updates); with a random
1 it rose from -0.13 to +0.06 in 1000 updates, where a random actor's true values are near 0.

One :meth:`RLPDAgent.update` is one env step: ``utd`` critic steps, then one actor and one
temperature step on the last minibatch. Checkpoints: safetensors tensors + JSON, never pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from expo_core.batch import Batch
from expo_core.config import CriticConfig, ExpoConfig, check_n_step
from expo_core.critic import CriticEnsemble, polyak_update
from expo_core.losses import critic_loss, temperature_loss
from expo_core.nets import MLP
from expo_core.policy import ObsNormalizer
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT = "expo-rlpd-safetensors-v1"
RLPD_NUM_MIN = 1  # one random critic per target: RLPD on sparse rewards (see the module doc)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


@dataclass(frozen=True)
class RLPDConfig:
    obs_dim: int
    act_dim: int
    actor_hidden_dims: tuple[int, ...] = (256, 256)
    critic: CriticConfig = field(default_factory=CriticConfig)
    actor_lr: float = 3e-4
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    utd: int = 20
    init_temperature: float = 1.0
    temperature_lr: float = 3e-4
    target_entropy: float | None = None  # None -> -act_dim / 2
    offline_fraction: float = 0.5
    backup_entropy: bool = False  # True: soft backup (see the module doc for why not here)
    bootstrap_truncated: bool = True
    n_step: int = 1  # n-step TD targets, as ExpoConfig.n_step

    def __post_init__(self) -> None:
        for n in ("obs_dim", "act_dim", "batch_size", "utd"):
            v = getattr(self, n)
            _check(isinstance(v, int) and v >= 1, n, v, "integer >= 1")
        dims = self.actor_hidden_dims
        ok = isinstance(dims, tuple) and len(dims) >= 1 and all(isinstance(d, int) and d >= 1 for d in dims)
        _check(ok, "actor_hidden_dims", dims, "non-empty tuple of integers >= 1")
        for n in ("actor_lr", "init_temperature", "temperature_lr"):
            v = getattr(self, n)
            _check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, n, v, "finite > 0")
        _check(self.log_std_min < self.log_std_max, "log_std_min", self.log_std_min, "< log_std_max")
        _check(0 <= self.gamma < 1, "gamma", self.gamma, "[0, 1)")
        _check(0 <= self.tau <= 1, "tau", self.tau, "[0, 1]")
        _check(0 <= self.offline_fraction <= 1, "offline_fraction", self.offline_fraction, "[0, 1]")
        t = self.target_entropy
        _check(t is None or math.isfinite(t), "target_entropy", t, "None or a finite float")
        check_n_step(self.n_step)

    @classmethod
    def from_expo(cls, cfg: ExpoConfig) -> RLPDConfig:
        """RLPD under EXPO's budget: the same critic ensemble (targets from one random member,
        RLPD's sparse-reward setting), gamma, tau, batch, UTD, mixing and temperature settings;
        the actor is as wide as the critic; no entropy backup."""
        return cls(
            obs_dim=cfg.obs_dim,
            act_dim=cfg.act_dim,
            actor_hidden_dims=cfg.critic.hidden_dims,
            critic=dataclasses.replace(cfg.critic, num_min=min(RLPD_NUM_MIN, cfg.critic.num_critics)),
            actor_lr=cfg.editor.lr,
            gamma=cfg.gamma,
            tau=cfg.tau,
            batch_size=cfg.batch_size,
            utd=cfg.utd,
            init_temperature=cfg.init_temperature,
            temperature_lr=cfg.temperature_lr,
            offline_fraction=cfg.offline_fraction,
            backup_entropy=False,
            bootstrap_truncated=cfg.bootstrap_truncated,
            n_step=cfg.n_step,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.n_step == 1:
            del d["n_step"]  # configs without it serialize as before
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RLPDConfig:
        d = dict(data)
        d["actor_hidden_dims"] = tuple(d["actor_hidden_dims"])
        c = dict(d["critic"])
        c["hidden_dims"] = tuple(c["hidden_dims"])
        d["critic"] = CriticConfig(**c)
        return cls(**d)


class TanhGaussianActor(nn.Module):
    """pi(a|s): z ~ N(mu(s), sigma(s)^2), a = tanh(z) in (-1, 1)^d, reparameterized."""

    def __init__(self, cfg: RLPDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = MLP(cfg.obs_dim, cfg.actor_hidden_dims, 2 * cfg.act_dim)

    def forward(
        self, obs: torch.Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, o) normalized -> action (B, d), log_prob (B,)."""
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max)
        eps = torch.zeros_like(mu) if deterministic else torch.randn(mu.shape, generator=generator)
        z = mu + log_std.exp() * eps
        log_det = 2.0 * (math.log(2.0) - z - F.softplus(-2.0 * z))  # log(1 - tanh(z)^2), stable
        log_prob = (-0.5 * eps**2 - log_std - _LOG_SQRT_2PI - log_det).sum(-1)
        return torch.tanh(z), log_prob


class RLPDAgent(nn.Module):
    """The harness contract: act(obs, deterministic), update(batch_iter), set_obs_normalization."""

    def __init__(self, cfg: RLPDConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.normalizer = ObsNormalizer(cfg.obs_dim)
            self.actor = TanhGaussianActor(cfg)
            self.critic = CriticEnsemble(cfg.critic, cfg.obs_dim, cfg.act_dim)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.register_buffer("num_rejected", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator().manual_seed(seed)
        self.target_entropy = -cfg.act_dim / 2.0 if cfg.target_entropy is None else cfg.target_entropy
        self.optimizers = {
            "actor": torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.critic.lr),
            "alpha": torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr),
        }

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def set_obs_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.normalizer.set_stats(torch.as_tensor(mean), torch.as_tensor(std))

    @torch.no_grad()
    def q_value(self, obs: np.ndarray, action: np.ndarray) -> float:
        """The critic ensemble's mean Q of one raw (obs (o,), action (d,)) pair."""
        x = self.normalizer(torch.as_tensor(np.asarray(obs, dtype=np.float32))[None])
        a = torch.as_tensor(np.asarray(action, dtype=np.float32))[None]
        return self.critic(x, a).mean().item()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """obs (o,) or (B, o) raw -> action (d,) or (B, d) in (-1, 1); deterministic: tanh(mu)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        single = x.ndim == 1
        a, _ = self.actor(self.normalizer(x[None] if single else x), self.generator, deterministic)
        return a[0].numpy() if single else a.numpy()

    def _step(self, name: str, loss: torch.Tensor) -> None:
        """One optimizer step unless the loss or a gradient is non-finite (then counted, skipped)."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            if torch.isfinite(torch.nn.utils.clip_grad_norm_(params, float("inf"))):
                opt.step()
                return
            opt.zero_grad(set_to_none=True)
        self.num_rejected += 1

    def _target(self, b: Batch, alpha: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            a, log_prob = self.actor(b.next_obs, self.generator)
            members = self.critic_target.random_subset(self.generator)
            v = self.critic_target(b.next_obs, a, members).amin(0)
            if self.cfg.backup_entropy:
                v = v - alpha * log_prob
            done = b.terminated if self.cfg.bootstrap_truncated else torch.maximum(b.terminated, b.truncated)
            return b.reward + b.discount(self.cfg.gamma) * (1.0 - done) * v

    def update(self, batch_iter: Iterator[Batch]) -> dict[str, float]:
        """One env step: ``utd`` critic steps, then one actor and one temperature step."""
        n = self.normalizer
        batches = [next(batch_iter) for _ in range(self.cfg.utd)]
        batches = [b.replace(obs=n(b.obs), next_obs=n(b.next_obs)) for b in batches]
        alpha = self.alpha
        losses, qs = [], []
        for b in batches:
            y = self._target(b, alpha)
            loss, q = critic_loss(self.critic, b.obs, b.action, y)
            self._step("critic", loss)
            polyak_update(self.critic_target, self.critic, self.cfg.tau)
            losses.append(loss.item())
            qs.append(q.item())
        obs = batches[-1].obs
        a, log_prob = self.actor(obs, self.generator)
        self.critic.requires_grad_(False)
        try:
            q_pi = self.critic(obs, a).mean(0)
        finally:
            self.critic.requires_grad_(True)
        actor_loss = (alpha * log_prob - q_pi).mean()
        self._step("actor", actor_loss)
        t_loss = temperature_loss(self.log_alpha, log_prob.detach(), self.target_entropy)
        self._step("alpha", t_loss)
        return {
            "critic_loss": float(np.mean(losses)),
            "q_mean": float(np.mean(qs)),
            "target_mean": y.mean().item(),
            "actor_loss": actor_loss.item(),
            "actor_entropy": -log_prob.mean().item(),
            "alpha": self.alpha.item(),
            "temperature_loss": t_loss.item(),
            "rejected_steps": float(self.num_rejected.item()),
        }


def save_rlpd(path: str | Path, agent: RLPDAgent, metadata: dict[str, Any] | None = None) -> None:
    """``path``.safetensors (weights, optimizer moments, RNG) + ``path``.json (config, metadata)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"agent/{k}": v.detach().contiguous().clone() for k, v in agent.state_dict().items()}
    groups = {}
    for name, opt in agent.optimizers.items():
        sd = opt.state_dict()
        groups[name] = sd["param_groups"]
        for pid, st in sd["state"].items():
            for k, v in st.items():
                tensors[f"optim/{name}/{pid}/{k}"] = torch.as_tensor(v).detach().clone()
    tensors["rng/generator"] = agent.generator.get_state()
    info = {
        "format": FORMAT,
        "config": agent.cfg.to_dict(),
        "optimizer_groups": groups,
        "metadata": metadata or {},
    }
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp))
    path.with_suffix(".json.tmp").write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(path.with_suffix(".safetensors"))
    path.with_suffix(".json.tmp").replace(path.with_suffix(".json"))


def load_rlpd(path: str | Path) -> tuple[RLPDAgent, dict[str, Any]]:
    """Rebuild an agent saved by :func:`save_rlpd`. Returns (agent, metadata)."""
    path = Path(path)
    info = json.loads(path.with_suffix(".json").read_text())
    if info.get("format") != FORMAT:
        raise ValueError(f"{path}: not an RLPD checkpoint (format {info.get('format')!r}, expected {FORMAT})")
    agent = RLPDAgent(RLPDConfig.from_dict(info["config"]))
    tensors = load_file(str(path.with_suffix(".safetensors")))
    agent.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("agent/")})
    for name, opt in agent.optimizers.items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        prefix = f"optim/{name}/"
        for key, v in tensors.items():
            if key.startswith(prefix):
                pid, k = key[len(prefix) :].split("/", 1)
                state.setdefault(int(pid), {})[k] = v
        opt.load_state_dict({"state": state, "param_groups": info["optimizer_groups"][name]})
    agent.generator.set_state(tensors["rng/generator"])
    return agent, info.get("metadata", {})
