"""Inference backends: the policy node's only way to run the networks.

One small interface, :class:`InferenceBackend`: load acting weights (a policy-weights bundle or a
full checkpoint), ``decide(obs) -> Decision`` for one observation, and a two-phase weight swap:
:meth:`~InferenceBackend.prepare` decodes and verifies new weights without touching the running
ones (safe in a worker thread), :meth:`~InferenceBackend.commit` swaps the reference (the
control loop calls it between ticks). ``swap_weights`` does both. Any failure raises
``expo_core.checkpoint.WeightsError`` and leaves the running weights untouched.

:class:`TorchBackend` runs ``expo_core.policy.ExpoPolicy`` eagerly on CPU or CUDA. The exported
OTF graph (``expo_core.export``) runs under ONNX Runtime (``backend_onnx.OnnxRuntimeBackend``)
and TensorRT (``backend_tensorrt.TensorRTBackend``); on a GPU the torch backend replays a
captured CUDA graph (``backend_torch_cuda.CudaGraphTorchBackend``). :func:`make_backend` builds
any of them by name and raises :class:`BackendUnavailableError` where a runtime library is not
installed; ``auto`` (:func:`select_backend`) takes the first that can be built here, in order of
measured speed, and logs why.
"""

from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from expo_core.checkpoint import (
    FORMAT,
    WeightsError,
    load_checkpoint,
    policy_from_weights,
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


@dataclass(frozen=True)
class _TorchPrepared:
    policy: ExpoPolicy


class TorchBackend(InferenceBackend):
    """Eager torch on :class:`expo_core.policy.ExpoPolicy` (CPU, or CUDA when asked and present).

    Args:
        device: see :func:`resolve_device`.
        seed: seed of the torch.Generator for diffusion noise and editor samples.
        num_base_samples: N base samples per decision (2N candidates); None keeps the weights'
            ``num_samples``. It does not change any network shape.
        num_threads: torch intra-op CPU threads, process-wide (``torch.set_num_threads``); 0
            leaves torch's default. On a small CPU shared with DDS threads and other processes,
            1 keeps latency steady: with 2 threads on 2 busy cores each parallel op waits for a
            descheduled worker (measured: 20 Hz loop at p99 39 ms with 1, 12 Hz at p99 222 ms
            with 2, published network sizes).
    """

    name = "torch"

    def __init__(
        self, device: str = "cpu", seed: int = 0, num_base_samples: int | None = None, num_threads: int = 0
    ) -> None:
        if num_base_samples is not None and num_base_samples < 1:
            raise ValueError(f"num_base_samples must be >= 1, got {num_base_samples}")
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch default), got {num_threads}")
        if num_threads:
            torch.set_num_threads(num_threads)
        self.device = resolve_device(device)
        self._seed = int(seed)
        self._n = num_base_samples
        self._policy: ExpoPolicy | None = None
        self._gen = torch.Generator(self.device).manual_seed(self._seed)

    @property
    def policy(self) -> ExpoPolicy:
        if self._policy is None:
            raise RuntimeError("TorchBackend has no weights: call load() or load_bundle() first")
        return self._policy

    @property
    def config(self) -> ExpoConfig:
        return self.policy.cfg

    @property
    def num_base_samples(self) -> int:
        return self.policy.cfg.num_samples

    def _build(self, data: bytes, sha256: str | None) -> ExpoPolicy:
        policy = policy_from_weights(data, sha256)  # verifies hash, format, shapes, finiteness
        if self._n is not None:
            policy.cfg = policy.cfg.replace(num_samples=self._n)
        return policy.to(self.device).eval()

    def load_bundle(self, data: bytes, sha256: str | None) -> None:
        self._policy = self._build(data, sha256)
        self._gen = torch.Generator(self.device).manual_seed(self._seed)

    def prepare(self, data: bytes, sha256: str) -> _TorchPrepared:
        running = self.policy
        new = self._build(data, sha256)
        check_compatible(running, new)
        return _TorchPrepared(new)

    def commit(self, prepared: Any) -> None:
        if not isinstance(prepared, _TorchPrepared):
            raise TypeError(f"TorchBackend.commit expects what prepare() returned, got {type(prepared)}")
        self._policy = prepared.policy

    def decide(self, obs: np.ndarray) -> Decision:
        policy = self.policy  # one reference for the whole decision, even if a commit follows
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, -1)
        if x.shape[1] != policy.cfg.obs_dim:
            raise ValueError(f"observation has {x.shape[1]} values, the policy expects {policy.cfg.obs_dim}")
        res = policy.decide(x.to(self.device), self._gen)
        return Decision(
            action=res.action[0].float().cpu().numpy(),
            candidates=res.candidates[0].float().cpu().numpy(),
            q=res.q[0].float().cpu().numpy(),
            index=int(res.index[0]),
        )


