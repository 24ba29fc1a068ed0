"""Backends by name: the ``backend`` parameter's values, and ``auto``'s order of preference.

This module imports each backend (on use: their runtime libraries may be absent); no backend
imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .base import _DEVICE, BackendUnavailableError, InferenceBackend, resolve_device
from .torch_eager import TorchBackend

log = logging.getLogger(__name__)


def _onnxruntime() -> type[InferenceBackend]:
    from .onnx_runtime import OnnxRuntimeBackend  # imported on use: onnxruntime may be absent

    return OnnxRuntimeBackend


def _tensorrt() -> type[InferenceBackend]:
    from .tensorrt_engine import TensorRTBackend

    return TensorRTBackend


def _torch_cuda_graph() -> type[InferenceBackend]:
    from .torch_cuda import CudaGraphTorchBackend

    return CudaGraphTorchBackend


#: name (the ``backend`` parameter) -> the backend class, imported when first asked for.
BACKENDS: dict[str, Callable[[], type[InferenceBackend]]] = {
    "torch": lambda: TorchBackend,
    "onnxruntime": _onnxruntime,
    "tensorrt": _tensorrt,
}
AUTO = "auto"
#: ``auto`` with pixel weights on a GPU: eager torch on CUDA stands in for the CUDA-graph capture
#: (which takes a state vector only), right after it in :data:`AUTO_ORDER`.
PIXEL_CUDA_EAGER = ("torch eager (cuda)", "torch", "cuda", lambda: TorchBackend)

#: ``auto``'s candidates, fastest first: (label, backend name, device it is built for, class).
#: The order is the bench's (``make bench-policy``): on a GPU TensorRT, then onnxruntime's CUDA
#: EP, then torch replaying a CUDA graph (each an order of magnitude under eager CUDA torch at
#: N=8, T=10, which is launch-bound); on CPU onnxruntime, which there runs the lean graph
#: (``expo_core.export.lean``; 2.3x batched eager torch's p99 at N=8, T=10, one thread, in one
#: run at load 8-12: issue 15 in docs/results.md), before eager torch. Chosen by availability
#: rather than by a timed probe: a probe needs the weights (loaded after the backend is built),
#: costs seconds of export and compile per candidate at configure time, and on a shared, loaded
#: CPU its few samples rank by noise.
AUTO_ORDER: tuple[tuple[str, str, str, Callable[[], type[InferenceBackend]]], ...] = (
    ("tensorrt (cuda)", "tensorrt", "cuda", _tensorrt),
    ("onnxruntime (CUDA EP)", "onnxruntime", "cuda", _onnxruntime),
    ("torch cuda-graph (cuda)", "torch", "cuda", _torch_cuda_graph),
    ("onnxruntime (cpu)", "onnxruntime", "cpu", _onnxruntime),
    ("torch (cpu)", "torch", "cpu", lambda: TorchBackend),
)


def _order(eager_cuda: bool) -> tuple[tuple[str, str, str, Callable[[], type[InferenceBackend]]], ...]:
    if not eager_cuda:
        return AUTO_ORDER
    i = next(i for i, c in enumerate(AUTO_ORDER) if c[0] == "torch cuda-graph (cuda)")
    return (*AUTO_ORDER[: i + 1], PIXEL_CUDA_EAGER, *AUTO_ORDER[i + 1 :])


def select_backend(
    device: str = "auto", pixels: bool = False, chunks: bool = False, **kwargs: Any
) -> InferenceBackend:
    """``backend: auto``: build the first of :data:`AUTO_ORDER` that runs here and log why.

    ``device`` limits the candidates: 'cpu' skips the GPU ones, 'cuda'/'cuda:N' the CPU ones
    ('auto' tries all). A candidate is skipped when its library, provider or GPU is missing
    (BackendUnavailableError, ImportError) or it rejects the device (ValueError). The chosen
    backend's ``selection`` attribute holds the reason, also logged at INFO. Raises
    BackendUnavailableError when none can be built.

    ``pixels``: the weights to load have an image encoder (:func:`~.base.is_pixel_weights`):
    backends that refuse them (``supports_pixels`` False: TensorRT, the CUDA-graph capture) are
    skipped with that reason, and eager torch on CUDA is tried after the CUDA-graph slot.

    ``chunks``: the weights plan action chunks (``diffusion.chunk_len > 1``,
    :func:`~.base.weights_chunk_len`): only eager torch runs them (``supports_chunks``), on CUDA
    in the CUDA-graph slot's place, else on the CPU; the others are skipped with that reason."""
    if not _DEVICE.match(device):
        raise ValueError(f"device '{device}' is invalid; use cpu, cuda, cuda:N or auto")
    why: list[str] = []
    for label, name, kind, cls in _order(pixels or chunks):
        if device != "auto" and (kind == "cuda") != device.startswith("cuda"):
            why.append(f"{label}: device '{device}' asked")
            continue
        dev = device if device.startswith("cuda") else kind
        try:
            klass = cls()
            if pixels and not klass.supports_pixels:
                why.append(f"{label}: does not run pixel policies (image encoder)")
                continue
            if chunks and not klass.supports_chunks:
                why.append(f"{label}: does not run action chunks (diffusion.chunk_len > 1)")
                continue
            backend = klass(device=dev, **kwargs)
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


def make_backend(name: str, pixels: bool = False, chunks: bool = False, **kwargs: Any) -> InferenceBackend:
    """Build the backend called ``name`` with its keyword arguments (every backend takes
    ``device``, ``seed``, ``num_base_samples`` and ``num_threads``); ``auto`` picks one
    (:func:`select_backend`). ``torch`` on a CUDA device replays a captured CUDA graph.

    ``pixels``: the weights have an image encoder; ``auto`` then skips backends that refuse them,
    and ``torch`` on CUDA runs eagerly (the CUDA-graph capture takes state vectors only).
    ``chunks``: the weights plan action chunks; ``auto`` then picks eager torch, and ``torch`` on
    CUDA runs eagerly too (the captured graph computes one action per decision).

    Raises ValueError for unknown names (listing the known ones) and BackendUnavailableError (a
    NotImplementedError) when the backend's runtime library is not installed here.
    """
    if name == AUTO:
        return select_backend(pixels=pixels, chunks=chunks, **kwargs)
    if name not in BACKENDS:
        raise ValueError(f"unknown inference backend '{name}'; available: {sorted([*BACKENDS, AUTO])}")
    cuda = name == "torch" and resolve_device(str(kwargs.get("device", "cpu"))).type == "cuda"
    if cuda and not (pixels or chunks):
        return _torch_cuda_graph()(**kwargs)
    return BACKENDS[name]()(**kwargs)
