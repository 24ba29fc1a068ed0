"""The inference backend interface: what every backend implements and the policy node calls.

One small interface, :class:`InferenceBackend`: load acting weights (a policy-weights bundle or a
full checkpoint), ``decide(obs) -> Decision`` for one observation, and a two-phase weight swap:
:meth:`~InferenceBackend.prepare` decodes and verifies new weights without touching the running
ones (safe in a worker thread), :meth:`~InferenceBackend.commit` swaps the reference (the
control loop calls it between ticks). ``swap_weights`` does both. Any failure raises
``expo_core.checkpoint.WeightsError`` and leaves the running weights untouched.

:class:`.torch_eager.TorchBackend` runs ``expo_core.policy.ExpoPolicy`` eagerly on CPU or CUDA. The exported
OTF graph (``expo_core.export``) runs under ONNX Runtime (``onnx_runtime.OnnxRuntimeBackend``)
and TensorRT (``tensorrt_engine.TensorRTBackend``); on a GPU the torch backend replays a
captured CUDA graph (``torch_cuda.CudaGraphTorchBackend``). ``registry.make_backend`` builds
any of them by name and raises :class:`BackendUnavailableError` where a runtime library is not
installed; ``auto`` (``registry.select_backend``) takes the first that can be built here, in order of
measured speed, and logs why.

Observations (one interface for both kinds of policy, :data:`Observation`): a state policy takes
``obs (obs_dim,)`` float, as always; a pixel policy (weights with an image encoder, issue 13)
takes the packed form the sim env returns, ``{"low_dim": proprio (P,), "<camera>_image": (H, W,
3) uint8, ...}`` (one entry per camera of :attr:`InferenceBackend.obs_spec`, robomimic's key
names). :func:`pixel_feeds` checks it (dtype, shape, every camera present) and raises ValueError
or KeyError naming the entry, so the caller can hold instead of acting. The torch and
onnxruntime backends take pixel weights; TensorRT and the CUDA-graph torch backend refuse them
with a WeightsError (``supports_pixels``) for now. Action chunks (``diffusion.chunk_len > 1``) run
on eager torch only (``supports_chunks``): the exported graphs compute one action per decision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from expo_core.checkpoint import (
    FORMAT,
    PIXELS_FORMAT,
    WeightsError,
    load_any_checkpoint,
    policy_weights_bytes,
)
from expo_core.config import ExpoConfig
from expo_core.pixel_agent import LOW_DIM_KEY, PixelPolicy, pack_observation, unpack_observation
from expo_core.policy import ExpoPolicy
from expo_core.spec import ObsSpec
from safetensors import safe_open

#: What ``decide`` takes: a flat state vector, or the packed pixel observation (module docstring).
Observation = np.ndarray | Mapping[str, Any]
#: The proprio input of a pixel graph (and of :func:`pixel_feeds`' result).
PROPRIO_FEED = "proprio"

log = logging.getLogger(__name__)


class Decision(NamedTuple):
    """One OTF decision. ``action (d,)``, ``candidates (K, d)`` float32 in [-1, 1] (rows [0, N)
    base samples, [N, K) their edits), ``q (K,)`` float32, ``index`` of the chosen candidate;
    ``plan (k - 1, d)`` float32: the chosen candidate's next actions when the base predicts
    action chunks (``diffusion.chunk_len`` k > 1, ``expo_core.otf.OTFResult.plan``), else None.
    The exported graphs (ONNX Runtime, TensorRT, the CUDA graph) have no plan output: a chunked
    checkpoint is refused there when it is exported (``expo_core.export``). ``ahead_ms``: time
    spent on this decision's inputs before ``decide`` was called (a pixel policy's camera frames
    encoded as they arrived, :meth:`InferenceBackend.encode_ahead`), 0 when none was."""

    action: np.ndarray
    candidates: np.ndarray
    q: np.ndarray
    index: int
    plan: np.ndarray | None = None
    ahead_ms: float = 0.0


@dataclass(frozen=True)
class WeightsSource:
    """Acting weights read from disk as a bundle: safetensors ``data``, its ``sha256``,
    ``version`` (the bundle's, 0 for a checkpoint), ``kind`` "bundle" or "checkpoint", ``path``."""

    data: bytes
    sha256: str
    version: int
    kind: str
    path: Path


def _resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(p.glob("*.safetensors"))
        if len(files) != 1:
            raise WeightsError(f"{p} is a directory with {len(files)} .safetensors files; name one file")
        return files[0]
    for cand in (p, p.with_suffix(".safetensors")):  # save_checkpoint(path) writes path.safetensors
        if cand.is_file():
            return cand
    raise WeightsError(f"no checkpoint or policy-weights file at {p} (nor {p.with_suffix('.safetensors')})")


def _header(path: str | Path) -> tuple[Path, dict[str, str]]:
    """The file ``path`` resolves to and its safetensors metadata (the header only, no tensors);
    WeightsError when it is not a readable safetensors file."""
    file = _resolve(path)
    try:
        with safe_open(str(file), "pt") as f:
            return file, f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{file}: not a readable safetensors file ({e})") from e


def read_weights_source(path: str | Path) -> WeightsSource:
    """Read a policy-weights bundle (``policy_weights_bytes`` written to a file) or a full
    checkpoint (``save_checkpoint``: ``x.safetensors`` + ``x.json``) as bundle bytes.

    A bundle is recognized by the format tag in its safetensors metadata; anything else needs the
    checkpoint's JSON beside it. Raises WeightsError with the path on any problem.
    """
    file, meta = _header(path)
    if meta.get("format") in (FORMAT, PIXELS_FORMAT):
        data = file.read_bytes()
        return WeightsSource(
            data, hashlib.sha256(data).hexdigest(), int(meta.get("version", 0)), "bundle", file
        )
    if not file.with_suffix(".json").is_file():
        raise WeightsError(
            f"{file}: neither a policy-weights bundle (metadata format {FORMAT!r} or {PIXELS_FORMAT!r}) "
            "nor a checkpoint "
            f"(missing {file.with_suffix('.json').name})"
        )
    try:
        agent, _ = load_any_checkpoint(file)
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"{file}: checkpoint could not be loaded ({type(e).__name__}: {e})") from e
    data, sha = policy_weights_bytes(agent, version=0)
    return WeightsSource(data, sha, 0, "checkpoint", file)


