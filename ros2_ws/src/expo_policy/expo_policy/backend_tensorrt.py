"""TensorRT backend: the exported OTF graph as a TensorRT engine on a CUDA GPU.

The engine is built from the same ONNX graph the onnxruntime backend runs (``expo_core.export``)
with the TensorRT Python API (ONNX parser, ``build_serialized_network``), and cached on disk
under a sha256 of (ONNX bytes, TensorRT version, GPU, precision, workspace): the ONNX bytes hold
the weights, so a cache hit is the same weights built the same way. Building takes seconds to
minutes; like every graph backend it happens in ``prepare`` (the weights worker thread).

I/O buffers are torch CUDA tensors (no pycuda): a decision copies the observation and the numpy
noise (the same seeded stream as the onnxruntime backend) into pinned staging buffers, then to the
device, runs ``execute_async_v3`` on a private stream and copies the four outputs back.

fp16 uses ``BuilderFlag.FP16`` (TensorRT <= 10, weak typing; I/O stays float32). TensorRT 11
removed that flag (strong typing only): fp16 there needs an fp16 ONNX and raises here.
Written against the TensorRT 10 API and not run on a GPU yet (see the module's tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from expo_core.export import DEFAULT_OPSET, OUTPUT_NAMES, Runner, compare_with_torch
from expo_core.policy import ExpoPolicy

from .backend_onnx import GraphBackend
from .backends import BackendUnavailableError

log = logging.getLogger(__name__)

_DEVICE = re.compile(r"^(auto|cuda(?::(\d+))?)$")


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or BackendUnavailableError saying it is not installed."""
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailableError(
            "inference backend 'tensorrt' is not available on this machine: TensorRT is not "
            "installed (needs the tensorrt Python package, a CUDA GPU and torch with CUDA)"
        ) from e
    return tensorrt


def default_cache_dir() -> Path:
    """$EXPO_TRT_CACHE, else ~/.cache/expo/tensorrt."""
    env = os.environ.get("EXPO_TRT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "expo" / "tensorrt"


class TensorRTBackend(GraphBackend):
    """The exported OTF graph as a TensorRT engine.

    Args:
        device: 'cuda', 'cuda:N' or 'auto' (= 'cuda'); 'cpu' is rejected.
        seed, num_base_samples, opset: see :class:`GraphBackend`.
        num_threads: accepted for the common backend signature; unused (the GPU runs the graph).
        fp16: let TensorRT choose fp16 kernels (TensorRT <= 10); outputs then differ from torch by
            about 1e-2 rather than 1e-5.
        cache_dir: engine cache directory (None: :func:`default_cache_dir`).
        workspace_mib: builder workspace memory pool limit.
        check_trials: random inputs on which each new engine is compared with eager torch
            (tolerance atol = rtol = 1e-2 in fp32, where TensorRT may use TF32; 5e-2 in fp16);
            0 skips the check.
    """

    name = "tensorrt"

    def __init__(
        self,
        device: str = "cuda",
        seed: int = 0,
        num_base_samples: int | None = None,
        num_threads: int = 0,
        opset: int = DEFAULT_OPSET,
        fp16: bool = False,
        cache_dir: str | Path | None = None,
        workspace_mib: int = 1024,
        check_trials: int = 1,
    ) -> None:
        self.trt = import_tensorrt()
        m = _DEVICE.match(device)
        if m is None:
            raise ValueError(f"device '{device}' is invalid for TensorRT; use cuda, cuda:N or auto")
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"inference backend 'tensorrt' needs CUDA, but torch {torch.__version__} sees no GPU"
            )
        if fp16 and not hasattr(self.trt.BuilderFlag, "FP16"):
            raise BackendUnavailableError(
                f"fp16 needs BuilderFlag.FP16, which TensorRT {self.trt.__version__} no longer has "
                "(strong typing: build from an fp16 ONNX instead)"
            )
        super().__init__(seed, num_base_samples, opset)
        self.device = torch.device("cuda", int(m.group(2) or 0))
        self.fp16 = bool(fp16)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.workspace_mib = int(workspace_mib)
        self.check_trials = int(check_trials)
        self._logger = self.trt.Logger(self.trt.Logger.WARNING)

    # --- engine ------------------------------------------------------------------------------
    def engine_key(self, onnx_sha256: str) -> str:
        """sha256 naming the cached engine: the ONNX bytes and everything the build depends on."""
        props = torch.cuda.get_device_properties(self.device)
        key = {
            "onnx_sha256": onnx_sha256,
            "tensorrt": self.trt.__version__,
            "gpu": props.name,
            "capability": [props.major, props.minor],
            "fp16": self.fp16,
            "workspace_mib": self.workspace_mib,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def _build_engine(self, model: bytes) -> bytes:
        trt = self.trt
        builder = trt.Builder(self._logger)
        major = int(trt.__version__.split(".")[0])
        flags = 0
        if major < 10:  # TensorRT 8.x: explicit batch must be asked for
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(model):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse the ONNX graph: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mib << 20)
        if self.fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT failed to build the engine (see its log above)")
        return bytes(serialized)

    def _engine_bytes(self, model: bytes, onnx_sha256: str) -> tuple[bytes, Path]:
        path = self.cache_dir / f"{self.engine_key(onnx_sha256)}.engine"
        if path.is_file():
            return path.read_bytes(), path
        data = self._build_engine(model)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as e:  # a read-only cache costs a rebuild next time, nothing else
            log.warning("could not cache the TensorRT engine at %s: %s", path, e)
        return data, path

    def _compile(self, policy: ExpoPolicy, model: bytes, onnx_sha256: str) -> tuple[Runner, float | None]:
        trt = self.trt
        with torch.cuda.device(self.device):
            data, path = self._engine_bytes(model, onnx_sha256)
            engine = trt.Runtime(self._logger).deserialize_cuda_engine(data)
            if engine is None:  # stale or foreign cache file: rebuild once
                path.unlink(missing_ok=True)
                data, path = self._engine_bytes(model, onnx_sha256)
                engine = trt.Runtime(self._logger).deserialize_cuda_engine(data)
            if engine is None:
                raise RuntimeError("TensorRT could not deserialize the engine it built")
            run = _EngineRunner(trt, engine, self.device)
        diff = None
        if self.check_trials > 0:
            tol = 5e-2 if self.fp16 else 1e-2
            diff = compare_with_torch(policy, run, trials=self.check_trials, atol=tol, rtol=tol)
        return run, diff


class _EngineRunner:
    """One execution context with its device buffers, pinned host staging and stream."""

    def __init__(self, trt: Any, engine: Any, device: torch.device) -> None:
        self.engine = engine
        self.device = device
        self.context = engine.create_execution_context()
        self.stream = torch.cuda.Stream(device)
        self.inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (pinned, device)
        self.outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(engine.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            dev = torch.empty(shape, dtype=dtype, device=device)
            host = torch.empty(shape, dtype=dtype).pin_memory()
            self.context.set_tensor_address(name, dev.data_ptr())
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs)[name] = (host, dev)
        missing = [n for n in OUTPUT_NAMES if n not in self.outputs]
        if missing:
            raise RuntimeError(f"TensorRT engine lacks outputs {missing}")

    def __call__(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            for name, (host, dev) in self.inputs.items():
                host.numpy()[...] = feeds[name]
                dev.copy_(host, non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            for host, dev in self.outputs.values():
                host.copy_(dev, non_blocking=True)
            self.stream.synchronize()
        return [self.outputs[n][0].numpy().copy() for n in OUTPUT_NAMES]
