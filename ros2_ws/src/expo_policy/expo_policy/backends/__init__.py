"""Inference backends of the policy node (see :mod:`.base` for the interface).

- :mod:`.base`: the interface (:class:`InferenceBackend`, :class:`Decision`), weights sources,
  devices, :class:`BackendUnavailableError`.
- :mod:`.torch_eager`: :class:`TorchBackend`, eager torch (CPU/CUDA).
- :mod:`.onnx_runtime`: the exported OTF graph under ONNX Runtime (CPU, CUDA EP).
- :mod:`.tensorrt_engine`: the same graph as a TensorRT engine (GPU).
- :mod:`.torch_cuda`: torch replaying a captured CUDA graph (GPU).
- :mod:`.registry`: :func:`make_backend` by name and ``auto``'s :func:`select_backend`.
"""

from .base import (
    BackendUnavailableError,
    Decision,
    InferenceBackend,
    WeightsSource,
    check_compatible,
    is_pixel_weights,
    read_weights_source,
    resolve_device,
    weights_chunk_len,
)
from .registry import AUTO, AUTO_ORDER, BACKENDS, make_backend, select_backend
from .torch_eager import TorchBackend

__all__ = [
    "AUTO",
    "AUTO_ORDER",
    "BACKENDS",
    "BackendUnavailableError",
    "Decision",
    "InferenceBackend",
    "TorchBackend",
    "WeightsSource",
    "check_compatible",
    "is_pixel_weights",
    "weights_chunk_len",
    "make_backend",
    "read_weights_source",
    "resolve_device",
    "select_backend",
]
