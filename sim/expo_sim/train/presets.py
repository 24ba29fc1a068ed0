"""Algorithm variants for the training harness, and the harness defaults of each preset.

A preset (:mod:`expo_core.presets`) fixes network sizes and learner settings (an
:class:`ExpoConfig` for a given observation and action size); here are the harness defaults that
go with them (pretraining and warm-up steps):

``tiny``       smoke tests only: networks of a few dozen units, learns nothing useful.
``cpu``        small networks sized for the robomimic low-dim tasks on a 2-core CPU: 5-step
               diffusion, 2-step DDIM targets, a 5-critic ensemble (min over all 5), editor
               beta 0.15, batch 256, UTD 2.
``published``  ``ExpoConfig`` defaults, the paper's configuration (GPU work: UTD 20, T=10, ...).

Algorithm variants, all run by the same harness under the same budget:

``expo``               EXPO as configured by the preset.
``bc``                 the pretrained diffusion base alone (imitation only, no RL).
``rlpd``               Gaussian SAC with the preset's critic ensemble, 50/50 mixing and UTD
                       (see :mod:`expo_sim.train.rlpd`).
``expo-no-edit``       OTF over base samples only: no editor (``ExpoConfig.use_editor=False``).
``expo-sarsa-backup``  max-Q OTF only for acting; the TD target uses one sampled base action and
                       its edit (``ExpoConfig.max_q_backup=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

from expo_core.config import ExpoConfig
from expo_core.presets import check_preset

ALGOS: tuple[str, ...] = ("expo", "bc", "rlpd", "expo-no-edit", "expo-sarsa-backup")


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
        return cfg.replace(max_q_backup=False)
    return cfg


def base_config(cfg: ExpoConfig) -> ExpoConfig:
    """``cfg`` with the ablation switches at their EXPO defaults: they do not touch pretraining,
    so every EXPO variant (and ``bc``) of one preset shares one pretrained base."""
    return cfg.replace(use_editor=True, max_q_backup=True)
