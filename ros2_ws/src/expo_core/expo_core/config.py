"""Typed, validated configuration for every EXPO component.

Defaults are the published EXPO hyperparameters (see FACTS.md); `ExpoConfig.reference()`
additionally switches off our fixes of the public reference code's gaps so ablations can
reproduce it. Bad values raise ValueError naming the field and the allowed range.
JSON round trip: `ExpoConfig.from_dict(cfg.to_dict())`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _positive_int(name: str, value: Any) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value, "integer >= 1"
    )


def _positive_float(name: str, value: Any) -> None:
    _require(
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name, value, "finite > 0"
    )


def _dims(name: str, dims: Any) -> None:
    _require(
        isinstance(dims, tuple) and len(dims) >= 1 and all(isinstance(d, int) and d >= 1 for d in dims),
        name,
        dims,
        "non-empty tuple of integers >= 1",
    )


@dataclass(frozen=True)
class DiffusionConfig:
    """DDPM base policy: residual MLP denoiser (eps-prediction), VP schedule, EMA copy acts."""

    hidden_dim: int = 256  # width of the residual stream
    num_blocks: int = 3  # residual blocks [LayerNorm -> Dense(block_dim) -> swish -> Dense(hidden)]
    block_dim: int = 1024
    time_embed_dim: int = 128  # learned Fourier features of t, then an MLP(hidden, hidden)
    num_steps: int = 10  # T, DDPM denoising steps
    beta_min: float = 0.1  # VP schedule
    beta_max: float = 10.0
    ema_tau: float = 0.001  # EMA copy update rate per base step
    lr: float = 3e-4
    weight_decay: float = 1e-4  # AdamW
    lr_decay_steps: int = 0  # cosine decay horizon in base steps; 0 keeps lr constant

    def __post_init__(self) -> None:
        for n in ("hidden_dim", "num_blocks", "block_dim", "time_embed_dim", "num_steps"):
            _positive_int(f"diffusion.{n}", getattr(self, n))
        _require(self.time_embed_dim % 2 == 0, "diffusion.time_embed_dim", self.time_embed_dim, "even")
        _positive_float("diffusion.beta_min", self.beta_min)
        _require(
            self.beta_max > self.beta_min,
            "diffusion.beta_max",
            self.beta_max,
            f"> beta_min ({self.beta_min})",
        )
        _require(0 < self.ema_tau <= 1, "diffusion.ema_tau", self.ema_tau, "(0, 1]")
        _positive_float("diffusion.lr", self.lr)
        _require(self.weight_decay >= 0, "diffusion.weight_decay", self.weight_decay, ">= 0")
        _require(self.lr_decay_steps >= 0, "diffusion.lr_decay_steps", self.lr_decay_steps, ">= 0")


@dataclass(frozen=True)
class EditorConfig:
    """Tanh-Gaussian editor on (s, a): a_edit = clip(a + beta * u, -1, 1), u in (-1, 1)^d."""

    hidden_dims: tuple[int, ...] = (256, 256, 256)
    beta: float = 0.05  # maximum edit per action component (0.05 refinement .. 0.7 exploration)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    lr: float = 3e-4

    def __post_init__(self) -> None:
        _dims("editor.hidden_dims", self.hidden_dims)
        _require(0 < self.beta <= 2.0, "editor.beta", self.beta, "(0, 2]")
        _require(self.log_std_min < self.log_std_max, "editor.log_std_min", self.log_std_min, "< log_std_max")
        _positive_float("editor.lr", self.lr)


@dataclass(frozen=True)
class CriticConfig:
    """Q ensemble with LayerNorm; TD targets use the min over a random subset (REDQ)."""

    hidden_dims: tuple[int, ...] = (256, 256, 256)
    num_critics: int = 10
    num_min: int = 2  # size of the random subset whose min forms the target
    layer_norm: bool = True
    lr: float = 3e-4

    def __post_init__(self) -> None:
        _dims("critic.hidden_dims", self.hidden_dims)
        _positive_int("critic.num_critics", self.num_critics)
        _require(
            isinstance(self.num_min, int) and 1 <= self.num_min <= self.num_critics,
            "critic.num_min",
            self.num_min,
            f"integer in [1, num_critics={self.num_critics}]",
        )
        _positive_float("critic.lr", self.lr)


@dataclass(frozen=True)
class ExpoConfig:
    """Everything the agent needs. obs_dim/act_dim come from the task's ObsSpec/ActionSpec."""

    obs_dim: int
    act_dim: int
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    editor: EditorConfig = field(default_factory=EditorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    gamma: float = 0.99
    tau: float = 0.005  # target critic Polyak rate per critic step (0 freezes the targets)
    batch_size: int = 256
    utd: int = 20  # critic steps per env step
    num_samples: int = 8  # N base samples per state; OTF picks among N base + N edited
    init_temperature: float = 1.0
    temperature_lr: float = 3e-4
    target_entropy: float | None = None  # None -> -act_dim / 2 (published)
    offline_fraction: float = 0.5  # share of each batch drawn from the offline dataset
    entropy_backup: bool = False  # paper Eq. 4-5: add alpha * H(softmax(Q/alpha)) to the backup
    # Fixes of the reference code's gaps (True = fixed; ExpoConfig.reference() sets them False).
    editor_on_base_samples: bool = True  # train the editor on fresh base samples, not buffer actions
    reachable_target_entropy: bool = True  # cap the target entropy below the editor's maximum
    bootstrap_truncated: bool = True  # time-limit ends bootstrap; only true terminations mask
    # Fast TD-backup path.
    batched_td: bool = True  # targets of all UTD minibatches of one env step in one batched call
    td_sampling_steps: int = 0  # DDIM steps for target base samples; 0 = full DDPM (num_steps)
    act_sampling_steps: int = 0  # DDIM steps when acting; 0 = full DDPM (num_steps)
    td_chunk_rows: int = 1024  # rows per chunk of target sampling (cache-sized on CPU); 0 = no chunking
    # Paper ablations (the defaults are EXPO; td.py states the maths of each).
    use_editor: bool = True  # False: OTF picks among the N base samples only; no editor/temperature steps
    max_q_backup: bool = True  # False: TD target from one sampled base action and its edit (no argmax)

    def __post_init__(self) -> None:
        _positive_int("obs_dim", self.obs_dim)
        _positive_int("act_dim", self.act_dim)
        _require(0 <= self.gamma < 1, "gamma", self.gamma, "[0, 1)")
        _require(0 <= self.tau <= 1, "tau", self.tau, "[0, 1]")
        _positive_int("batch_size", self.batch_size)
        _positive_int("utd", self.utd)
        _positive_int("num_samples", self.num_samples)
        _positive_float("init_temperature", self.init_temperature)
        _positive_float("temperature_lr", self.temperature_lr)
        _require(
            self.target_entropy is None or math.isfinite(self.target_entropy),
            "target_entropy",
            self.target_entropy,
            "None or a finite float",
        )
        _require(0 <= self.offline_fraction <= 1, "offline_fraction", self.offline_fraction, "[0, 1]")
        _require(
            isinstance(self.td_chunk_rows, int) and self.td_chunk_rows >= 0,
            "td_chunk_rows",
            self.td_chunk_rows,
            "integer >= 0 (0 = no chunking)",
        )
        for n in ("use_editor", "max_q_backup"):
            _require(isinstance(getattr(self, n), bool), n, getattr(self, n), "True or False")
        _require(
            self.max_q_backup or not self.entropy_backup,
            "entropy_backup",
            self.entropy_backup,
            "False when max_q_backup=False (the entropy relaxes the max over candidates)",
        )
        for n in ("td_sampling_steps", "act_sampling_steps"):
            v = getattr(self, n)
            _require(
                isinstance(v, int) and 0 <= v <= self.diffusion.num_steps,
                n,
                v,
                f"integer in [0, diffusion.num_steps={self.diffusion.num_steps}] (0 = full DDPM)",
            )

    # --- derived quantities -------------------------------------------------------------
    def effective_target_entropy(self) -> float:
        """The temperature's target entropy of the editor's scaled distribution.

        Published: -|A|/2. The editor's density lives on a box of side 2*beta, so its entropy is
        at most d*log(2*beta); for small beta (e.g. 0.05: -2.3 per dim) the published target is
        unreachable and alpha grows without bound. With `reachable_target_entropy` the target is
        capped at d*(log(2*beta) - 0.5), half a nat per dimension below that maximum.
        """
        target = -self.act_dim / 2.0 if self.target_entropy is None else float(self.target_entropy)
        if self.reachable_target_entropy:
            target = min(target, self.act_dim * (math.log(2.0 * self.editor.beta) - 0.5))
        return target

    # --- serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpoConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ExpoConfig fields {unknown}; known: {sorted(known)}")
        subs = {"diffusion": DiffusionConfig, "editor": EditorConfig, "critic": CriticConfig}
        for name, sub in subs.items():
            if name in data and isinstance(data[name], dict):
                d = dict(data[name])
                for k, v in d.items():
                    if isinstance(v, list):
                        d[k] = tuple(v)
                sub_known = {f.name for f in dataclasses.fields(sub)}
                bad = sorted(set(d) - sub_known)
                if bad:
                    raise ValueError(f"unknown {name} fields {bad}; known: {sorted(sub_known)}")
                data[name] = sub(**d)
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ExpoConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ExpoConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def reference(cls, obs_dim: int, act_dim: int, **changes: Any) -> ExpoConfig:
        """The public reference implementation's behaviour, gaps included (for ablations)."""
        base = dict(
            editor_on_base_samples=False,
            reachable_target_entropy=False,
            bootstrap_truncated=False,
            entropy_backup=False,
            batched_td=False,
            td_sampling_steps=0,
            act_sampling_steps=0,
            td_chunk_rows=0,
        )
        base.update(changes)
        return cls(obs_dim=obs_dim, act_dim=act_dim, **base)
