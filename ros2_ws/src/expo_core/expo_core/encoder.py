"""Image encoders: uint8 camera frames (+ proprioception) -> one feature vector for the agent.

Layout: frames are channels-last uint8 ``(..., H, W, 3)``, RGB, exactly as robomimic stores
``obs/<camera>_image`` ((T, H, W, 3) uint8) and as a ``sensor_msgs/Image`` rgb8 buffer reshapes,
so datasets, replay and the ROS node hand frames over without a transpose; the encoder permutes
to (B, 3, H, W) float itself. Any leading dims are allowed (flattened and restored).

Per camera (:class:`CameraEncoder`): float = uint8 / 255, normalized, then a trunk
(``backbone="drq"``: DrQ-v2's 3x3 conv stack, 32 channels, first stride 2; ``"resnet18"``: a
frozen ResNet-18 from a local weights file) and a head (``kind="conv"``: flatten -> Linear ->
LayerNorm -> tanh as DrQ / SAC-AE; ``"spatial_softmax"``: 1x1 conv to K keypoint maps ->
spatial softmax -> (x, y) in [-1, 1] -> Linear, as robomimic).

Augmentation (DrQ random shift) runs only when the caller passes a ``torch.Generator`` (the
training path); acting calls ``encoder(frames)`` and is never augmented.

Sharing in an actor-critic (SAC / DrQ convention): the critic loss trains the encoder; the
editor and the diffusion base consume :attr:`EncodedObs.detached` features, so their losses do
not move it. See docs/image_encoder.md for the CPU modes (pretrain + freeze + cache, or frozen
ResNet-18 weights) and the measured cost.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from expo_core.resnet import ResNet18, load_state_dict_file

KINDS = ("conv", "spatial_softmax")
BACKBONES = ("drq", "resnet18")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def drq_output_size(image_size: int, num_layers: int) -> int:
    """Side of the DrQ trunk's feature map: a stride-2 3x3 conv, then (num_layers - 1) 3x3 convs."""
    return (image_size - 3) // 2 + 1 - 2 * (num_layers - 1)


@dataclass(frozen=True)
class EncoderConfig:
    """Image encoder of every camera; bad values raise ValueError naming the field."""

    camera_names: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")  # robomimic keys minus "_image"
    image_size: int = 84  # frames are square image_size x image_size
    kind: str = "conv"  # head: "conv" (flatten, Linear, LayerNorm, tanh) | "spatial_softmax"
    backbone: str = "drq"  # trunk: "drq" (trained conv stack) | "resnet18" (needs weights_path)
    feature_dim: int = 64  # features per camera
    num_filters: int = 32  # drq: channels of every conv
    num_layers: int = 4  # drq: number of 3x3 convs
    num_keypoints: int = 32  # spatial_softmax: K keypoints -> 2K coordinates
    shift_pad: int = 4  # random shift: replicate-pad by this many pixels, crop back (0 disables)
    share_weights: bool = False  # one encoder for all cameras instead of one per camera
    frozen: bool = False  # the whole encoder frozen from the start (features may be cached)
    weights_path: str | None = None  # local trunk state_dict; the loaded trunk is always frozen

    def __post_init__(self) -> None:
        names = self.camera_names
        _require(
            isinstance(names, tuple) and len(names) >= 1 and all(isinstance(n, str) for n in names),
            "encoder.camera_names",
            names,
            "non-empty tuple of str",
        )
        for n in names:
            _require(
                _NAME.fullmatch(n) is not None, "encoder.camera_names", names, "identifiers [A-Za-z0-9_]"
            )
        _require(len(set(names)) == len(names), "encoder.camera_names", names, "unique names")
        _require(
            _is_int(self.image_size) and self.image_size >= 16, "encoder.image_size", self.image_size, ">= 16"
        )
        _require(self.kind in KINDS, "encoder.kind", self.kind, f"one of {KINDS}")
        _require(self.backbone in BACKBONES, "encoder.backbone", self.backbone, f"one of {BACKBONES}")
        for f in ("feature_dim", "num_filters", "num_layers", "num_keypoints"):
            v = getattr(self, f)
            _require(_is_int(v) and v >= 1, f"encoder.{f}", v, "integer >= 1")
        if self.backbone == "drq":
            side = drq_output_size(self.image_size, self.num_layers)
            _require(
                side >= 1, "encoder.image_size", self.image_size, f"large enough for {self.num_layers} convs"
            )
        else:
            _require(self.image_size >= 32, "encoder.image_size", self.image_size, ">= 32 for resnet18")
            _require(
                self.weights_path is not None,
                "encoder.weights_path",
                self.weights_path,
                "a local file for backbone='resnet18' (a frozen random ResNet is no encoder)",
            )
        pad = self.shift_pad
        _require(
            _is_int(pad) and 0 <= pad <= self.image_size // 4, "encoder.shift_pad", pad, "0..image_size // 4"
        )
        for f in ("share_weights", "frozen"):
            _require(isinstance(getattr(self, f), bool), f"encoder.{f}", getattr(self, f), "bool")
        wp = self.weights_path
        if isinstance(wp, os.PathLike):
            wp = os.fspath(wp)
            object.__setattr__(self, "weights_path", wp)
        _require(
            wp is None or (isinstance(wp, str) and wp != ""), "encoder.weights_path", wp, "None or a path"
        )
        _require(
            wp is None or "://" not in wp, "encoder.weights_path", wp, "a local file (no URLs, no downloads)"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EncoderConfig:
        d = dict(d)
        if isinstance(d.get("camera_names"), list):
            d["camera_names"] = tuple(d["camera_names"])
        return cls(**d)


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """DrQ random shift of channels-last frames ``(B, H, W, C)`` (any dtype, uint8 included).

    Each frame is replicate-padded by ``pad`` and cropped back to H x W at an offset drawn
    uniformly from {0..2 pad}^2 with ``generator``. Implemented as a gather with clamped indices
    (clamping is exactly replicate padding), so it is an integer shift with no interpolation,
    like DrQ-v2's grid_sample at pixel centres, and needs no padded copy.
    """
    b, h, w = images.shape[:3]
    shifts = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=generator.device)
    shifts = shifts.to(images.device) - pad
    rows = (torch.arange(h, device=images.device) + shifts[:, :1]).clamp_(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=images.device) + shifts[:, 1:]).clamp_(0, w - 1)  # (B, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


