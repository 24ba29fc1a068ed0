"""The OTF decision as one ONNX graph: tracing, checking against torch, files and the CLI.

- :mod:`.graph`: :class:`OTFGraph`, the graph's inputs/outputs, tracing, :class:`GraphTemplate`.
- :mod:`.check`: parity of an exported graph with the torch policy (onnxruntime, lazily).
- :mod:`.onnx_file`: :func:`export_onnx` (a verified file) and ``python -m expo_core.export``.

Everything is importable from ``expo_core.export``; the submodules import one way only
(graph <- check <- onnx_file).
"""

from .check import (
    Parity,
    compare_with_torch,
    model_batch,
    ort_session,
    parity,
    verify_onnx,
    verify_onnx_report,
)
from .graph import (
    BATCH_AXIS,
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    DEFAULT_RTOL,
    INITIALIZER_PREFIX,
    INPUT_OBS,
    INPUT_PROPRIO,
    ONNX_FORMAT,
    OUTPUT_NAMES,
    ExportMismatchError,
    GraphTemplate,
    OTFGraph,
    Runner,
    dynamic_axes,
    encoder_digest,
    export_onnx_bytes,
    input_dtypes,
    input_shapes,
    load_acting_policy,
    noise_shapes,
    obs_spec_of,
    observation_shapes,
    onnx_metadata,
    random_inputs,
    read_onnx_metadata,
    torch_reference,
    uses_ddpm,
    weights_sha256,
)
from .onnx_file import ExportInfo, export_onnx, main

__all__ = [
    "BATCH_AXIS",
    "DEFAULT_ATOL",
    "DEFAULT_OPSET",
    "DEFAULT_RTOL",
    "INITIALIZER_PREFIX",
    "INPUT_OBS",
    "INPUT_PROPRIO",
    "ONNX_FORMAT",
    "OUTPUT_NAMES",
    "ExportInfo",
    "ExportMismatchError",
    "GraphTemplate",
    "OTFGraph",
    "Parity",
    "Runner",
    "compare_with_torch",
    "dynamic_axes",
    "encoder_digest",
    "export_onnx",
    "export_onnx_bytes",
    "input_dtypes",
    "input_shapes",
    "load_acting_policy",
    "main",
    "model_batch",
    "noise_shapes",
    "obs_spec_of",
    "observation_shapes",
    "onnx_metadata",
    "ort_session",
    "parity",
    "random_inputs",
    "read_onnx_metadata",
    "torch_reference",
    "uses_ddpm",
    "verify_onnx",
    "verify_onnx_report",
    "weights_sha256",
]
