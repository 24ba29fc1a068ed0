"""Named configurations of EXPO's networks and learner: ``tiny``, ``cpu`` and ``published``.

``tiny``       smoke tests only: networks of a few dozen units, learns nothing useful.
``cpu``        small networks sized for the robomimic low-dim tasks on a 2-core CPU: 5-step
               diffusion, 2-step DDIM targets, a 5-critic ensemble (min over all 5), editor
               beta 0.15, batch 256, UTD 2.
``published``  ``ExpoConfig`` defaults, the paper's configuration (GPU work: UTD 20, T=10, ...).

The training harness (``expo_sim.train``) and the ROS learner's tests read them from here; the
harness adds its own per-preset defaults (pretraining and warm-up steps).
"""

from __future__ import annotations

from .config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig

PRESETS: tuple[str, ...] = ("tiny", "cpu", "published")


def check_preset(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; available presets: {list(PRESETS)}")
    return name


def preset_config(name: str, obs_dim: int, act_dim: int) -> ExpoConfig:
    """The preset's :class:`ExpoConfig` for observations of ``obs_dim`` and actions of ``act_dim``."""
    check_preset(name)
    if name == "published":
        return ExpoConfig(obs_dim=obs_dim, act_dim=act_dim)
    if name == "tiny":
        return ExpoConfig(
            obs_dim=obs_dim,
            act_dim=act_dim,
            diffusion=DiffusionConfig(
                hidden_dim=32, num_blocks=1, block_dim=64, time_embed_dim=8, num_steps=3
            ),
            editor=EditorConfig(hidden_dims=(32,), beta=0.3),
            critic=CriticConfig(hidden_dims=(32, 32), num_critics=2, num_min=2),
            batch_size=32,
            utd=1,
            num_samples=2,
            td_chunk_rows=0,
        )
    # cpu: the sizes of expo_core's learning test, widened for the 19-D robomimic observation.
    return ExpoConfig(
        obs_dim=obs_dim,
        act_dim=act_dim,
        diffusion=DiffusionConfig(
            hidden_dim=128,
            num_blocks=2,
            block_dim=256,
            time_embed_dim=32,
            num_steps=5,
            ema_tau=0.005,
            lr=1e-3,
        ),
        # beta 0.15 and the min over all 5 critics: with beta 0.3 and a min of 2 the editor
        # exploited an overestimating critic on lift (mean Q 1.25 with 0/1 rewards) and success
        # collapsed; see docs/results.md.
        editor=EditorConfig(hidden_dims=(128, 128), beta=0.15, lr=3e-4),
        critic=CriticConfig(hidden_dims=(256, 256), num_critics=5, num_min=5, lr=3e-4),
        batch_size=256,
        utd=2,
        num_samples=8,
        init_temperature=0.1,
        temperature_lr=1e-3,
        batched_td=True,
        td_sampling_steps=2,
    )
