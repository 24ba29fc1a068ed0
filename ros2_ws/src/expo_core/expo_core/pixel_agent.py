"""EXPO from camera images: an image encoder in front of the state-based agent (issue 13).

The encoder (:class:`expo_core.encoder.ObservationEncoder`) turns the cameras and the
proprioception of a pixel spec (``task_obs_spec(task, obs="pixels")``) into one feature vector
``z = concat(camera features in spec order, proprio)``; the EXPO networks (diffusion base,
editor, critic ensemble) are the unchanged state-based ones with ``obs_dim = len(z)``. Two
CPU-friendly modes (docs/pixels.md), both with a frozen encoder online:

- (a) ``backbone="drq"``: the encoder is trained together with the diffusion base by imitation on
  image demos (random shift in training only, :mod:`expo_core.pixel_pretrain`), then frozen.
- (b) ``backbone="resnet18"`` + ``weights_path``: a frozen ResNet-18 trunk from a local weights
  file (the user's); the head is trained with the base by imitation as in (a), then frozen.

Frozen, the encoder is a fixed function of the frame, so replay stores features, computed once per
frame (:func:`expo_core.pixel_pretrain.feature_transitions`), and online RL is state-based
EXPO on those vectors (:meth:`PixelAgent.update` is :meth:`ExpoAgent.update`).

Observation normalization: the agent's normalizer covers z; its camera-feature part stays at
mean 0, std 1 (the features are produced by a network trained for that input, and changing their
scale after pretraining would change what the base sees), its proprio part takes the data's
statistics (:meth:`PixelAgent.set_proprio_normalization`).

Acting: ``PixelAgent.act(images, proprio)`` with ``images = {camera: (H, W, 3) uint8}`` (camera
names as ``EncoderConfig.camera_names``; robomimic's ``<camera>_image`` keys are accepted too),
``proprio`` the spec's low-dim vector. The packed form every other part of the stack passes
(:func:`unpack_observation`) is the sim env's observation: ``{"low_dim": proprio, "<camera>_image":
frame, ...}``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from .agent import ExpoAgent
from .batch import Batch
from .config import ExpoConfig
from .critic import polyak_update
from .encoder import EncoderConfig, ObservationEncoder
from .otf import OTFResult
from .pixel_obs import LOW_DIM_KEY, camera_frames, pack_observation, unpack_observation
from .policy import ExpoPolicy
from .spec import DEFAULT_IMAGE_SIZE, ObsSpec
from .tasks import SUPPORTED_CAMERAS

#: Modes, by what trains the encoder before it is frozen.
MODE_PRETRAIN = "pretrain-freeze"  # (a) DrQ trunk + head trained by imitation with the base
MODE_FROZEN_WEIGHTS = "frozen-weights"  # (b) ResNet-18 trunk from a file; head by imitation


def encoder_mode(encoder_cfg: EncoderConfig) -> str:
    """:data:`MODE_FROZEN_WEIGHTS` for a trunk loaded from a weights file, else :data:`MODE_PRETRAIN`."""
    return MODE_FROZEN_WEIGHTS if encoder_cfg.weights_path is not None else MODE_PRETRAIN


def encoder_preset(
    preset: str,
    cameras: tuple[str, ...] = SUPPORTED_CAMERAS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    weights_path: str | None = None,
) -> EncoderConfig:
    """The encoder that goes with an EXPO preset (docs/pixels.md says why each):

    ``tiny``       tests only: 2 convs of 8 filters, 4 keypoints, 8 features per camera.
    ``cpu``        mode (a): DrQ trunk of 4 convs with 16 filters (a quarter of the 32-filter
                   trunk's multiply-adds: ~0.9 s instead of ~1.7 s per batch-64 imitation step on a
                   loaded 2-core CPU) and a spatial-softmax head (32 keypoints -> 64 features): a
                   small head (4 k parameters per camera instead of the conv head's 2.5 M) keeps
                   the acting bundle and the ONNX graph small, and keypoints suit locating objects.
    ``published``  mode (a) with docs/image_encoder.md's DrQ encoder (32 filters, conv head).
    ``weights_path`` (any preset): mode (b), a frozen ResNet-18 trunk from that local file with
    a spatial-softmax head (the trunk's 3x3 map at 84x84 is too coarse to flatten usefully).
    """
    cams = tuple(cameras)
    if weights_path is not None:
        return EncoderConfig(
            camera_names=cams,
            image_size=image_size,
            backbone="resnet18",
            kind="spatial_softmax",
            weights_path=weights_path,
        )
    if preset == "tiny":
        return EncoderConfig(
            camera_names=cams,
            image_size=image_size,
            kind="spatial_softmax",
            num_filters=8,
            num_layers=2,
            num_keypoints=4,
            feature_dim=8,
        )
    if preset == "cpu":
        return EncoderConfig(camera_names=cams, image_size=image_size, kind="spatial_softmax", num_filters=16)
    if preset == "published":
        return EncoderConfig(camera_names=cams, image_size=image_size)
    raise ValueError(f"unknown preset '{preset}'; available presets: ['tiny', 'cpu', 'published']")


def check_pixel_spec(encoder_cfg: EncoderConfig, spec: ObsSpec) -> None:
    """ValueError unless ``spec`` has cameras and they are exactly the encoder's, in its order and
    at its frame size."""
    if not spec.has_images:
        raise ValueError(
            f"a pixel policy needs a spec with cameras; this one is a state spec ({list(spec.names)})"
        )
    if tuple(spec.cameras) != tuple(encoder_cfg.camera_names):
        raise ValueError(
            f"spec cameras {list(spec.cameras)} differ from the encoder's {list(encoder_cfg.camera_names)}"
        )
    s = encoder_cfg.image_size
    bad = [k.name for k in spec.rgb if (k.height, k.width) != (s, s)]
    if bad:
        raise ValueError(f"spec frames {bad} are not {s}x{s} as the encoder's image_size")


def feature_dim(encoder_cfg: EncoderConfig, spec: ObsSpec) -> int:
    """Length of z = concat(camera features, proprio): the EXPO networks' ``obs_dim``."""
    return len(encoder_cfg.camera_names) * encoder_cfg.feature_dim + spec.dim


def check_no_action_chunks(cfg: ExpoConfig) -> None:
    """Pixel policies act one step at a time: action chunks (diffusion.chunk_len > 1) are not
    supported there (the chunk targets would have to travel with the image batches)."""
    if cfg.diffusion.chunk_len != 1:
        raise ValueError(
            f"diffusion.chunk_len={cfg.diffusion.chunk_len} is invalid for a pixel policy; allowed: 1 "
            "(action chunks, --chunk-len, are supported for state policies only)"
        )


def pixel_expo_config(cfg: ExpoConfig, encoder_cfg: EncoderConfig, spec: ObsSpec) -> ExpoConfig:
    """``cfg`` (e.g. a preset's) with ``obs_dim`` set to the feature vector's length."""
    check_pixel_spec(encoder_cfg, spec)
    check_no_action_chunks(cfg)
    return cfg.replace(obs_dim=feature_dim(encoder_cfg, spec))


def build_encoder(
    encoder_cfg: EncoderConfig, proprio_dim: int, state: Mapping[str, torch.Tensor] | None = None
) -> ObservationEncoder:
    """An :class:`ObservationEncoder`; with ``state`` (a saved encoder's state dict) its weights.

    Mode (b) configs name the user's weights file, which need not exist where a checkpoint is
    loaded (the robot): the saved trunk tensors are written to a temporary safetensors file the
    encoder loads instead, and then the whole saved state replaces the weights anyway.
    """
    if state is None or encoder_cfg.weights_path is None:
        enc = ObservationEncoder(encoder_cfg, proprio_dim)
    else:
        cam = encoder_cfg.camera_names[0]
        prefix = "shared.trunk." if encoder_cfg.share_weights else f"cameras.{cam}.trunk."
        trunk = {k[len(prefix) :]: v.contiguous() for k, v in state.items() if k.startswith(prefix)}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trunk.safetensors"
            save_file(trunk, str(path))
            enc = ObservationEncoder(
                EncoderConfig.from_dict(encoder_cfg.to_dict() | {"weights_path": str(path)}), proprio_dim
            )
        enc.config = encoder_cfg  # provenance: the user's file, not the temporary one
    if state is not None:
        enc.load_state_dict(dict(state))
    return enc


class PixelPolicy(nn.Module):
    """What acts from pixels: the frozen encoder + :class:`ExpoPolicy` on its features.

    State dict keys ``encoder.*`` and ``policy.*``. ``cfg`` is the feature-space
    :class:`ExpoConfig` (``obs_dim`` = :func:`feature_dim`); ``obs_spec`` the pixel spec.
    """

    def __init__(
        self,
        cfg: ExpoConfig,
        encoder_cfg: EncoderConfig,
        spec: ObsSpec,
        encoder: ObservationEncoder | None = None,
    ) -> None:
        super().__init__()
        check_pixel_spec(encoder_cfg, spec)
        check_no_action_chunks(cfg)
        if cfg.obs_dim != feature_dim(encoder_cfg, spec):
            raise ValueError(
                f"config obs_dim {cfg.obs_dim} != feature dim {feature_dim(encoder_cfg, spec)} of the "
                "encoder and spec (use pixel_expo_config)"
            )
        self.encoder = encoder if encoder is not None else ObservationEncoder(encoder_cfg, spec.dim)
        self.encoder.freeze()
        self.policy = ExpoPolicy(cfg)
        self.obs_spec = spec
        self.encoder_cfg = encoder_cfg

    @property
    def cfg(self) -> ExpoConfig:
        return self.policy.cfg

    @cfg.setter
    def cfg(self, value: ExpoConfig) -> None:  # the backends override num_samples this way
        self.policy.cfg = value

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.encoder_cfg.camera_names)

    def features(self, images: Mapping[str, Any], proprio: Any) -> torch.Tensor:
        """{camera: uint8 (B, H, W, 3)}, proprio (B, P) raw -> z (B, obs_dim); no augmentation."""
        dev = self.policy.normalizer.mean.device
        frames = camera_frames(images, self.cameras, dev)
        p = torch.as_tensor(proprio, dtype=torch.float32, device=dev)
        return self.encoder(frames, p)

    @torch.no_grad()
    def decide(
        self,
        images: Mapping[str, Any],
        proprio: Any,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        base_noise: torch.Tensor | None = None,
        edit_noise: torch.Tensor | None = None,
        members: torch.Tensor | None = None,
    ) -> OTFResult:
        """:meth:`ExpoPolicy.decide` on the encoded observation (batched: (B, H, W, 3) frames)."""
        return self.policy.decide(
            self.features(images, proprio), generator, deterministic, base_noise, edit_noise, members
        )


class PixelAgent(nn.Module):
    """:class:`ExpoAgent` on encoder features, plus the encoder and its imitation pretraining.

    ``encoder`` is trained with the base by :meth:`pretrain_step` until :meth:`freeze_encoder`;
    from then on every method works on features and online updates cost what state-based EXPO
    costs (``agent.update``). ``cfg.obs_dim`` must be :func:`feature_dim` (see
    :func:`pixel_expo_config`).
    """

    def __init__(
        self,
        cfg: ExpoConfig,
        encoder_cfg: EncoderConfig,
        spec: ObsSpec,
        device: str | torch.device = "cpu",
        seed: int = 0,
        encoder: ObservationEncoder | None = None,
    ) -> None:
        super().__init__()
        check_pixel_spec(encoder_cfg, spec)
        check_no_action_chunks(cfg)
        if cfg.obs_dim != feature_dim(encoder_cfg, spec):
            raise ValueError(
                f"config obs_dim {cfg.obs_dim} != feature dim {feature_dim(encoder_cfg, spec)} "
                "(use pixel_expo_config)"
            )
        self.obs_spec = spec
        self.encoder_cfg = encoder_cfg
        self.device = torch.device(device)
        if encoder is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 7919)  # encoder init apart from the agent's networks
                encoder = ObservationEncoder(encoder_cfg, spec.dim)
        self.encoder = encoder.to(self.device)
        self.agent = ExpoAgent(cfg, device=self.device, seed=seed)
        n_feat = cfg.obs_dim - spec.dim
        self.agent.policy.normalizer.set_stats(torch.zeros(cfg.obs_dim), torch.ones(cfg.obs_dim))
        self._n_feat = n_feat
        trainable = [p for p in self.encoder.parameters() if p.requires_grad]
        d = cfg.diffusion
        self.encoder_opt: torch.optim.Optimizer | None = (
            torch.optim.AdamW(trainable, lr=d.lr, weight_decay=d.weight_decay)
            if trainable and not self.encoder.is_frozen
            else None
        )

    # --- properties ------------------------------------------------------------------------
    @property
    def cfg(self) -> ExpoConfig:
        return self.agent.cfg

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.encoder_cfg.camera_names)

    @property
    def mode(self) -> str:
        return encoder_mode(self.encoder_cfg)

    @property
    def is_frozen(self) -> bool:
        return self.encoder.is_frozen

    # --- normalization and features ----------------------------------------------------------
    def set_proprio_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Proprio statistics (the spec's low-dim vector); camera features stay at (0, 1)."""
        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if mean.shape != (self.obs_spec.dim,) or std.shape != (self.obs_spec.dim,):
            raise ValueError(f"proprio statistics must have shape ({self.obs_spec.dim},)")
        z0, z1 = np.zeros(self._n_feat, np.float32), np.ones(self._n_feat, np.float32)
        self.agent.set_obs_normalization(np.concatenate([z0, mean]), np.concatenate([z1, std]))

    def features(
        self, images: Mapping[str, Any], proprio: Any, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """{camera: uint8 (B, H, W, 3)}, proprio (B, P) -> z (B, obs_dim) raw (before the
        normalizer). Random shift iff ``generator`` (training only)."""
        frames = camera_frames(images, self.cameras, self.device)
        p = torch.as_tensor(
            np.asarray(proprio, np.float32) if not isinstance(proprio, torch.Tensor) else proprio
        )
        return self.encoder(frames, p.to(self.device, torch.float32), generator)

    # --- acting ----------------------------------------------------------------------------
    @torch.no_grad()
    def decide(self, images: Mapping[str, Any], proprio: Any, deterministic: bool = False) -> OTFResult:
        """OTF decision for a batch: {camera: uint8 (B, H, W, 3)}, proprio (B, P) -> OTFResult."""
        return self.agent.decide(self.features(images, proprio), deterministic)

    def act(self, images: Mapping[str, Any], proprio: Any, deterministic: bool = False) -> np.ndarray:
        """{camera: (H, W, 3) uint8}, proprio (P,) -> action (d,) float32 in [-1, 1]; batched
        (B, H, W, 3) frames and (B, P) proprio -> (B, d)."""
        imgs, p, single = self._batched(images, proprio)
        out = self.decide(imgs, p, deterministic).action.cpu().numpy()
        return out[0] if single else out

    @torch.no_grad()
    def base_act(self, images: Mapping[str, Any], proprio: Any, deterministic: bool = False) -> np.ndarray:
        """The base policy alone (one EMA-base sample; the imitation baseline), shapes as :meth:`act`."""
        imgs, p, single = self._batched(images, proprio)
        out = self.agent.base_act(self.features(imgs, p).cpu().numpy(), deterministic)
        return out[0] if single else out

    def _batched(self, images: Mapping[str, Any], proprio: Any) -> tuple[dict[str, Any], np.ndarray, bool]:
        p = np.asarray(proprio, dtype=np.float32)
        single = p.ndim == 1
        frames = camera_frames(images, self.cameras)
        if single:
            frames = {c: f[None] for c, f in frames.items()}
            p = p[None]
        return frames, p, single

    # --- learning ----------------------------------------------------------------------------
    def pretrain_step(
        self,
        images: Mapping[str, torch.Tensor],
        proprio: torch.Tensor,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, float]:
        """One imitation step of the base and (until frozen) the encoder, end to end: the base's
        denoising loss on z = encoder(random-shifted frames, proprio) trains both (no critic
        exists yet, so the base's BC loss is what shapes the features). ``generator`` draws the
        shifts (None: the agent's stream). A non-finite loss or gradient skips the step (counted
        in ``agent.num_rejected``), as ExpoAgent does."""
        if self.encoder.is_frozen or self.encoder_opt is None:
            with torch.no_grad():
                z = self.features(images, proprio)
            return self.agent.pretrain_step(_feature_batch(z, action))
        agent = self.agent
        gen = generator if generator is not None else agent.generator
        self.encoder.train()
        z = self.features(images, proprio, gen)
        loss = agent.base.loss(agent.policy.normalizer(z), action.to(self.device), agent.generator)
        opts = (agent.base_opt, self.encoder_opt)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        ok = bool(torch.isfinite(loss))
        if ok:
            loss.backward()
            params = [p for o in opts for g in o.param_groups for p in g["params"] if p.grad is not None]
            ok = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(params, float("inf"))))
        if not ok:
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            agent.num_rejected += 1
            return {"bc_loss": float(loss.item())}
        for opt in opts:
            opt.step()
        agent.base_sched.step()
        polyak_update(agent.policy.base, agent.base, agent.cfg.diffusion.ema_tau)
        return {"bc_loss": float(loss.item())}

    def freeze_encoder(self) -> None:
        """End of encoder training: freeze it (eval mode, no gradients) and drop its optimizer;
        from now on features may be cached."""
        self.encoder.freeze()
        self.encoder_opt = None

    def update(self, batch_iter) -> dict[str, float]:
        """One env step of EXPO learning on feature batches (obs = z, e.g. from replay that caches
        features): :meth:`ExpoAgent.update`. Needs a frozen encoder."""
        if not self.encoder.is_frozen:
            raise RuntimeError("online updates need a frozen encoder (freeze_encoder()): cached features")
        return self.agent.update(batch_iter)

    # --- weights ---------------------------------------------------------------------------
    def acting_policy(self) -> PixelPolicy:
        """A CPU copy of what acts: the encoder and the agent's acting bundle (EMA base, editor,
        critics, normalizer). The encoder must be frozen."""
        if not self.encoder.is_frozen:
            raise RuntimeError("freeze the encoder before exporting the acting policy")
        pol = PixelPolicy(
            self.cfg,
            self.encoder_cfg,
            self.obs_spec,
            build_encoder(self.encoder_cfg, self.obs_spec.dim, self.encoder_state()),
        )
        pol.policy.load_state_dict(self.agent.policy_state())
        return pol.eval()

    def encoder_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.encoder.state_dict().items()}


def _feature_batch(z: torch.Tensor, action: torch.Tensor) -> Batch:
    """A Batch for imitation only (next_obs, reward and flags are unused by the BC loss)."""
    zeros = torch.zeros(len(z), device=z.device)
    return Batch(z, action.to(z.device), zeros, z, zeros, zeros)


def proprio_stats(proprio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of (N, P) proprio rows (what :meth:`PixelAgent.set_proprio_normalization` takes)."""
    p = np.asarray(proprio, np.float64)
    return p.mean(0).astype(np.float32), p.std(0).astype(np.float32)


__all__ = [
    "LOW_DIM_KEY",
    "MODE_FROZEN_WEIGHTS",
    "MODE_PRETRAIN",
    "PixelAgent",
    "PixelPolicy",
    "build_encoder",
    "camera_frames",
    "check_pixel_spec",
    "encoder_mode",
    "encoder_preset",
    "feature_dim",
    "pack_observation",
    "pixel_expo_config",
    "proprio_stats",
    "unpack_observation",
]