def is_pixel_weights(path: str | Path) -> bool:
    """Whether the bundle or checkpoint at ``path`` (as :func:`read_weights_source` resolves it)
    holds a pixel policy (format ``PIXELS_FORMAT``), read from its metadata or JSON without
    loading tensors, so a backend can be chosen before the weights are loaded. Raises
    WeightsError when the file is not one of the two."""
    file, meta = _header(path)
    fmt = meta.get("format")
    if fmt not in (FORMAT, PIXELS_FORMAT):
        try:
            fmt = json.loads(file.with_suffix(".json").read_text()).get("format")
        except (OSError, ValueError, AttributeError) as e:
            raise WeightsError(
                f"{file}: neither a policy-weights bundle nor a checkpoint with a readable "
                f"{file.with_suffix('.json').name} ({e})"
            ) from e
    if fmt not in (FORMAT, PIXELS_FORMAT):
        raise WeightsError(f"{file}: unknown weights format {fmt!r}, expected {FORMAT} or {PIXELS_FORMAT}")
    return fmt == PIXELS_FORMAT


def weights_chunk_len(path: str | Path) -> int:
    """``diffusion.chunk_len`` of the bundle or checkpoint at ``path`` (as
    :func:`read_weights_source` resolves it), read from its metadata or JSON without loading
    tensors, so that ``backend: auto`` can pass over backends that do not run action chunks.
    1 when the config predates chunks; WeightsError when the file or its config cannot be read."""
    file, meta = _header(path)
    try:
        text = meta.get("config")
        cfg = json.loads(text) if text else json.loads(file.with_suffix(".json").read_text())["config"]
        chunk_len = (cfg.get("diffusion") or {}).get("chunk_len", 1)
    except Exception as e:
        raise WeightsError(
            f"{file}: no readable config in its metadata or JSON ({type(e).__name__}: {e})"
        ) from e
    if isinstance(chunk_len, bool) or not isinstance(chunk_len, int) or chunk_len < 1:
        raise WeightsError(
            f"{file}: diffusion.chunk_len {chunk_len!r} in its config is not a positive integer"
        )
    return chunk_len


