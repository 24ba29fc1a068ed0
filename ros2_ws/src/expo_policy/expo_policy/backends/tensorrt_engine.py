"""TensorRT backend: the exported OTF graph as a TensorRT engine on a CUDA GPU.

The engine is built from the same ONNX graph the onnxruntime backend runs (``expo_core.export``,
the :class:`~expo_core.export.GraphTemplate` with the weights copied in) with the TensorRT Python
API (ONNX parser, ``build_serialized_network``) and ``BuilderFlag.REFIT``: its weights can be
replaced without a rebuild. Engines are cached on disk under :func:`engine_cache_key`, a sha256 of
the template graph (the config and network structure, not the weights), TensorRT version, GPU
name and compute capability, precision and workspace; a JSON beside each engine records the
sha256 of the ONNX (so of the weights) it holds. Loading weights:

* cached engine holding exactly these weights: deserialize it, nothing else;
* cached engine of the same structure, other weights: deserialize it and refit the new weights
  (``OnnxParserRefitter.refit_from_bytes`` where TensorRT has it, else ``Refitter`` with
  :func:`refit_weights`, the engine's weight names mapped to the policy's tensors): milliseconds
  to a second rather than the minutes of a build;
* nothing cached: build (seconds to minutes), cache.

A hot swap (``prepare`` in the weights worker thread) deserializes a second engine from the
in-memory plan and refits that one, so the running engine is never touched while the control loop
executes it; ``commit`` swaps the reference.

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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from expo_core.export import (
    DEFAULT_OPSET,
    INITIALIZER_PREFIX,
    OUTPUT_NAMES,
    GraphTemplate,
    Runner,
    compare_with_torch,
)
from expo_core.policy import ExpoPolicy

from .base import BackendUnavailableError
from .onnx_runtime import GraphBackend

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


def engine_cache_key(
    template_sha256: str,
    tensorrt_version: str,
    gpu_name: str,
    capability: tuple[int, int],
    fp16: bool,
    workspace_mib: int,
) -> str:
    """sha256 naming a cached refittable engine: everything the build depends on except the
    weights (a refit supplies those). ``template_sha256``: sha256 of the template graph bytes."""
    key = {
        "template_sha256": template_sha256,
        "tensorrt": tensorrt_version,
        "gpu": gpu_name,
        "capability": list(capability),
        "fp16": bool(fp16),
        "workspace_mib": int(workspace_mib),
        "refit": True,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def refit_weights(template: GraphTemplate, policy: ExpoPolicy, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The weights a refit needs: each refittable weight name of the engine (the template's ONNX
    initializer names, ``"policy." + state-dict key``) -> ``policy``'s tensor as a contiguous
    float32 array. Raises RuntimeError for a name that is not a policy tensor of the template
    (the engine was built from another graph) or a tensor whose shape differs from it."""
    state = policy.state_dict()
    out: dict[str, np.ndarray] = {}
    foreign = []
    for name in names:
        key = name[len(INITIALIZER_PREFIX) :] if name.startswith(INITIALIZER_PREFIX) else None
        if key is None or key not in template.slots or key not in state:
            foreign.append(name)
            continue
        t = state[key].detach().cpu().contiguous()
        if tuple(t.shape) != template.shapes[key]:
            raise RuntimeError(
                f"refit: {key} is {tuple(t.shape)}, the engine's graph has {template.shapes[key]}"
            )
        out[name] = np.ascontiguousarray(t.numpy(), dtype=np.float32)
    if foreign:
        raise RuntimeError(
            f"refit: the engine has weights that are not policy tensors: {sorted(foreign)[:5]}"
        )
    return out


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
    supports_pixels = False  # uint8 camera inputs not built or run with TensorRT yet

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
        self._plans: dict[str, tuple[bytes, str]] = {}  # cache key -> (plan, ONNX sha256 it holds)
        self.refitted = False  # whether the last compile refit a cached engine

    # --- engine ------------------------------------------------------------------------------
    def engine_key(self, template: GraphTemplate) -> str:
        """:func:`engine_cache_key` for ``template`` on this backend's GPU and settings."""
        props = torch.cuda.get_device_properties(self.device)
        return engine_cache_key(
            hashlib.sha256(template.model).hexdigest(),
            self.trt.__version__,
            props.name,
            (props.major, props.minor),
            self.fp16,
            self.workspace_mib,
        )

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
        config.set_flag(trt.BuilderFlag.REFIT)  # weights swap in by refit, without a rebuild
        if self.fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT failed to build the engine (see its log above)")
        return bytes(serialized)

    def _plan(self, template: GraphTemplate, model: bytes, onnx_sha256: str) -> tuple[bytes, str, Path]:
        """(refittable plan, sha256 of the ONNX whose weights it holds, cache path): from memory,
        the disk cache, or a build (then cached)."""
        key = self.engine_key(template)
        path = self.cache_dir / f"{key}.engine"
        if key in self._plans:
            return (*self._plans[key], path)
        info = path.with_suffix(".json")
        if path.is_file() and info.is_file():
            try:
                held = json.loads(info.read_text())["onnx_sha256"]
                self._plans[key] = (path.read_bytes(), held)
                return (*self._plans[key], path)
            except (OSError, ValueError, KeyError) as e:
                log.warning("ignoring the unreadable TensorRT cache entry %s: %s", path, e)
        log.info("building a refittable TensorRT engine (cache miss %s)", path.name)
        data = self._build_engine(model)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for dst, blob in ((path, data), (info, json.dumps({"onnx_sha256": onnx_sha256}).encode())):
                tmp = dst.with_suffix(f"{dst.suffix}.tmp{os.getpid()}")
                tmp.write_bytes(blob)
                tmp.replace(dst)
        except OSError as e:  # a read-only cache costs a rebuild next time, nothing else
            log.warning("could not cache the TensorRT engine at %s: %s", path, e)
        self._plans[key] = (data, onnx_sha256)
        return data, onnx_sha256, path

    def _refit(self, engine: Any, template: GraphTemplate, policy: ExpoPolicy, model: bytes) -> None:
        """Replace every weight of ``engine`` (deserialized, not yet running) by ``policy``'s."""
        trt = self.trt
        refitter = trt.Refitter(engine, self._logger)
        if hasattr(trt, "OnnxParserRefitter"):  # TensorRT >= 10: maps ONNX initializers itself
            if not trt.OnnxParserRefitter(refitter, self._logger).refit_from_bytes(model):
                raise RuntimeError("TensorRT could not refit the engine from the ONNX weights")
        else:
            arrays = refit_weights(template, policy, refitter.get_all_weights())  # kept alive to the refit
            for name, arr in arrays.items():
                if not refitter.set_named_weights(name, trt.Weights(arr)):
                    raise RuntimeError(f"TensorRT refused the refit weight {name}")
        missing = list(refitter.get_missing_weights())
        if missing:
            raise RuntimeError(f"TensorRT refit misses weights {missing[:5]}")
        if not refitter.refit_cuda_engine():
            raise RuntimeError("TensorRT refit_cuda_engine failed")

    def _compile(
        self, policy: ExpoPolicy, template: GraphTemplate, model: bytes, onnx_sha256: str
    ) -> tuple[Runner, float | None]:
        trt = self.trt
        with torch.cuda.device(self.device):
            data, held, path = self._plan(template, model, onnx_sha256)
            engine = trt.Runtime(self._logger).deserialize_cuda_engine(data)
            if engine is None:  # stale or foreign cache file: rebuild once
                path.unlink(missing_ok=True)
                self._plans.pop(path.stem, None)
                data, held, path = self._plan(template, model, onnx_sha256)
                engine = trt.Runtime(self._logger).deserialize_cuda_engine(data)
            if engine is None:
                raise RuntimeError("TensorRT could not deserialize the engine it built")
            self.refitted = held != onnx_sha256
            if self.refitted:
                self._refit(engine, template, policy, model)
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
