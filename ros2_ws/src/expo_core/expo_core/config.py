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

from .validate import _dims, _one_of, _positive_float, _positive_int, _require, check_n_step


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
    # EMA copy update rate per base step; the EMA copy is what acts. Its time constant is 1/tau
    # base steps (one base step per agent update online). The cpu preset uses 0.005 (200 steps)
    # instead of the published 0.001 (1000 steps): its online runs are a few thousand updates
    # long, so at 0.001 the acting base would trail the online base by a large part of the run.
    ema_tau: float = 0.001
    # Base AdamW learning rate. The cpu preset uses 1e-3: it was taken with the small networks of
    # expo_core's learning test (test_learning.py) and fits their 20k-step pretraining budget; it
    # has not been compared with 3e-4 on the robomimic tasks (a point for the study of issue 14).
    lr: float = 3e-4
    weight_decay: float = 1e-4  # AdamW
    # Cosine decay horizon in base steps; 0 keeps lr constant. The reference decays over its
    # fixed run length; here runs have no fixed length (the ROS learner runs until stopped and
    # resumes from checkpoints; the harness resumes too), and a decay to 0 would also stop the
    # base from imitating the online data, so the default and the cpu preset keep lr constant.
    # Set it to the planned number of base steps to match the reference.
    lr_decay_steps: int = 0
    # Action chunks (issue 19): the base predicts this many consecutive actions [a_t .. a_t+k-1]
    # per sample (the denoiser's action width is act_dim * chunk_len). EXPO itself stays per
    # step: editor, critics, OTF selection and TD targets use the chunk's first action; the rest
    # of the chosen candidate's chunk is the plan (`OTFResult.plan`) an executor may run while
    # the next decision is computed. The tail is learned from demonstrations only (online
    # transitions carry one action). 1 = no chunks, bit-identical to bases made before the field.
    chunk_len: int = 1

    def __post_init__(self) -> None:
        for n in ("hidden_dim", "num_blocks", "block_dim", "time_embed_dim", "num_steps"):
            _positive_int(f"diffusion.{n}", getattr(self, n))
        _require(
            isinstance(self.chunk_len, int)
            and not isinstance(self.chunk_len, bool)
            and 1 <= self.chunk_len <= 32,
            "diffusion.chunk_len",
            self.chunk_len,
            "integer in [1, 32] (1 = no action chunks)",
        )
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


#: Allowed values of the string-valued switches (ExpoConfig validates against these).
SCORE_RULES: tuple[str, ...] = ("mean", "subset_min")
ENTROPY_BACKUPS: tuple[str, ...] = ("none", "paper", "softmax_entropy")
EVAL_SUBSETS: tuple[str, ...] = ("same", "independent")
TARGET_SAMPLERS: tuple[str, ...] = ("fast", "faithful")
TARGET_BASES: tuple[str, ...] = ("online", "ema")
TD_PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
BC_ROWS: tuple[str, ...] = ("all", "rewarded")
#: Fields added after configs were first hashed (pretrain cache names) and saved: `to_dict`
#: writes each only when it differs from its default, so older configs keep their JSON.
OMITTED_AT_DEFAULT: tuple[str, ...] = (
    "td_precision",
    "critic_precision",
    "backup_samples",
    "min_temperature",
    "editor_score",
    "n_step",
    "backup_edits",
    "bc_rows",
)


