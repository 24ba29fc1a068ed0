"""Algorithm variants for the training harness, and the harness defaults of each preset.

A preset (:mod:`expo_core.presets`) fixes network sizes and learner settings (an
:class:`ExpoConfig` for a given observation and action size); here are the harness defaults that
go with them (pretraining and warm-up steps):

``tiny``       smoke tests only: networks of a few dozen units, learns nothing useful.
``cpu``        small networks sized for the robomimic low-dim tasks on a 2-core CPU: 5-step
               diffusion, 2-step DDIM targets, a 5-critic ensemble (min over all 5), editor
               beta 0.15, batch 256, UTD 2.
``published``  ``ExpoConfig`` defaults, the paper's configuration (GPU work: UTD 20, T=10, ...).

Algorithm variants, all run by the same harness under the same budget, from the same
demonstrations and (all but rlpd) the same pretrained base:

``expo``                   EXPO as configured by the preset.
``bc``                     the pretrained diffusion base alone (imitation only, no RL).
``rlpd``                   Gaussian SAC with the preset's critic ensemble, 50/50 mixing and UTD
                           (see :mod:`expo_sim.train.rlpd`).
``expo-no-edit``           paper ablation: OTF over base samples only, no editor
                           (``use_editor=False``).
``expo-sarsa-backup``      paper ablation: max-Q OTF only for acting; the TD target uses one
                           sampled base action and its edit (``max_q_backup=False``).
``expo-faithful-targets``  TD-target base samples drawn as the acting ones are: the EMA copy with
                           the acting sampler (``target_sampler="faithful"``, ``target_base="ema"``)
                           instead of 2-step DDIM of the online base (issue 14, item 4).
``expo-paper-entropy``     the paper's entropy backup, Eq. 4-5 (``entropy_backup="paper"``: a*
                           drawn from softmax(backup_temperature * Q), backup Q* - alpha log p(a*)).
``expo-softmax-entropy``   the earlier entropy backup (argmax + alpha * H(softmax(Q / alpha))).
``expo-unified-scoring``   one scoring rule for acting and targets, the subset-min
                           (``unified_scoring("subset_min")``; ``expo`` acts by the mean).
``expo-double-q``          the chosen next action scored by a critic subset disjoint from the one
                           that chose it (``target_eval_subset="independent"``). That needs
                           2 * num_min <= num_critics, so a larger subset shrinks to
                           num_critics // 2 (2 of the cpu preset's 5, whose ``expo`` takes the min
                           of all 5; the published 2 of 10 stays).
``expo-bf16-targets``      the TD targets under bfloat16 autocast (``td_precision="bfloat16"``,
                           the learner bench's ``batched+ddim-2+bf16`` row, issue 15): measures
                           what it costs in success against ``expo`` on the same seeds.
``expo-ddim1-bf16-targets`` the learner bench's fastest CPU row (``batched+ddim-1+bf16``): target
                           base samples by one DDIM step, the targets under bfloat16 autocast.
``expo-ddim1-bf16-all``    the same and the critic steps in bfloat16 too (``critic_precision``;
                           the bench's ``batched+ddim-1+bf16-critic`` row).
``expo-alpha-floor``       a floor of 0.025 under the temperature (``min_temperature``): alpha's
                           value at 4000 env steps, where ``expo`` peaked on lift before alpha
                           fell towards 0 and success with it (what it does: docs/results.md).
``expo-backup-n2``         the max-Q backup over 2 base samples and their edits (4 candidates,
                           ``backup_samples=2``) instead of all N (acting keeps N): meant to
                           shrink the maximization bias, between ``expo`` and
                           ``expo-sarsa-backup`` (what it does: docs/results.md).
``expo-pessimistic-editor`` the editor maximizes the min of the critics it is scored by
                           (``editor_score="subset_min"``; the cpu preset's: all 5, as its
                           targets) instead of their mean: on lift the 6000-step ``expo``
                           policies acted better without their edits (docs/results.md).
``expo-n5``                TD targets from 5-step returns (``n_step=5``): the stored next 4
                           rewards, then the OTF backup at the state 5 steps on, discounted by
                           gamma^5; against the late overestimation of every lift run
                           (docs/results.md).
``expo-n5-utd4``           ``expo-n5`` with twice the preset's critic steps per env step (``utd=4``,
                           the cpu preset's 2 doubled; the paper's is 20).
``expo-base-backup``       the TD backup's max over the N base samples only (``backup_edits=False``);
                           acting and the editor unchanged: on lift only the backup over base
                           samples and their edits overestimated (docs/results.md).
``expo-rewarded-bc``       the base imitates, online, only the rows of episodes that earned the
                           reward (``bc_rows="rewarded"``: offline and online successes); on lift
                           the base otherwise stays at its pretrained success through training
                           and the critics' choice among its samples carries the gain
                           (docs/results.md, session 9).
``expo-n5-rewarded-bc``    ``expo-rewarded-bc`` with ``expo-n5``'s 5-step targets.
``expo-n5-rewarded-bc-no-edit`` ``expo-n5-rewarded-bc`` without the editor (``use_editor=False``,
                           as ``expo-no-edit``): OTF over the N base samples only. On lift the
                           8000-step ``expo-n5-rewarded-bc`` policies acted better with their
                           edits left out (docs/results.md, session 11).
``expo-n5-rewarded-bc-beta05`` ``expo-n5-rewarded-bc`` with edits bounded by 0.05 per action
                           component (``editor.beta``; the cpu preset's 0.15), the paper's
                           refinement end of its 0.05-0.7 range. On lift the editor of the
                           8000-step ``expo-n5-rewarded-bc`` runs stayed near uniform over its box
                           (entropy at its maximum, 7 log 0.3) and its edits cost success
                           (docs/results.md, session 12).
``expo-n5-rewarded-bc-beta05-min`` ``expo-n5-rewarded-bc-beta05`` acting by the subset-min its
                           targets use (``unified_scoring("subset_min")``, as
                           ``expo-unified-scoring``): one scoring rule. Acting by the min lifted
                           the 8000-step ``expo-n5-rewarded-bc`` policies (docs/results.md,
                           session 12).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from expo_core.config import ExpoConfig
from expo_core.presets import check_preset

ALGOS: tuple[str, ...] = (
    "expo",
    "bc",
    "rlpd",
    "expo-no-edit",
    "expo-sarsa-backup",
    "expo-faithful-targets",
    "expo-paper-entropy",
    "expo-softmax-entropy",
    "expo-unified-scoring",
    "expo-double-q",
    "expo-bf16-targets",
    "expo-ddim1-bf16-targets",
    "expo-ddim1-bf16-all",
    "expo-backup-n2",
    "expo-alpha-floor",
    "expo-pessimistic-editor",
    "expo-n5",
    "expo-n5-utd4",
    "expo-base-backup",
    "expo-rewarded-bc",
    "expo-n5-rewarded-bc",
    "expo-n5-rewarded-bc-no-edit",
    "expo-n5-rewarded-bc-beta05",
    "expo-n5-rewarded-bc-beta05-min",
)


@dataclass(frozen=True)
class HarnessDefaults:
    """Harness settings that belong with a preset (each can be overridden on the command line).

    pretrain_steps: offline imitation steps of the base before going online.
    warmup_steps: env steps collected before the first update (the online buffer fills first).
    """

    pretrain_steps: int
    warmup_steps: int


def check_algo(algo: str) -> str:
    if algo not in ALGOS:
        raise ValueError(f"unknown algo '{algo}'; available algorithms: {list(ALGOS)}")
    return algo


def harness_defaults(name: str) -> HarnessDefaults:
    check_preset(name)
    if name == "tiny":
        return HarnessDefaults(pretrain_steps=20, warmup_steps=16)
    if name == "cpu":
        return HarnessDefaults(pretrain_steps=20_000, warmup_steps=1_000)
    return HarnessDefaults(pretrain_steps=100_000, warmup_steps=5_000)


def algo_config(algo: str, cfg: ExpoConfig) -> ExpoConfig:
    """The variant's config derived from a preset's. ``rlpd`` keeps ``cfg``; its own config is
    derived from it by :meth:`expo_sim.train.rlpd.RLPDConfig.from_expo`."""
    check_algo(algo)
    if algo == "expo-no-edit":
        return cfg.replace(use_editor=False)
    if algo == "expo-sarsa-backup":
        return cfg.replace(max_q_backup=False, entropy_backup="none")
    if algo == "expo-faithful-targets":
        return cfg.replace(target_sampler="faithful", target_base="ema")
    if algo == "expo-paper-entropy":
        return cfg.replace(entropy_backup="paper")
    if algo == "expo-softmax-entropy":
        return cfg.replace(entropy_backup="softmax_entropy")
    if algo == "expo-unified-scoring":
        return cfg.unified_scoring("subset_min")
    if algo == "expo-bf16-targets":
        return cfg.replace(td_precision="bfloat16")
    if algo == "expo-alpha-floor":
        return cfg.replace(min_temperature=0.025)
    if algo == "expo-backup-n2":
        return cfg.replace(backup_samples=2)
    if algo == "expo-pessimistic-editor":
        return cfg.replace(editor_score="subset_min")
    if algo == "expo-n5":
        return cfg.replace(n_step=5)
    if algo == "expo-n5-utd4":
        return cfg.replace(n_step=5, utd=2 * cfg.utd)
    if algo == "expo-base-backup":
        return cfg.replace(backup_edits=False)
    if algo == "expo-rewarded-bc":
        return cfg.replace(bc_rows="rewarded")
    if algo == "expo-n5-rewarded-bc":
        return cfg.replace(n_step=5, bc_rows="rewarded")
    if algo == "expo-n5-rewarded-bc-no-edit":
        return cfg.replace(n_step=5, bc_rows="rewarded", use_editor=False)
    if algo == "expo-n5-rewarded-bc-beta05":
        parent = algo_config("expo-n5-rewarded-bc", cfg)
        return parent.replace(editor=replace(parent.editor, beta=0.05))
    if algo == "expo-n5-rewarded-bc-beta05-min":
        return algo_config("expo-n5-rewarded-bc-beta05", cfg).unified_scoring("subset_min")
    if algo == "expo-ddim1-bf16-targets":
        return cfg.replace(td_precision="bfloat16", td_sampling_steps=1)
    if algo == "expo-ddim1-bf16-all":
        return cfg.replace(td_precision="bfloat16", td_sampling_steps=1, critic_precision="bfloat16")
    if algo == "expo-double-q":
        half = max(1, min(cfg.critic.num_min, cfg.critic.num_critics // 2))
        return cfg.replace(
            critic=replace(cfg.critic, num_min=half),
            target_score="subset_min",
            target_eval_subset="independent",
        )
    return cfg


#: Config fields that change online learning only, never pretraining (imitation of the base).
ONLINE_ONLY_FIELDS: tuple[str, ...] = (
    "use_editor",
    "max_q_backup",
    "backup_samples",
    "entropy_backup",
    "backup_temperature",
    "backup_alpha",
    "act_score",
    "target_score",
    "target_eval_subset",
    "target_sampler",
    "target_base",
    "td_precision",
    "critic_precision",
    "min_temperature",
    "editor_score",
    "n_step",
    "backup_edits",
    "bc_rows",
)


def base_config(cfg: ExpoConfig) -> ExpoConfig:
    """``cfg`` with every online-only switch at its ExpoConfig default: none of them touches
    pretraining, so every EXPO variant (and ``bc``) of one preset shares one pretrained base.
    (``expo-double-q`` also changes the critics' subset size and ``expo-ddim1-bf16-targets`` the
    target sampler's step count; :func:`same_pretraining` ignores both.)"""
    defaults = ExpoConfig(obs_dim=cfg.obs_dim, act_dim=cfg.act_dim)
    return cfg.replace(**{name: getattr(defaults, name) for name in ONLINE_ONLY_FIELDS})


def same_pretraining(a: ExpoConfig, b: ExpoConfig) -> bool:
    """Whether a base pretrained with ``a`` can start a run of ``b``: equal up to the online-only
    switches, the critics' subset size, the editor's bound ``beta``, the target sampler's DDIM
    step count and the UTD (none of them shapes a weight or enters imitation; pretraining trains
    the base alone)."""

    def pretrained_part(c: ExpoConfig) -> ExpoConfig:
        c = base_config(c)
        return c.replace(
            critic=replace(c.critic, num_min=1),
            editor=replace(c.editor, beta=1.0),
            td_sampling_steps=1,
            utd=1,
        )

    return pretrained_part(a) == pretrained_part(b)
