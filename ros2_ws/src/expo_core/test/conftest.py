import pytest
import torch
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def tiny_config(**changes) -> ExpoConfig:
    """Small networks so unit tests of the maths run in milliseconds."""
    base = dict(
        obs_dim=4,
        act_dim=3,
        diffusion=DiffusionConfig(hidden_dim=32, num_blocks=1, block_dim=64, time_embed_dim=8, num_steps=5),
        editor=EditorConfig(hidden_dims=(32,), beta=0.2),
        critic=CriticConfig(hidden_dims=(32, 32), num_critics=4, num_min=2),
        batch_size=16,
        utd=3,
        num_samples=4,
    )
    base.update(changes)
    return ExpoConfig(**base)


@pytest.fixture
def tiny_cfg() -> ExpoConfig:
    return tiny_config()


@pytest.fixture
def make_cfg():
    """Factory: make_cfg(**changes) -> a tiny ExpoConfig with those changes."""
    return tiny_config