def _onnxruntime() -> type[InferenceBackend]:
    from .backend_onnx import OnnxRuntimeBackend  # imported on use: it imports this module

    return OnnxRuntimeBackend


def _tensorrt() -> type[InferenceBackend]:
    from .backend_tensorrt import TensorRTBackend

    return TensorRTBackend


def _torch_cuda_graph() -> type[InferenceBackend]:
    from .backend_torch_cuda import CudaGraphTorchBackend

    return CudaGraphTorchBackend


#: name (the ``backend`` parameter) -> the backend class, imported when first asked for.
BACKENDS: dict[str, Callable[[], type[InferenceBackend]]] = {
    "torch": lambda: TorchBackend,
    "onnxruntime": _onnxruntime,
    "tensorrt": _tensorrt,
}
AUTO = "auto"

#: ``auto``'s candidates, fastest first: (label, backend name, device it is built for, class).
#: The order is the bench's (``make bench-policy``): on a GPU TensorRT, then onnxruntime's CUDA
#: EP, then torch replaying a CUDA graph (each an order of magnitude under eager CUDA torch at
#: N=8, T=10, which is launch-bound); on CPU the onnxruntime graph (1.3-2x batched eager torch
#: on 2 cores) before eager torch. Chosen by availability rather than by a timed probe: a probe
#: needs the weights (loaded after the backend is built), costs seconds of export and compile
#: per candidate at configure time, and on a shared, loaded CPU its few samples rank by noise.
AUTO_ORDER: tuple[tuple[str, str, str, Callable[[], type[InferenceBackend]]], ...] = (
    ("tensorrt (cuda)", "tensorrt", "cuda", _tensorrt),
    ("onnxruntime (CUDA EP)", "onnxruntime", "cuda", _onnxruntime),
    ("torch cuda-graph (cuda)", "torch", "cuda", _torch_cuda_graph),
    ("onnxruntime (cpu)", "onnxruntime", "cpu", _onnxruntime),
    ("torch (cpu)", "torch", "cpu", lambda: TorchBackend),
)


def select_backend(device: str = "auto", **kwargs: Any) -> InferenceBackend:
    """``backend: auto``: build the first of :data:`AUTO_ORDER` that runs here and log why.

    ``device`` limits the candidates: 'cpu' skips the GPU ones, 'cuda'/'cuda:N' the CPU ones
    ('auto' tries all). A candidate is skipped when its library, provider or GPU is missing
    (BackendUnavailableError, ImportError) or it rejects the device (ValueError). The chosen
    backend's ``selection`` attribute holds the reason, also logged at INFO. Raises
    BackendUnavailableError when none can be built."""
    if not _DEVICE.match(device):
        raise ValueError(f"device '{device}' is invalid; use cpu, cuda, cuda:N or auto")
    why: list[str] = []
    for label, name, kind, cls in AUTO_ORDER:
        if device != "auto" and (kind == "cuda") != device.startswith("cuda"):
            why.append(f"{label}: device '{device}' asked")
            continue
        dev = device if device.startswith("cuda") else kind
        try:
            backend = cls()(device=dev, **kwargs)
        except (BackendUnavailableError, ImportError, ValueError) as e:
            why.append(f"{label}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            continue
        reason = f"backend auto chose {label} ({name}, device {dev}), the fastest available"
        if why:
            reason += "; skipped " + "; ".join(why)
        backend.selection = reason
        log.info("%s", reason)
        return backend
    raise BackendUnavailableError("backend auto: no inference backend can run here: " + "; ".join(why))


def make_backend(name: str, **kwargs: Any) -> InferenceBackend:
    """Build the backend called ``name`` with its keyword arguments (every backend takes
    ``device``, ``seed``, ``num_base_samples`` and ``num_threads``); ``auto`` picks one
    (:func:`select_backend`). ``torch`` on a CUDA device replays a captured CUDA graph.

    Raises ValueError for unknown names (listing the known ones) and BackendUnavailableError (a
    NotImplementedError) when the backend's runtime library is not installed here.
    """
    if name == AUTO:
        return select_backend(**kwargs)
    if name not in BACKENDS:
        raise ValueError(f"unknown inference backend '{name}'; available: {sorted([*BACKENDS, AUTO])}")
    if name == "torch" and resolve_device(str(kwargs.get("device", "cpu"))).type == "cuda":
        return _torch_cuda_graph()(**kwargs)
    return BACKENDS[name]()(**kwargs)
