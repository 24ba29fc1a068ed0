"""Shared fixtures: a tiny EXPO policy for lift (obs 19, act 7) saved as a checkpoint and bundles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import save_checkpoint
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig
from expo_core.spec import task_obs_spec

LIFT_OBS_DIM = task_obs_spec("lift").dim  # 19
ACT_DIM = 7


def tiny_config(
    critic_hidden: tuple[int, ...] = (32, 32), obs_dim: int = LIFT_OBS_DIM, **overrides: object
) -> ExpoConfig:
    """Small networks: a decision takes about a millisecond on one core; ``overrides``: other
    top-level ExpoConfig fields (e.g. ``act_sampling_steps``)."""
    cfg = ExpoConfig(
        obs_dim=obs_dim,
        act_dim=ACT_DIM,
        diffusion=DiffusionConfig(hidden_dim=32, num_blocks=1, block_dim=64, time_embed_dim=8, num_steps=3),
        editor=EditorConfig(hidden_dims=(32,), beta=0.2),
        critic=CriticConfig(hidden_dims=critic_hidden, num_critics=2, num_min=2),
        num_samples=4,
    )
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def make_agent():
    """Factory: make_agent(seed=0, critic_hidden=(32, 32), obs_dim=19, **overrides) -> a tiny
    ExpoAgent (``tiny_config``)."""

    def make(seed: int = 0, **cfg) -> ExpoAgent:
        return ExpoAgent(tiny_config(**cfg), seed=seed)

    return make


@pytest.fixture
def agent(make_agent) -> ExpoAgent:
    return make_agent()


@pytest.fixture
def checkpoint(tmp_path: Path, agent: ExpoAgent) -> Path:
    """A full save_checkpoint of the tiny agent; returns the .safetensors path."""
    save_checkpoint(tmp_path / "ckpt", agent)
    return tmp_path / "ckpt.safetensors"