@dataclass(frozen=True)
class ExpoConfig:
    """Everything the agent needs. obs_dim/act_dim come from the task's ObsSpec/ActionSpec.

    The OTF switches (td.py and otf.py state the maths of each):

    act_score, target_score: how candidates are scored, by one function (`otf.score_candidates`)
      for acting (online critics) and for TD targets (target critics). "mean": the mean over all
      critics; "subset_min": the min over a random subset of `critic.num_min` critics (REDQ),
      drawn per decision when acting and per minibatch for targets (with num_min = num_critics
      it is the min over all critics and acting draws nothing). Default: acting by "mean", targets by
      "subset_min" (as before this switch existed). Why: the targets need the pessimism of the
      subset-min against the overestimation the editor exploits (docs/results.md); acting by the
      mean ranks candidates by the quantity the editor maximizes, and keeps the decision a pure
      function of (obs, noise), which the exported ONNX graph needs (a random subset would be a
      further graph input). Set both to one rule to study the unified form (`unified_scoring`).
      Measured (lift, cpu preset, 3 seeds, 100 episodes per point, docs/results.md): acting by
      the min of all critics as well was no better (mean success 0.54 / 0.71 / 0.63 vs 0.47 /
      0.75 / 0.65 at 2000 / 4000 / 6000 env steps), so the split stays.
    target_eval_subset: "same" scores the chosen next action a* with the subset that picked it
      (the maximum of noisy estimates is biased up); "independent" scores it with a second
      subset disjoint from the first (double-Q style). Needs target_score "subset_min" and
      2 * num_min <= num_critics.
    backup_samples: base samples per next state in the max-Q backup (0 = `num_samples`). The
      max over 2N noisy estimates is biased up by more the larger N (on lift, the chosen-action Q
      rose to 3x the Monte-Carlo return late in runs while max_q_backup=False, one sample, stayed
      below it: docs/results.md); 1 <= backup_samples < num_samples backs up the max over fewer
      candidates while acting still picks among all N (a larger value counts as N, so an acting
      copy of the config may lower num_samples freely). Ignored when max_q_backup is False.
    entropy_backup: "none" backs up Q(s', a*) of the argmax a*. "paper" (Eq. 4-5): a* is drawn
      from p = softmax(backup_temperature * Q) over the candidates and the backup is
      Q(s', a*) - alpha_b * log p(a*), alpha_b = `backup_alpha` or the learned temperature when
      None. "softmax_entropy" (the earlier form, kept as a variant): the argmax plus
      alpha * H(softmax(Q / alpha)). Saved configs with the old boolean load as "none"/
      "softmax_entropy" (`from_dict`).
    target_sampler, target_base: how target base samples are drawn. "fast": DDIM with
      `td_sampling_steps` steps (0 = full DDPM); "faithful": the acting sampler
      (`act_sampling_steps`), so targets and acting draw from the same distribution. Weights:
      "online" (the BC-trained base, published) or "ema" (the copy that acts). The acting
      policy and the editor's training samples always use the EMA copy with the acting sampler.
    td_precision: "float32" (exact) or "bfloat16": the TD targets (target base samples, their
      edits, the target critics' scores) run under torch.autocast with bfloat16 matmuls and come
      back as float32. Not exact (bfloat16 keeps ~3 significant digits: candidates and Q differ
      from float32 by ~1e-2, and near-ties can pick another candidate; tested within those
      bounds), but 2-4x faster matmuls on CPUs with AVX512-BF16 or AMX and on GPUs. Training
      steps stay float32 unless `critic_precision` says otherwise.
    critic_precision: "float32" or "bfloat16": the UTD critic steps' forward (and so backward)
      pass under bfloat16 autocast; the squared TD error, the gradients' accumulation into the
      float32 weights and Adam stay float32 (mixed precision without loss scaling, which
      bfloat16's float32 exponent range does not need). Not exact: Q is rounded to ~3
      significant digits inside the step.

    Temperature, and the cpu preset's departures from the published values: `init_temperature`
    1.0 and `temperature_lr` 3e-4 are published; the cpu preset uses 0.1 and 1e-3. With sparse
    0/1 rewards Q stays within [0, 1] and the candidates' Q differ by a fraction of that, while the editor's
    log-density is ~d * log(1 / beta) nats (13 nats for d = 7, beta 0.15): at alpha 1 the
    entropy term swamps the Q term and the editor only spreads its edits. Adam moves log alpha
    by about lr per step, so from alpha 1 it takes ~15k updates at 3e-4 to reach 0.01, longer
    than a cpu run; from 0.1 at 1e-3 about 2.3k. `reachable_target_entropy` caps the target
    below the editor's maximum entropy (see `effective_target_entropy`); without it the
    published -|A|/2 is unreachable for beta 0.15 (maximum 7 * log 0.3 = -8.4 < -3.5) and alpha
    grows without bound. With the cap (-11.9 there) alpha falls whenever the editor is more
    spread than half a nat per dimension below uniform; on lift it fell 0.039 -> 0.007 over
    4k-8k env steps (docs/results.md), so where alpha settles is set by that margin.
    `min_temperature` (default 0, none) is a floor under alpha: the temperature step is
    projected back onto it. On lift alpha never settles (the editor's entropy stays above the
    capped target, so alpha keeps falling: 0.066 / 0.025 / 0.009 / 0.004 at 2k / 4k / 6k / 8k
    env steps), and the late decline comes as it nears 0 and the editor becomes a pure
    maximizer of the critics; a floor keeps the editor as spread as it was at the floor's value.
    editor_score: what the editor maximizes, by the scoring rule of `otf.score_candidates` on the
      online critics. "mean" (default, the paper's): the critics' mean. "subset_min": the min over
      a random subset of `critic.num_min` critics drawn per editor step (with num_min =
      num_critics, the min of all, as the cpu preset's targets): a pessimistic objective that
      does not pay for edits into actions the critics disagree on. Why offered: on lift the
      6000-step EXPO policies acted better without their edits (docs/results.md, session 9).
    n_step: TD targets from n-step returns: y = sum_{j<k} gamma^j r_t+j + gamma^k m V(s_t+k),
      k = n_step or fewer where the episode ends (terminated or truncated) or the stored data
      does (`ReplayBuffer.n_step_rows`); the OTF backup V is unchanged. Default 1, the paper's.
      The k - 1 intermediate actions are the stored ones, not the OTF policy's: with mixed-
      quality demonstrations that biases the targets down, against the overestimation that
      grew late in every lift run (docs/results.md); and a reward reaches a state k times
      sooner through the bootstraps.
    backup_edits: False keeps the edits out of the TD backup: its max (or draw) is over the
      base samples only, while acting and the editor's training are unchanged. Why offered: on
      lift only the backup over base samples and their edits overestimated; without the editor
      (the max over base samples) Q stayed below the return (docs/results.md, session 7). The
      backup then values the best of N base samples at s', a lower bound of the acting policy.
    bc_rows: which rows of each online update's batch the base imitates. "all" (default, the
      paper's): every row, offline and online. "rewarded": only the rows whose episode earns a
      reward at that row or later (`Batch.rewarded`; with the 0/1 success reward, the rows of
      successful episodes, offline and online); an update whose batch holds none skips the base's
      step. Offline pretraining (`pretrain_step`) imitates every row either way. Why offered: on
      lift from mixed-quality demonstrations the base stays as good as its pretraining (0.29)
      through online training, and the critics' choice among its samples carries the gain
      (docs/results.md, session 9): imitating what succeeded lets the samples the critics choose
      among improve as the policy does.
    """

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
    init_temperature: float = 1.0  # alpha0 (see the class docstring for the cpu preset's 0.1)
    temperature_lr: float = 3e-4
    min_temperature: float = 0.0  # a floor under alpha (0 = none); see the class docstring
    editor_score: str = "mean"  # SCORE_RULES: what the editor maximizes (see the class docstring)
    n_step: int = 1  # TD targets from n-step returns of the stored episodes (1 = the paper's)
    target_entropy: float | None = None  # None -> -act_dim / 2 (published)
    offline_fraction: float = 0.5  # share of each batch drawn from the offline dataset
    # OTF scoring and backup (see the class docstring).
    act_score: str = "mean"  # SCORE_RULES
    target_score: str = "subset_min"  # SCORE_RULES
    target_eval_subset: str = "same"  # EVAL_SUBSETS
    entropy_backup: str = "none"  # ENTROPY_BACKUPS
    backup_temperature: float = 10.0  # beta_s of "paper": p = softmax(beta_s * Q); no published value
    backup_alpha: float | None = None  # alpha_b of "paper"; None = the learned temperature
    target_sampler: str = "fast"  # TARGET_SAMPLERS
    target_base: str = "online"  # TARGET_BASES
    # Fixes of the reference code's gaps (True = fixed; ExpoConfig.reference() sets them False).
    editor_on_base_samples: bool = True  # train the editor on fresh base samples, not buffer actions
    reachable_target_entropy: bool = True  # cap the target entropy below the editor's maximum
    bootstrap_truncated: bool = True  # time-limit ends bootstrap; only true terminations mask
    # Fast TD-backup path.
    batched_td: bool = True  # targets of all UTD minibatches of one env step in one batched call
    td_sampling_steps: int = 0  # DDIM steps of the "fast" target sampler; 0 = full DDPM (num_steps)
    act_sampling_steps: int = 0  # DDIM steps when acting; 0 = full DDPM (num_steps)
    td_chunk_rows: int = 1024  # rows per chunk of target sampling (cache-sized on CPU); 0 = no chunking
    td_precision: str = "float32"  # TD_PRECISIONS; "bfloat16": targets under autocast (see docstring)
    critic_precision: str = "float32"  # TD_PRECISIONS; "bfloat16": the critic steps' forward under autocast
    # Paper ablations (the defaults are EXPO; td.py states the maths of each).
    use_editor: bool = True  # False: OTF picks among the N base samples only; no editor/temperature steps
    max_q_backup: bool = True  # False: TD target from one sampled base action and its edit (no argmax)
    backup_edits: bool = True  # False: the backup's candidates are the base samples only (acting keeps edits)
    # Base samples per next state in the max-Q backup; 0 = num_samples (published: the backup
    # takes the max over the same N base + N edited candidates as acting). Fewer samples shrink
    # the maximization bias of that max (and the targets' cost); see the class docstring.
    backup_samples: int = 0
    bc_rows: str = "all"  # BC_ROWS: the rows the base imitates online (see the class docstring)

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
            isinstance(self.min_temperature, (int, float))
            and math.isfinite(self.min_temperature)
            and 0.0 <= self.min_temperature <= self.init_temperature,
            "min_temperature",
            self.min_temperature,
            f"finite, in [0, init_temperature={self.init_temperature}] (0 = no floor)",
        )
        _require(
            self.target_entropy is None or math.isfinite(self.target_entropy),
            "target_entropy",
            self.target_entropy,
            "None or a finite float",
        )
        _require(0 <= self.offline_fraction <= 1, "offline_fraction", self.offline_fraction, "[0, 1]")
        check_n_step(self.n_step)
        _require(
            isinstance(self.td_chunk_rows, int) and self.td_chunk_rows >= 0,
            "td_chunk_rows",
            self.td_chunk_rows,
            "integer >= 0 (0 = no chunking)",
        )
        _require(
            isinstance(self.backup_samples, int)
            and not isinstance(self.backup_samples, bool)
            and self.backup_samples >= 0,
            "backup_samples",
            self.backup_samples,
            "integer >= 0 (0 = num_samples; more than num_samples counts as num_samples)",
        )
        for n in ("use_editor", "max_q_backup", "backup_edits"):
            _require(isinstance(getattr(self, n), bool), n, getattr(self, n), "True or False")
        for n in ("td_sampling_steps", "act_sampling_steps"):
            v = getattr(self, n)
            _require(
                isinstance(v, int) and 0 <= v <= self.diffusion.num_steps,
                n,
                v,
                f"integer in [0, diffusion.num_steps={self.diffusion.num_steps}] (0 = full DDPM)",
            )
        self._check_otf_switches()

    def _check_otf_switches(self) -> None:
        _one_of("act_score", self.act_score, SCORE_RULES)
        _one_of("target_score", self.target_score, SCORE_RULES)
        _one_of("editor_score", self.editor_score, SCORE_RULES)
        _one_of("target_eval_subset", self.target_eval_subset, EVAL_SUBSETS)
        _one_of("entropy_backup", self.entropy_backup, ENTROPY_BACKUPS)
        _one_of("target_sampler", self.target_sampler, TARGET_SAMPLERS)
        _one_of("target_base", self.target_base, TARGET_BASES)
        _one_of("td_precision", self.td_precision, TD_PRECISIONS)
        _one_of("critic_precision", self.critic_precision, TD_PRECISIONS)
        _one_of("bc_rows", self.bc_rows, BC_ROWS)
        _positive_float("backup_temperature", self.backup_temperature)
        _require(
            self.backup_alpha is None
            or (
                isinstance(self.backup_alpha, (int, float))
                and not isinstance(self.backup_alpha, bool)
                and math.isfinite(self.backup_alpha)
                and self.backup_alpha >= 0
            ),
            "backup_alpha",
            self.backup_alpha,
            "None (the learned temperature) or a finite float >= 0",
        )
        _require(
            self.max_q_backup or self.entropy_backup == "none",
            "entropy_backup",
            self.entropy_backup,
            "'none' when max_q_backup=False (the entropy backups replace the max over candidates)",
        )
        if self.target_eval_subset == "independent":
            _require(
                self.target_score == "subset_min",
                "target_eval_subset",
                self.target_eval_subset,
                "'same' unless target_score='subset_min' (the mean uses every critic)",
            )
            _require(
                2 * self.critic.num_min <= self.critic.num_critics,
                "target_eval_subset",
                self.target_eval_subset,
                f"'same' unless 2 * critic.num_min <= critic.num_critics "
                f"({2 * self.critic.num_min} > {self.critic.num_critics})",
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

    def target_sampling_steps(self) -> int:
        """Denoising steps of the target sampler: `td_sampling_steps` ("fast") or the acting
        sampler's `act_sampling_steps` ("faithful"); 0 = full DDPM."""
        return self.td_sampling_steps if self.target_sampler == "fast" else self.act_sampling_steps

    def unified_scoring(self, rule: str) -> ExpoConfig:
        """This config with one scoring rule for acting and targets."""
        return self.replace(act_score=rule, target_score=rule)

    # --- serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON types. `diffusion.chunk_len` is written only when it is not
        1, so configs without action chunks serialize as before the field existed (their JSON,
        and the pretrain cache names hashed from it, stay the same); `from_dict` reads it back
        as 1. The fields of `OMITTED_AT_DEFAULT` likewise only when not at their defaults."""
        d = dataclasses.asdict(self)
        if self.diffusion.chunk_len == 1:
            del d["diffusion"]["chunk_len"]
        for f in dataclasses.fields(self):
            if f.name in OMITTED_AT_DEFAULT and getattr(self, f.name) == f.default:
                del d[f.name]  # likewise: configs without it serialize as before
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpoConfig:
        """Inverse of `to_dict`. Also reads configs saved by earlier versions (checkpoints and
        weights bundles store this JSON): fields added since take their defaults, and the old
        boolean `entropy_backup` maps to "none" (False) or "softmax_entropy" (True)."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ExpoConfig fields {unknown}; known: {sorted(known)}")
        if isinstance(data.get("entropy_backup"), bool):
            data["entropy_backup"] = "softmax_entropy" if data["entropy_backup"] else "none"
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
        """The public reference implementation's behaviour, gaps included (for ablations):
        besides the fixes switched off, it acts by the subset-min Q like its targets, without
        an entropy backup, with targets sampled by full DDPM of the online base weights."""
        base = dict(
            editor_on_base_samples=False,
            reachable_target_entropy=False,
            bootstrap_truncated=False,
            entropy_backup="none",
            act_score="subset_min",
            target_score="subset_min",
            target_eval_subset="same",
            target_sampler="fast",
            target_base="online",
            batched_td=False,
            td_sampling_steps=0,
            act_sampling_steps=0,
            td_chunk_rows=0,
        )
        base.update(changes)
        return cls(obs_dim=obs_dim, act_dim=act_dim, **base)
