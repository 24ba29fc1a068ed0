"""The pixel policies' observations: camera frames by name, and the packed form the rest of the
stack passes (the sim env's Dict observation, the inference backends' ``decide`` input):
``{"low_dim": proprio, "<camera>_image": uint8 (H, W, 3) frame, ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .spec import IMAGE_SUFFIX, LOW_DIM

#: The packed observation's low-dim entry (as the sim env's Dict observation names it).
LOW_DIM_KEY = LOW_DIM


def _as_frames(value: Any, name: str) -> torch.Tensor:
    t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
    if t.dtype != torch.uint8:
        raise TypeError(f"camera '{name}' frames must be uint8 (H, W, 3), got {t.dtype}")
    return t


def camera_frames(
    images: Mapping[str, Any], cameras: tuple[str, ...], device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """``images`` keyed by camera name or by robomimic key ``<camera>_image`` -> {camera: uint8
    tensor} in ``cameras`` order (numpy or torch, (H, W, 3) or (B, H, W, 3), as given).
    KeyError names a missing camera."""
    out = {}
    for cam in cameras:
        key = cam if cam in images else f"{cam}{IMAGE_SUFFIX}"
        if key not in images:
            raise KeyError(
                f"camera '{cam}' missing (as '{cam}' or '{cam}{IMAGE_SUFFIX}'); have {sorted(images)}"
            )
        out[cam] = _as_frames(images[key], cam).to(device)
    return out


def unpack_observation(obs: Mapping[str, Any], cameras: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    """The packed pixel observation ``{"low_dim": proprio, "<camera>_image": frame, ...}`` (the sim
    env's, and what the inference backends' ``decide`` takes) -> (images by camera, proprio)."""
    if not isinstance(obs, Mapping):
        raise TypeError(
            f"a pixel policy takes {{'{LOW_DIM_KEY}': proprio, '<camera>{IMAGE_SUFFIX}': uint8 frame, ...}}, "
            f"got {type(obs).__name__}"
        )
    if LOW_DIM_KEY not in obs:
        raise KeyError(
            f"pixel observation has no '{LOW_DIM_KEY}' entry (the proprioception); have {sorted(obs)}"
        )
    images = {}
    for cam in cameras:
        key = f"{cam}{IMAGE_SUFFIX}"
        if key not in obs:
            raise KeyError(f"pixel observation has no '{key}' entry; have {sorted(obs)}")
        images[cam] = obs[key]
    return images, obs[LOW_DIM_KEY]


def pack_observation(images: Mapping[str, Any], proprio: Any) -> dict[str, Any]:
    """Inverse of :func:`unpack_observation`: {camera: frame} + proprio -> the packed dict."""
    out: dict[str, Any] = {LOW_DIM_KEY: proprio}
    for cam, frame in images.items():
        out[cam if cam.endswith(IMAGE_SUFFIX) else f"{cam}{IMAGE_SUFFIX}"] = frame
    return out
