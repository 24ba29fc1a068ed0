"""Backends that run the exported OTF graph (``expo_core.export``), and the ONNX Runtime one.

:class:`GraphBackend` holds what they share. Loading weights decodes and verifies the bundle,
traces a :class:`~expo_core.export.GraphTemplate` for its config (~0.5 s at published sizes),
copies the weights into it and compiles the result (:meth:`GraphBackend._compile`: an
onnxruntime session, a TensorRT engine), then checks it against eager torch. A weight swap
(:meth:`~GraphBackend.prepare`, run by the policy node in its weights worker thread) does the
same but reuses the running template when the config is unchanged: re-tracing holds the GIL in
C++ stretches of up to ~80 ms, which stalled the control loop thread (measured p99 93 ms per
decision during a re-export on 2 cores), while the byte copy into the template does not.
:meth:`~GraphBackend.commit` stays a reference swap. A decision draws the graph's noise inputs
(standard normal, float32) from one seeded ``numpy.random.Generator`` and runs the graph once.
Pixel weights give the graph with the frozen encoder (uint8 camera inputs + proprio; the
template bakes the encoder in and swaps the EXPO part, which is all the learner changes).

:class:`OnnxRuntimeBackend` runs the graph under onnxruntime: the CUDA execution provider when
asked for (``device`` cuda/auto) and present, else the CPU one. On CPU it runs, where it can, the
lean graph of the same decision (``expo_core.export.lean``: 2-D ``Gemm`` with prepacked weights,
constant time shares, the critics' first layers as one matmul; 1.1-1.2x the traced graph's
speed at N=8, T=10 on one core), built from the weights without tracing; its swaps copy new
weights into a :class:`~expo_core.export.lean.LeanTemplate` of the config as the traced graph's
do. A pixel policy runs there as per-camera encoder graphs in front of the lean graph of its EXPO
part (``expo_core.export.pixel_lean``: 2.23 ms p50 against the traced graph's 2.64 at published
sizes with the cpu encoder); its encoder graphs are built once per frozen encoder and kept across
swaps. Action chunks, DDIM acting and a random critic subset per decision keep the traced graph
(``graph``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from expo_core.checkpoint import WeightsError, acting_policy_from_weights
from expo_core.config import ExpoConfig
from expo_core.export import (
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    DEFAULT_RTOL,
    INPUT_OBS,
    OUTPUT_NAMES,
    GraphTemplate,
    Runner,
    compare_with_torch,
    noise_shapes,
    ort_session,
)
from expo_core.export.lean import LeanTemplate, lean_unsupported
from expo_core.export.pixel_lean import (
    PixelLeanRunner,
    PixelLeanTemplate,
    pixel_lean_runner,
    pixel_lean_unsupported,
)
from expo_core.pixel_agent import PixelPolicy
from expo_core.policy import ExpoPolicy

from .base import (
    BackendUnavailableError,
    Decision,
    InferenceBackend,
    Observation,
    check_compatible,
    pixel_feeds,
    state_vector,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledGraph:
    """One set of weights, exported and compiled: everything a decision needs, swapped as one.

    ``policy`` is the CPU torch policy the graph holds (config, swap shape checks); ``template``
    the graph it was copied into (a :class:`~expo_core.export.GraphTemplate`, or for the lean
    graph a :class:`~expo_core.export.lean.LeanTemplate`, for a pixel policy's lean path a
    :class:`~expo_core.export.pixel_lean.PixelLeanTemplate`); ``noise`` the graph's noise inputs
    (name -> shape); ``traced`` whether this build traced a new template; ``export_s`` the
    seconds to produce the ONNX bytes (tracing included when ``traced``), ``compile_s`` to
    compile and check them; ``max_abs_diff`` the check's largest torch-vs-graph difference, None
    when not checked; ``lean`` whether it is the lean graph (``expo_core.export.lean``)."""

    policy: ExpoPolicy | PixelPolicy
    template: GraphTemplate | LeanTemplate | PixelLeanTemplate
    run: Runner
    noise: dict[str, tuple[int, ...]]
    onnx_sha256: str
    traced: bool
    export_s: float
    compile_s: float
    max_abs_diff: float | None
    lean: bool = False


@dataclass(frozen=True)
class _GraphPrepared:
    graph: CompiledGraph


class GraphBackend(InferenceBackend):
    """Shared part of the backends that run the exported OTF graph; see the module docstring.

    Args:
        seed: seed of the numpy Generator that draws the noise inputs.
        num_base_samples: N base samples per decision (2N candidates); None keeps the weights'
            ``num_samples``. N is part of the graph's shapes, so it is exported with it.
        opset: ONNX opset of the export.
    """

    def __init__(
        self, seed: int = 0, num_base_samples: int | None = None, opset: int = DEFAULT_OPSET
    ) -> None:
        if num_base_samples is not None and num_base_samples < 1:
            raise ValueError(f"num_base_samples must be >= 1, got {num_base_samples}")
        self._seed = int(seed)
        self._n = num_base_samples
        self.opset = int(opset)
        self._graph: CompiledGraph | None = None
        self._rng = np.random.default_rng(self._seed)
        # camera -> (frame, template, features (1, F), ms): encode_ahead's latest per camera
        self._ahead: dict[str, tuple[np.ndarray, Any, np.ndarray, float]] = {}

    @abstractmethod
    def _compile(
        self,
        policy: ExpoPolicy | PixelPolicy,
        template: GraphTemplate | LeanTemplate | PixelLeanTemplate,
        model: bytes,
        onnx_sha256: str,
    ) -> tuple[Runner, float | None]:
        """Compile the serialized ONNX ``model`` (``template`` holding ``policy``'s weights);
        returns the runner and, when it checked the result against torch, the
        max abs difference (else None)."""

    def _use_lean(self, policy: ExpoPolicy | PixelPolicy) -> bool:
        """Whether to run ``policy`` as the lean graph (``expo_core.export.lean``); the base
        class never does (TensorRT refits the traced template's weights)."""
        return False

    @property
    def compiled(self) -> CompiledGraph:
        """The running graph (timings and hashes included)."""
        if self._graph is None:
            raise RuntimeError(f"{type(self).__name__} has no weights: call load() or load_bundle() first")
        return self._graph

    @property
    def policy(self) -> ExpoPolicy | PixelPolicy:
        """The CPU torch policy whose weights the running graph holds (as TorchBackend.policy)."""
        return self.compiled.policy

    @property
    def config(self) -> ExpoConfig:
        return self.compiled.policy.cfg

    @property
    def num_base_samples(self) -> int:
        return self.compiled.policy.cfg.num_samples

    def _build(self, data: bytes, sha256: str | None, running: CompiledGraph | None) -> CompiledGraph:
        try:
            policy = acting_policy_from_weights(data, sha256)  # verifies hash, format, shapes, finiteness
        except WeightsError:
            raise
        except Exception as e:  # e.g. safetensors' own error on a truncated blob without a hash
            raise WeightsError(f"undecodable weights: {type(e).__name__}: {e}") from e
        self._check_kind(policy)
        if self._n is not None:
            policy.cfg = policy.cfg.replace(num_samples=self._n)
        if running is not None:
            check_compatible(running.policy, policy)
        lean = self._use_lean(policy)
        pixel = policy if isinstance(policy, PixelPolicy) else None
        kind = (PixelLeanTemplate if pixel is not None else LeanTemplate) if lean else GraphTemplate
        template = None
        if running is not None and isinstance(running.template, kind) and running.template.fits(policy):
            template = running.template
        try:
            t0 = time.perf_counter()
            traced = False
            if template is None and lean and pixel is not None:
                template = PixelLeanTemplate.build(pixel)  # traces the small encoder graphs only
            elif template is None and lean:
                template = LeanTemplate.build(policy.cfg)  # ~0.1 s: no tracing
            elif template is None:
                if running is not None:
                    log.warning("%s: new weights need a new template: re-tracing the graph", self.name)
                template = GraphTemplate.export(policy.cfg, opset=self.opset, pixel=pixel)
                traced = True
            model = template.with_weights(policy)
            t1 = time.perf_counter()
            onnx_sha = hashlib.sha256(model).hexdigest()
            run, diff = self._compile(policy, template, model, onnx_sha)
            t2 = time.perf_counter()
        except (WeightsError, BackendUnavailableError):
            raise
        except Exception as e:  # exporter, runtime or check failure: keep the old weights
            raise WeightsError(
                f"{self.name}: exporting/compiling the OTF graph failed ({type(e).__name__}: {e})"
            ) from e
        return CompiledGraph(
            policy, template, run, noise_shapes(policy.cfg), onnx_sha, traced, t1 - t0, t2 - t1, diff, lean
        )

    def load_bundle(self, data: bytes, sha256: str | None) -> None:
        self._graph = self._build(data, sha256, None)
        self._rng = np.random.default_rng(self._seed)

    def prepare(self, data: bytes, sha256: str) -> _GraphPrepared:
        """Decode, verify, copy into the running template, compile and check (~0.2 s at published
        sizes with onnxruntime, more to build a TensorRT engine): run it off the control loop."""
        return _GraphPrepared(self._build(data, sha256, self.compiled))

    def commit(self, prepared: Any) -> None:
        if not isinstance(prepared, _GraphPrepared):
            raise TypeError(
                f"{type(self).__name__}.commit expects what prepare() returned, got {type(prepared)}"
            )
        self._graph = prepared.graph

    def encode_ahead(self, camera: str, frame: np.ndarray) -> bool:
        """Keeps ``frame``'s features when the running graph is a pixel policy's lean path
        (:class:`~expo_core.export.pixel_lean.PixelLeanRunner`); the traced graph encodes inside."""
        g = self._graph
        run = None if g is None else g.run
        if not isinstance(run, PixelLeanRunner) or camera not in run.cameras:
            return False
        s = run.template.encoder_size
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (s, s, 3):
            return False
        t0 = time.perf_counter()
        z = run.encode(camera, frame)
        # One tuple per camera, replaced whole: a decision in another thread reads it atomically.
        self._ahead[camera] = (frame, run.template, z, (time.perf_counter() - t0) * 1e3)
        return True

    def decide(self, obs: Observation) -> Decision:
        g = self.compiled  # one reference for the whole decision, even if a commit follows
        if isinstance(g.policy, PixelPolicy):
            feeds = pixel_feeds(g.policy.obs_spec, obs)
        else:
            feeds = {INPUT_OBS: state_vector(obs, g.policy.cfg.obs_dim)}
        for name, shape in g.noise.items():
            feeds[name] = self._rng.standard_normal(shape, dtype=np.float32)
        ahead_ms = 0.0
        if isinstance(g.run, PixelLeanRunner):
            ready = {}  # features encoded as this very frame arrived; the runner encodes the rest
            for cam in g.run.cameras:
                hit = self._ahead.get(cam)
                if hit is not None and hit[0] is obs[f"{cam}_image"] and hit[1] is g.run.template:
                    ready[cam], ahead_ms = hit[2], ahead_ms + hit[3]
            action, candidates, q, index = g.run(feeds, ready)
        else:
            action, candidates, q, index = g.run(feeds)
        return Decision(
            action=np.asarray(action[0], dtype=np.float32),
            candidates=np.asarray(candidates[0], dtype=np.float32),
            q=np.asarray(q[0], dtype=np.float32),
            index=int(index[0]),
            ahead_ms=ahead_ms,
        )


_DEVICE = re.compile(r"^(cpu|auto|cuda(?::(\d+))?)$")
CUDA_EP, CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"
#: :class:`OnnxRuntimeBackend`'s ``graph`` values
GRAPHS = ("auto", "lean", "traced")


def ort_providers(device: str, available: Sequence[str]) -> list[Any]:
    """onnxruntime providers for ``device``: 'cpu'; 'cuda' or 'cuda:N' (raises
    BackendUnavailableError when this onnxruntime has no CUDA provider); 'auto' (CUDA when
    available, else CPU). CPU always comes last as the fallback for unsupported nodes."""
    m = _DEVICE.match(device)
    if m is None:
        raise ValueError(f"device '{device}' is invalid; use cpu, cuda, cuda:N or auto")
    if device == "cpu" or (device == "auto" and CUDA_EP not in available):
        return [CPU_EP]
    if CUDA_EP not in available:
        raise BackendUnavailableError(
            f"device '{device}' requested but this onnxruntime has no {CUDA_EP} "
            f"(available: {list(available)}; install onnxruntime-gpu)"
        )
    return [(CUDA_EP, {"device_id": int(m.group(2) or 0)}), CPU_EP]


class OnnxRuntimeBackend(GraphBackend):
    """The exported OTF graph under onnxruntime.

    Args:
        device: 'cpu', 'cuda', 'cuda:N' or 'auto' (the CUDA execution provider when installed).
        seed, num_base_samples, opset: see :class:`GraphBackend`.
        num_threads: intra-op threads of the session (0 = onnxruntime's default, one per core).
            1 keeps latency steady on a small shared CPU (as for :class:`TorchBackend`).
        allow_spinning: let idle intra-op workers busy-wait (only matters with num_threads != 1;
            off by default: on cores shared with other processes a spinning worker steals time).
        check_trials: random (obs, noise) inputs on which every new graph is compared with eager
            torch before it is used (``compare_with_torch``; tolerance 1e-4 + 1e-5 * |torch| on
            CPU, atol = rtol = 1e-2 on CUDA where matmuls may use TF32); 0 skips the check.
        graph: which graph runs: "auto" (default) the lean graph on the CPU provider wherever
            ``lean_unsupported`` allows it, else the traced one; "lean" the lean graph always
            (WeightsError for weights it cannot express; CPU and CUDA providers alike); "traced"
            the traced :class:`~expo_core.export.GraphTemplate` graph always.
    """

    name = "onnxruntime"

    def __init__(
        self,
        device: str = "auto",
        seed: int = 0,
        num_base_samples: int | None = None,
        num_threads: int = 1,
        opset: int = DEFAULT_OPSET,
        check_trials: int = 1,
        allow_spinning: bool = False,
        graph: str = "auto",
    ) -> None:
        try:
            import onnxruntime
        except ImportError as e:
            raise BackendUnavailableError(
                "inference backend 'onnxruntime' is not available: onnxruntime is not installed "
                "(pip install onnxruntime, or onnxruntime-gpu for CUDA)"
            ) from e
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = onnxruntime default), got {num_threads}")
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
        super().__init__(seed, num_base_samples, opset)
        self.graph = graph
        self.providers = ort_providers(device, onnxruntime.get_available_providers())
        self.num_threads = int(num_threads)
        self.allow_spinning = bool(allow_spinning)
        self.check_trials = int(check_trials)
        on_cuda = self.providers[0] != CPU_EP
        self.check_tolerance = (1e-2, 1e-2) if on_cuda else (DEFAULT_ATOL, DEFAULT_RTOL)

    def _use_lean(self, policy: ExpoPolicy | PixelPolicy) -> bool:
        if self.graph == "traced":
            return False
        why = pixel_lean_unsupported(policy) if isinstance(policy, PixelPolicy) else lean_unsupported(policy)
        if self.graph == "lean" and why is not None:
            raise WeightsError(f"{self.name}: graph 'lean' asked, but {why}")
        return why is None and (self.graph == "lean" or self.providers[0] == CPU_EP)

    def _compile(
        self,
        policy: ExpoPolicy | PixelPolicy,
        template: GraphTemplate | LeanTemplate | PixelLeanTemplate,
        model: bytes,
        onnx_sha256: str,
    ) -> tuple[Runner, float | None]:
        def make_session(graph: bytes) -> Any:
            return ort_session(graph, self.providers, self.num_threads, self.allow_spinning)

        running = None if self._graph is None else self._graph.run
        if isinstance(running, PixelLeanRunner) and running.template is template:
            # a swap of the EXPO part: the frozen encoder's sessions are kept, only the lean graph is new
            run: Runner = PixelLeanRunner(template, running.encoder_sessions, make_session(model))
        elif isinstance(template, PixelLeanTemplate):
            run = pixel_lean_runner(template, model, make_session)
        else:
            session = make_session(model)
            names = list(OUTPUT_NAMES)

            def run(feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
                return session.run(names, feeds)

        diff = None
        if self.check_trials > 0:
            atol, rtol = self.check_tolerance
            diff = compare_with_torch(policy, run, trials=self.check_trials, atol=atol, rtol=rtol)
        return run, diff
