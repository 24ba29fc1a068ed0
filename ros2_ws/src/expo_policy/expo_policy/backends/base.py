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
"""

from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from expo_core.checkpoint import (
    FORMAT,
    WeightsError,
    load_checkpoint,
    policy_weights_bytes,
)
from expo_core.config import ExpoConfig
from expo_core.policy import ExpoPolicy
from safetensors import safe_open

log = logging.getLogger(__name__)


class Decision(NamedTuple):
    """One OTF decision. ``action (d,)``, ``candidates (K, d)`` float32 in [-1, 1] (rows [0, N)
    base samples, [N, K) their edits), ``q (K,)`` float32, ``index`` of the chosen candidate."""

    action: np.ndarray
    candidates: np.ndarray
    q: np.ndarray
    index: int


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


def read_weights_source(path: str | Path) -> WeightsSource:
    """Read a policy-weights bundle (``policy_weights_bytes`` written to a file) or a full
    checkpoint (``save_checkpoint``: ``x.safetensors`` + ``x.json``) as bundle bytes.

    A bundle is recognized by the format tag in its safetensors metadata; anything else needs the
    checkpoint's JSON beside it. Raises WeightsError with the path on any problem.
    """
    file = _resolve(path)
    try:
        with safe_open(str(file), "pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{file}: not a readable safetensors file ({e})") from e
    if meta.get("format") == FORMAT:
        data = file.read_bytes()
        return WeightsSource(
            data, hashlib.sha256(data).hexdigest(), int(meta.get("version", 0)), "bundle", file
        )
    if not file.with_suffix(".json").is_file():
        raise WeightsError(
            f"{file}: neither a policy-weights bundle (metadata format {FORMAT!r}) nor a checkpoint "
            f"(missing {file.with_suffix('.json').name})"
        )
    try:
        agent, _ = load_checkpoint(file)
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"{file}: checkpoint could not be loaded ({type(e).__name__}: {e})") from e
    data, sha = policy_weights_bytes(agent, version=0)
    return WeightsSource(data, sha, 0, "checkpoint", file)


class InferenceBackend(ABC):
    """What the policy node needs from an inference engine; see the module docstring."""

    name: str = ""
    #: why ``backend: auto`` chose this backend ("" when it was named explicitly)
    selection: str = ""

    @property
    @abstractmethod
    def config(self) -> ExpoConfig:
        """Config of the loaded weights (obs_dim, act_dim, network sizes); after :meth:`load`."""

    @property
    @abstractmethod
    def num_base_samples(self) -> int:
        """N: candidates [0, N) are base samples, [N, 2N) their edits."""

    @abstractmethod
    def load_bundle(self, data: bytes, sha256: str | None) -> None:
        """Replace everything with this bundle (first load; no shape check against old weights)."""

    @abstractmethod
    def decide(self, obs: np.ndarray) -> Decision:
        """One OTF decision for ``obs (obs_dim,)`` raw (unnormalized) float."""

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

    def warmup(self) -> None:
        """One decision on zeros, so the first real tick does not pay for lazy initialization."""
        self.decide(np.zeros(self.config.obs_dim, dtype=np.float32))


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


def check_compatible(running: ExpoPolicy, new: ExpoPolicy) -> None:
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
