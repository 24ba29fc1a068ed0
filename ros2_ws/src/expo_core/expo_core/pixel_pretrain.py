"""Imitation pretraining of a pixel policy, and replay of cached features (modes (a) and (b)).

Two phases (:func:`pretrain_pixels`):

1. ``encoder_steps`` end-to-end steps: minibatches of uint8 frames (random-shifted, DrQ) and
   proprio from an image dataset; the base's denoising loss trains the base and the encoder
   (mode (b): the encoder's head; its ResNet trunk stays frozen) (:meth:`PixelAgent.pretrain_step`).
2. The encoder is frozen, every frame of the dataset is encoded once
   (:func:`feature_transitions`) and ``base_steps`` more imitation steps train the base alone
   on those cached features, at the cost of state-based pretraining. They let the acting EMA
   base settle on the final, frozen encoder (during phase 1 it averaged base weights that
   went with earlier encoders).

After pretraining, online RL uses the same feature cache: an offline :class:`ReplayBuffer` of
:func:`feature_transitions`, and online transitions encoded once when they arrive.

Memory (two 84x84 cameras, feature_dim 64, 16-D proprio): z has 2 * 64 + 16 = 144 floats; a
feature transition (obs and next obs z, action, reward, flags) is 2 * 144 * 4 + 28 + 12 = 1,192 B,
against 42.5 KB for its frames (``ImageTransitionArrays``); 100k transitions: 0.12 GB.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .encoder import ObservationEncoder
from .pixel_agent import PixelAgent, proprio_stats
from .replay import ReplayBuffer
from .robomimic_io import ImageTransitionArrays
from .spec import IMAGE_SUFFIX

log = logging.getLogger(__name__)


class ImageBatch(NamedTuple):
    """images {camera: uint8 (B, H, W, 3)}, proprio (B, P) float32, action (B, A) float32."""

    images: dict[str, torch.Tensor]
    proprio: torch.Tensor
    action: torch.Tensor


class ImageBatchSampler:
    """Uniform minibatches of (obs frames, proprio, action) from an image dataset, drawn with a
    caller-owned torch.Generator (frames gathered by index; nothing copied up front)."""

    def __init__(self, data: ImageTransitionArrays, cameras: tuple[str, ...]) -> None:
        missing = [c for c in cameras if f"{c}{IMAGE_SUFFIX}" not in data.frames]
        if missing:
            raise KeyError(f"dataset has no frames of cameras {missing}; has {sorted(data.frames)}")
        if len(data) == 0:
            raise ValueError("image dataset is empty")
        self.data, self.cameras = data, tuple(cameras)

    def sample(self, batch_size: int, generator: torch.Generator) -> ImageBatch:
        idx = torch.randint(0, len(self.data), (batch_size,), generator=generator).numpy()
        frame = self.data.obs_frame[idx]
        images = {c: torch.from_numpy(self.data.frames[f"{c}{IMAGE_SUFFIX}"][frame]) for c in self.cameras}
        low = self.data.low_dim
        return ImageBatch(images, torch.from_numpy(low.obs[idx]), torch.from_numpy(low.action[idx]))


def frame_features(
    encoder: ObservationEncoder, data: ImageTransitionArrays, chunk_size: int = 256
) -> np.ndarray:
    """Camera features of every stored frame, once: (F, n_cameras * feature_dim) float32, camera
    blocks in the encoder's order. The encoder must be frozen."""
    frames = {c: data.frames[f"{c}{IMAGE_SUFFIX}"] for c in encoder.camera_names}
    feats = encoder.cache_features(frames, chunk_size=chunk_size)
    return torch.cat([feats[c] for c in encoder.camera_names], dim=-1).numpy()


def feature_transitions(
    encoder: ObservationEncoder, data: ImageTransitionArrays, chunk_size: int = 256
) -> dict[str, np.ndarray]:
    """The dataset's transitions with obs = z = concat(camera features, proprio): the six replay
    fields for ``ReplayBuffer.from_arrays``. Each frame is encoded once (:func:`frame_features`);
    obs and next obs pick their rows by ``obs_frame`` / ``next_obs_frame``."""
    feats = frame_features(encoder, data, chunk_size)
    low = data.low_dim
    out = low.transitions()
    out["obs"] = np.concatenate([feats[data.obs_frame], low.obs], axis=1)
    out["next_obs"] = np.concatenate([feats[data.next_obs_frame], low.next_obs], axis=1)
    return out


@dataclass(frozen=True)
class PixelPretrainResult:
    """What :func:`pretrain_pixels` did: losses at the end of each phase (mean of the last 100
    steps), seconds of phase 1, of encoding the dataset once and of phase 2, frames encoded."""

    encoder_steps: int
    base_steps: int
    encoder_bc_loss: float
    base_bc_loss: float
    encoder_s: float
    cache_s: float
    base_s: float
    frames_encoded: int


def pretrain_pixels(
    agent: PixelAgent,
    data: ImageTransitionArrays,
    encoder_steps: int,
    base_steps: int,
    image_batch_size: int,
    seed: int = 0,
    progress: Callable[[str, int, float], None] | None = None,
) -> tuple[PixelPretrainResult, ReplayBuffer]:
    """Phase 1 (encoder + base, ``encoder_steps`` steps of ``image_batch_size`` random-shifted
    frames), freeze, encode the dataset once, phase 2 (base alone, ``base_steps`` steps of
    ``agent.cfg.batch_size`` cached features). Sets the proprio normalization from ``data``
    first. Returns the result and the offline feature replay (for online RL).
    ``progress(phase, step, loss)`` is called every step."""
    for name, v in (("encoder_steps", encoder_steps), ("base_steps", base_steps)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}={v!r} is invalid; allowed: integer >= 0")
    if not isinstance(image_batch_size, int) or image_batch_size < 1:
        raise ValueError(f"image_batch_size={image_batch_size!r} is invalid; allowed: integer >= 1")
    agent.set_proprio_normalization(*proprio_stats(data.low_dim.obs))
    gen = torch.Generator().manual_seed(seed)
    sampler = ImageBatchSampler(data, agent.cameras)
    losses: list[float] = []
    t0 = time.perf_counter()
    for i in range(encoder_steps if not agent.is_frozen else 0):
        b = sampler.sample(image_batch_size, gen)
        losses.append(agent.pretrain_step(b.images, b.proprio, b.action, gen)["bc_loss"])
        if progress is not None:
            progress("encoder", i, losses[-1])
    enc_loss = float(np.mean(losses[-100:])) if losses else float("nan")
    t1 = time.perf_counter()
    agent.freeze_encoder()
    offline = ReplayBuffer.from_arrays(feature_transitions(agent.encoder, data))
    t2 = time.perf_counter()
    losses = []
    for i in range(base_steps):
        losses.append(agent.agent.pretrain_step(offline.sample(agent.cfg.batch_size, gen))["bc_loss"])
        if progress is not None:
            progress("base", i, losses[-1])
    t3 = time.perf_counter()
    frames = next(iter(data.frames.values())).shape[0] * len(agent.cameras)
    result = PixelPretrainResult(
        encoder_steps=encoder_steps,
        base_steps=base_steps,
        encoder_bc_loss=enc_loss,
        base_bc_loss=float(np.mean(losses[-100:])) if losses else float("nan"),
        encoder_s=t1 - t0,
        cache_s=t2 - t1,
        base_s=t3 - t2,
        frames_encoded=frames,
    )
    log.info("pixel pretraining: %s", result)
    return result, offline