class InferenceBackend(ABC):
    """What the policy node needs from an inference engine; see the module docstring."""

    name: str = ""
    #: why ``backend: auto`` chose this backend ("" when it was named explicitly)
    selection: str = ""
    #: whether weights with an image encoder (a PixelPolicy) can be loaded
    supports_pixels: bool = True
    #: whether weights that plan action chunks (``diffusion.chunk_len > 1``) can be loaded
    supports_chunks: bool = False

    @property
    @abstractmethod
    def config(self) -> ExpoConfig:
        """Config of the loaded weights (obs_dim, act_dim, network sizes); after :meth:`load`."""

    @property
    @abstractmethod
    def policy(self) -> ExpoPolicy | PixelPolicy:
        """The CPU/GPU torch policy whose weights run (after :meth:`load`)."""

    @property
    def obs_spec(self) -> ObsSpec | None:
        """The loaded pixel policy's spec (cameras, frame sizes, proprio keys); None for a state
        policy, which takes ``obs (config.obs_dim,)``."""
        policy = self.policy
        return policy.obs_spec if isinstance(policy, PixelPolicy) else None

    @property
    @abstractmethod
    def num_base_samples(self) -> int:
        """N: candidates [0, N) are base samples, [N, 2N) their edits."""

    @abstractmethod
    def load_bundle(self, data: bytes, sha256: str | None) -> None:
        """Replace everything with this bundle (first load; no shape check against old weights)."""

    @abstractmethod
    def decide(self, obs: Observation) -> Decision:
        """One OTF decision: ``obs (obs_dim,)`` raw (unnormalized) float for a state policy, the
        packed pixel observation for a pixel policy (module docstring)."""

    @abstractmethod
    def prepare(self, data: bytes, sha256: str) -> Any:
        """Decode and verify new weights against the running ones; no side effects, thread-safe."""

    @abstractmethod
    def commit(self, prepared: Any) -> None:
        """Swap in weights returned by :meth:`prepare` (a reference swap: cheap)."""

    def load(self, path: str | Path) -> WeightsSource:
        """Load a bundle or checkpoint file; returns what was read (its version included)."""
        src = read_weights_source(path)
        self.load_bundle(src.data, src.sha256)
        return src

    def swap_weights(self, data: bytes, sha256: str) -> None:
        """Verify and swap in one call; raises WeightsError and keeps the old weights on failure."""
        self.commit(self.prepare(data, sha256))

    def encode_ahead(self, camera: str, frame: np.ndarray) -> bool:
        """A pixel policy's camera frame, encoded now, as it arrives, so that a decision on an
        observation holding this very frame (the same array object) only runs what follows the
        encoder. Returns whether the features were kept; False (the default: this backend encodes
        in :meth:`decide`) leaves the work to the decision. Never raises for a bad frame: the
        decision checks it and raises there."""
        return False

    def zero_observation(self) -> Observation:
        """An all-zero observation of the loaded policy's kind (black frames for pixels)."""
        spec = self.obs_spec
        if spec is None:
            return np.zeros(self.config.obs_dim, dtype=np.float32)
        images = {k.camera: np.zeros(k.shape, np.uint8) for k in spec.rgb}
        return pack_observation(images, np.zeros(spec.dim, np.float32))

    def warmup(self) -> None:
        """One decision on zeros, so the first real tick does not pay for lazy initialization."""
        self.decide(self.zero_observation())

    def _check_kind(self, policy: ExpoPolicy | PixelPolicy) -> None:
        if isinstance(policy, PixelPolicy) and not self.supports_pixels:
            raise WeightsError(
                f"backend {self.name!r} does not run pixel policies (image encoder) yet; use torch or "
                "onnxruntime"
            )