class SpatialSoftmax(nn.Module):
    """(B, K, H, W) maps -> (B, K, 2): per channel the softmax-weighted mean pixel position (x, y),
    x along the width (left -1, right +1), y along the height (top -1, bottom +1)."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("pos", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1), persistent=False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax(maps.flatten(2), dim=-1)  # (B, K, H*W)
        return attn @ self.pos


class DrQTrunk(nn.Module):
    """DrQ-v2 conv stack: Conv(3->F, 3x3, stride 2), ReLU, then (L-1) x [Conv(F->F, 3x3), ReLU]."""

    def __init__(self, num_filters: int = 32, num_layers: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, num_filters, 3, stride=2), nn.ReLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(num_filters, num_filters, 3, stride=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.out_channels = num_filters
        self.num_layers = num_layers
        for m in self.convs:
            if isinstance(m, nn.Conv2d):  # DrQ-v2 init: orthogonal with ReLU gain, zero bias
                nn.init.orthogonal_(m.weight, nn.init.calculate_gain("relu"))
                nn.init.zeros_(m.bias)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return (
            self.out_channels,
            drq_output_size(height, self.num_layers),
            drq_output_size(width, self.num_layers),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class CameraEncoder(nn.Module):
    """One camera: uint8 ``(..., S, S, 3)`` -> float32 ``(..., feature_dim)``.

    ``forward(frames, generator)`` random-shifts the frames iff a generator is given (training).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.image_size = config.image_size
        self.shift_pad = config.shift_pad
        self.feature_dim = config.feature_dim
        self.kind = config.kind
        if config.backbone == "drq":
            self.trunk: DrQTrunk | ResNet18 = DrQTrunk(config.num_filters, config.num_layers)
            mean, std = (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)  # DrQ-v2: x / 255 - 0.5
        else:
            self.trunk = ResNet18()
            mean, std = _IMAGENET_MEAN, _IMAGENET_STD  # what ImageNet weights expect
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        c, h, w = self.trunk.output_shape(config.image_size, config.image_size)
        if config.kind == "conv":
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(c * h * w, config.feature_dim),
                nn.LayerNorm(config.feature_dim),
                nn.Tanh(),
            )
        else:
            self.keypoint_proj = nn.Conv2d(c, config.num_keypoints, kernel_size=1)
            self.spatial_softmax = SpatialSoftmax(h, w)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * config.num_keypoints, config.feature_dim))
        self._trunk_frozen = False
        self._frozen = False
        if config.weights_path is not None:
            load_state_dict_file(self.trunk, config.weights_path)
            self.trunk.requires_grad_(False)
            self._trunk_frozen = True
            self.trunk.eval()
        if config.frozen:
            self.freeze()

    # -- frozen state ---------------------------------------------------------------------------
    @property
    def is_frozen(self) -> bool:
        """True when no parameter trains: features are a fixed function of the frame (cacheable)."""
        return self._frozen

    def freeze(self) -> CameraEncoder:
        """Stop all training of this encoder (mode (a): after imitation pretraining). Stays in eval
        mode (BatchNorm statistics fixed) even when a parent module calls ``.train()``."""
        self.requires_grad_(False)
        self._frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> CameraEncoder:
        super().train(mode and not self._frozen)
        if self._trunk_frozen:
            self.trunk.eval()
        return self

    # -- forward --------------------------------------------------------------------------------
    def _check(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8:
            raise TypeError(
                f"camera frames must be a uint8 tensor, got {getattr(frames, 'dtype', type(frames))}"
            )
        s = self.image_size
        if frames.dim() < 4 or tuple(frames.shape[-3:]) != (s, s, 3):
            raise ValueError(
                f"camera frames must have shape (..., {s}, {s}, 3) uint8 RGB, got {tuple(frames.shape)}"
            )
        return frames

    def feature_maps(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, S, S, 3) -> trunk feature maps (B, C, h, w)."""
        if generator is not None and self.shift_pad > 0:
            frames = random_shift(frames, self.shift_pad, generator)
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.pixel_mean) / self.pixel_std
        return self.trunk.forward_features(x)

    def keypoints(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """spatial_softmax only: uint8 (..., S, S, 3) -> (..., K, 2) keypoints (x, y) in [-1, 1]."""
        if self.kind != "spatial_softmax":
            raise ValueError(f"keypoints need kind='spatial_softmax', this encoder has kind={self.kind!r}")
        frames = self._check(frames)
        lead = frames.shape[:-3]
        maps = self.feature_maps(frames.reshape(-1, *frames.shape[-3:]), generator)
        kp = self.spatial_softmax(self.keypoint_proj(maps))
        return kp.reshape(*lead, *kp.shape[1:])

    def forward(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (..., S, S, 3) -> float32 (..., feature_dim); random shift iff ``generator``."""
        frames = self._check(frames)
        lead = frames.shape[:-3]
        if self.kind == "spatial_softmax":
            out = self.head(self.keypoints(frames.reshape(-1, *frames.shape[-3:]), generator))
        else:
            out = self.head(self.feature_maps(frames.reshape(-1, *frames.shape[-3:]), generator))
        return out.reshape(*lead, self.feature_dim)


class EncodedObs(NamedTuple):
    """One encoding, two views: ``with_grad`` for the critic loss (trains the encoder),
    ``detached`` for the editor and the diffusion base (their losses do not reach the encoder)."""

    with_grad: torch.Tensor
    detached: torch.Tensor


class ObservationEncoder(nn.Module):
    """All cameras + proprioception -> ``(..., output_dim)``.

    Output = concat(features of ``camera_names[0]``, ..., of ``camera_names[-1]``, proprio), each
    camera ``feature_dim`` wide; proprio is passed through as given (the agent normalizes it).
    """

    def __init__(self, config: EncoderConfig, proprio_dim: int) -> None:
        super().__init__()
        _require(_is_int(proprio_dim) and proprio_dim >= 0, "proprio_dim", proprio_dim, "integer >= 0")
        self.config = config
        self.proprio_dim = proprio_dim
        self.camera_names = config.camera_names
        if config.share_weights:
            self.shared: CameraEncoder | None = CameraEncoder(config)
            self.cameras: nn.ModuleDict | None = None
        else:
            self.shared = None
            self.cameras = nn.ModuleDict({name: CameraEncoder(config) for name in config.camera_names})

    @property
    def output_dim(self) -> int:
        return len(self.camera_names) * self.config.feature_dim + self.proprio_dim

    def encoder_for(self, camera: str) -> CameraEncoder:
        if camera not in self.camera_names:
            raise KeyError(f"unknown camera {camera!r}; cameras are {self.camera_names}")
        return self.shared if self.shared is not None else self.cameras[camera]

    @property
    def is_frozen(self) -> bool:
        return all(self.encoder_for(c).is_frozen for c in self.camera_names)

    def freeze(self) -> ObservationEncoder:
        for c in self.camera_names:
            self.encoder_for(c).freeze()
        return self

    def _frames(self, images: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        missing = [c for c in self.camera_names if c not in images]
        if missing:
            raise KeyError(f"missing cameras {missing}; have {sorted(images)}")
        return [images[c] for c in self.camera_names]

    def encode_cameras(
        self, images: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """{camera: uint8 (..., S, S, 3)} -> (..., n_cameras * feature_dim)."""
        frames = self._frames(images)
        if self.shared is not None:  # one batched pass: (..., n_cam, S, S, 3)
            if len({f.shape for f in frames}) != 1:
                raise ValueError(f"cameras have different shapes: {[tuple(f.shape) for f in frames]}")
            out = self.shared(torch.stack(frames, dim=-4), generator)
            return out.flatten(-2)
        return torch.cat([self.cameras[c](f, generator) for c, f in zip(self.camera_names, frames)], dim=-1)

    def combine(self, camera_features: Mapping[str, torch.Tensor], proprio: torch.Tensor) -> torch.Tensor:
        """Cached per-camera features {camera: (..., feature_dim)} + proprio -> (..., output_dim)."""
        feats = self._frames(camera_features)
        for c, f in zip(self.camera_names, feats):
            if f.shape[-1] != self.config.feature_dim:
                raise ValueError(
                    f"features of {c!r} have last dim {f.shape[-1]}, expected {self.config.feature_dim}"
                )
        return self._with_proprio(torch.cat(feats, dim=-1), proprio)

    def _with_proprio(self, cam: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        if proprio.shape[-1] != self.proprio_dim:
            raise ValueError(f"proprio has last dim {proprio.shape[-1]}, expected {self.proprio_dim}")
        return torch.cat([cam, proprio.to(cam.dtype)], dim=-1)

    def forward(
        self,
        images: Mapping[str, torch.Tensor],
        proprio: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Acting: ``enc(images, proprio)`` (no augmentation). Training: pass ``generator``."""
        return self._with_proprio(self.encode_cameras(images, generator), proprio)

    def encode_for_update(
        self,
        images: Mapping[str, torch.Tensor],
        proprio: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> EncodedObs:
        """One (augmented) encoding for an actor-critic update: critic uses ``.with_grad``,
        editor and base use ``.detached``. TD targets encode next obs under ``torch.no_grad``."""
        z = self(images, proprio, generator)
        return EncodedObs(z, z.detach())

    def cache_features(
        self, images: Mapping[str, Any], chunk_size: int = 256, dtype: torch.dtype = torch.float32
    ) -> dict[str, torch.Tensor]:
        """Mode (a)/(b): {camera: uint8 (N, S, S, 3) array or tensor} -> {camera: (N, feature_dim)}
        on the CPU, to store in replay; :meth:`combine` turns them into the agent's input."""
        return {
            c: encode_frames(self.encoder_for(c), f, chunk_size=chunk_size, dtype=dtype)
            for c, f in zip(self.camera_names, self._frames(images))
        }


def encode_frames(
    encoder: CameraEncoder, frames: Any, chunk_size: int = 256, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Features of N uint8 frames ``(N, S, S, 3)`` (numpy, torch, or an h5py dataset: read a chunk at
    a time) in chunks under ``torch.inference_mode``. Returns a normal (autograd-usable) CPU tensor
    ``(N, feature_dim)``. The encoder must be frozen: features of a training encoder go stale."""
    if not encoder.is_frozen:
        raise RuntimeError(
            "encode_frames needs a frozen encoder (call freeze()): cached features would go stale"
        )
    _require(_is_int(chunk_size) and chunk_size >= 1, "chunk_size", chunk_size, "integer >= 1")
    n = len(frames)
    out = torch.empty(n, encoder.feature_dim, dtype=dtype)  # created outside inference mode
    device = encoder.pixel_mean.device
    with torch.inference_mode():
        for start in range(0, n, chunk_size):
            chunk = frames[start : start + chunk_size]
            chunk = (
                chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
            )
            out[start : start + chunk_size] = encoder(chunk.to(device)).to("cpu", dtype)
    return out
