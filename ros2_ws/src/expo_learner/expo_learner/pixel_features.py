"""Pixel learner (mode a of docs/pixels.md): camera frames in, cached features in replay.

A learner started from a pixel checkpoint (:class:`expo_core.pixel_agent.PixelAgent` with a frozen
encoder) trains ExpoAgent on feature vectors ``z = concat(camera features, proprio)``, exactly as
the acting policy computes them. The frozen encoder is a fixed function of the frame, so every
frame is encoded once, when its transition arrives (or when a bag is reloaded), and replay holds
only ``z`` for obs and next obs: float32 ``obs_dim`` values each (144 with two cameras x 64 + 16
proprio), about 1.2 KB per transition instead of 84.7 KB of frames. The frames themselves stay in
the bag segments, as the uint8 ``sensor_msgs/Image`` messages the policy sent.

What a pixel Transition holds (the policy node fills it): ``obs``/``next_obs`` the spec's
proprioception (``spec.dim`` values, raw units), ``images``/``next_images`` one rgb8 frame per
camera of the spec, in the spec's camera order, of the checkpoint's image size.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from expo_core.pixel_agent import PixelAgent
from expo_core.pixel_pretrain import feature_transitions
from expo_core.robomimic_io import ImageTransitionArrays, load_robomimic_images
from expo_ros.transitions import TransitionData

log = logging.getLogger(__name__)

Row = tuple[TransitionData, str]


def image_array(msg: Any, size: int, what: str) -> np.ndarray:
    """One rgb8 ``sensor_msgs/Image`` (rclpy or rosbags message) -> (size, size, 3) uint8 view.
    ValueError naming ``what`` and the problem: encoding, size, row step or data length."""
    if msg.encoding != "rgb8":
        raise ValueError(f"{what}: encoding {msg.encoding!r}, want 'rgb8'")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if (h, w) != (size, size):
        raise ValueError(f"{what}: {h}x{w} image, want {size}x{size}")
    if step != 3 * w:
        raise ValueError(f"{what}: row step {step}, want {3 * w} (no padding)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != h * step:
        raise ValueError(f"{what}: {data.size} bytes of data, want {h * step}")
    return data.reshape(h, w, 3)


class PixelFeaturizer:
    """Turns pixel transitions into feature transitions with ``agent``'s frozen encoder.

    ``agent.is_frozen`` is required (the features must not change once cached).
    """

    def __init__(self, agent: PixelAgent, chunk_size: int = 64) -> None:
        if not agent.is_frozen:
            raise ValueError(
                "the pixel checkpoint's encoder is still training: the learner caches features and "
                "needs a frozen encoder (pretrain_pixels freezes it; mode a of docs/pixels.md)"
            )
        self.agent, self.chunk_size = agent, int(chunk_size)
        self.cameras: tuple[str, ...] = agent.cameras
        self.size = int(agent.encoder_cfg.image_size)
        self.proprio_dim = agent.obs_spec.dim
        self.obs_dim = agent.cfg.obs_dim
        self.frames_encoded = 0

    def frames(self, t: TransitionData) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The obs and next-obs frames of ``t`` by camera; ValueError on anything missing or malformed."""
        if t.obs.shape != (self.proprio_dim,) or t.next_obs.shape != (self.proprio_dim,):
            raise ValueError(
                f"proprio dims obs {t.obs.shape[0]} next_obs {t.next_obs.shape[0]} (want {self.proprio_dim})"
            )
        out = []
        for field, msgs in (("images", t.images), ("next_images", t.next_images)):
            if len(msgs) != len(self.cameras):
                raise ValueError(f"{len(msgs)} {field} (want {len(self.cameras)}: {', '.join(self.cameras)})")
            out.append(
                {
                    c: image_array(m, self.size, f"{field} {c}")
                    for c, m in zip(self.cameras, msgs, strict=True)
                }
            )
        return out[0], out[1]

    @torch.no_grad()
    def encode(self, images: dict[str, np.ndarray], proprio: np.ndarray) -> np.ndarray:
        """{camera: (B, H, W, 3) uint8}, proprio (B, P) -> z (B, obs_dim) float32 (no shift)."""
        z = self.agent.features(images, proprio).cpu().numpy().astype(np.float32)
        self.frames_encoded += len(proprio) * len(self.cameras)
        return z

    def featurize(self, t: TransitionData) -> TransitionData:
        """One transition: obs/next_obs become z (both encoded in one batch of 2), frames dropped.
        ValueError (see :meth:`frames`) when it is not a well-formed pixel transition."""
        now, nxt = self.frames(t)
        images = {c: np.stack([now[c], nxt[c]]) for c in self.cameras}
        z = self.encode(images, np.stack([t.obs, t.next_obs]).astype(np.float32))
        return dataclasses.replace(t, obs=z[0], next_obs=z[1], images=(), next_images=())

    def featurize_rows(self, rows: Sequence[Row]) -> tuple[list[Row], Counter[str]]:
        """Many transitions (a reloaded segment), encoded ``chunk_size`` at a time; malformed
        ones are left out and counted by reason."""
        ok: list[tuple[TransitionData, str, dict, dict]] = []
        rejected: Counter[str] = Counter()
        for t, source in rows:
            try:
                ok.append((t, source, *self.frames(t)))
            except ValueError as e:
                rejected[str(e)] += 1
        out: list[Row] = []
        for i in range(0, len(ok), self.chunk_size):
            part = ok[i : i + self.chunk_size]
            n = len(part)
            images = {c: np.stack([p[2][c] for p in part] + [p[3][c] for p in part]) for c in self.cameras}
            proprio = np.stack([p[0].obs for p in part] + [p[0].next_obs for p in part]).astype(np.float32)
            z = self.encode(images, proprio)
            for j, (t, source, _, _) in enumerate(part):
                feat = dataclasses.replace(t, obs=z[j], next_obs=z[n + j], images=(), next_images=())
                out.append((feat, source))
        if rejected:
            log.warning("pixel transitions left out: %s", dict(rejected))
        return out, rejected


def offline_features(dataset: str, agent: PixelAgent) -> tuple[dict[str, np.ndarray], ImageTransitionArrays]:
    """An image dataset (robomimic layout, ``obs/<camera>_image``) as cached feature
    transitions: every frame encoded once (:func:`expo_core.pixel_pretrain.feature_transitions`);
    returns the six replay fields and the loaded arrays (demo names, counts)."""
    data = load_robomimic_images(dataset, agent.obs_spec)
    return feature_transitions(agent.encoder, data), data