def state_vector(obs: Observation, obs_dim: int) -> np.ndarray:
    """A state policy's observation as (1, obs_dim) float32; ValueError for anything else (a pixel
    observation included)."""
    if isinstance(obs, Mapping):
        raise ValueError(
            f"this policy acts on a state vector of {obs_dim} values, got a pixel observation "
            f"({sorted(obs)}): load pixel weights to act on images"
        )
    x = np.asarray(obs, dtype=np.float32).reshape(1, -1)
    if x.shape[1] != obs_dim:
        raise ValueError(f"observation has {x.shape[1]} values, the policy expects {obs_dim}")
    return x


def pixel_feeds(spec: ObsSpec, obs: Observation) -> dict[str, np.ndarray]:
    """The packed pixel observation -> the graph's observation inputs, batch 1:
    ``{"<camera>_image": (1, H, W, 3) uint8 (spec order), "proprio": (1, P) float32}``.

    Raises KeyError (a camera or ``low_dim`` missing) or ValueError (not a mapping, a frame not
    uint8 or not (H, W, 3) as the spec says, proprio of the wrong length, a non-finite proprio
    value), each naming the entry: the policy node turns these into a hold."""
    if not isinstance(obs, Mapping):
        raise ValueError(
            f"this pixel policy takes {{'{LOW_DIM_KEY}': proprio, '<camera>_image': uint8 frame}} for "
            f"cameras {list(spec.cameras)}, got {type(obs).__name__} (a state vector?)"
        )
    images, proprio = unpack_observation(obs, spec.cameras)
    feeds: dict[str, np.ndarray] = {}
    for key in spec.rgb:
        frame = np.asarray(images[key.camera])
        if frame.dtype != np.uint8:
            raise ValueError(f"camera frame '{key.name}' has dtype {frame.dtype}, expected uint8 (rgb8)")
        if frame.shape != key.shape:
            raise ValueError(f"camera frame '{key.name}' has shape {frame.shape}, expected {key.shape}")
        feeds[key.name] = np.ascontiguousarray(frame)[None]
    p = np.asarray(proprio, dtype=np.float32).reshape(1, -1)
    if p.shape[1] != spec.dim:
        raise ValueError(f"'{LOW_DIM_KEY}' has {p.shape[1]} values, the spec's proprio has {spec.dim}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"'{LOW_DIM_KEY}' has non-finite values")
    feeds[PROPRIO_FEED] = p
    return feeds


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|auto)$")


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N', or 'auto' (CUDA when available); ValueError when unusable."""
    if not _DEVICE.match(device):
        raise ValueError(f"device '{device}' is invalid; use cpu, cuda, cuda:N or auto")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device '{device}' requested but CUDA is not available to torch {torch.__version__}"
        )
    return torch.device(device)


class BackendUnavailableError(NotImplementedError):
    """The backend exists but cannot run here: its runtime library (onnxruntime, TensorRT) or
    the device it needs is absent. A NotImplementedError, so the policy node reports it as a bad
    ``backend`` parameter like any other backend it cannot build."""


def check_compatible(running: ExpoPolicy | PixelPolicy, new: ExpoPolicy | PixelPolicy) -> None:
    """Raise WeightsError unless ``new`` has exactly the running policy's tensor names and shapes
    (a hot swap must not change the observation/action spec or the network sizes)."""
    cur, nxt = running.state_dict(), new.state_dict()
    if set(cur) != set(nxt):
        missing, extra = sorted(set(cur) - set(nxt)), sorted(set(nxt) - set(cur))
        raise WeightsError(
            f"weights keys differ from the running policy: missing {missing[:3]}, extra {extra[:3]}"
        )
    for k, v in nxt.items():
        if v.shape != cur[k].shape:
            raise WeightsError(
                f"weights shape mismatch with the running policy for {k}: "
                f"{tuple(v.shape)} vs {tuple(cur[k].shape)}"
            )
