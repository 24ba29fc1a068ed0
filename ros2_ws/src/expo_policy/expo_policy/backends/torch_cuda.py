"""Torch on a CUDA GPU with the OTF decision captured as one CUDA graph.

At N=8, T=10 an eager decision launches several hundred small kernels (10 denoising steps of a
few layers each, the editor, 10 critics); on a GPU their launch overhead, not the maths, sets the
latency. :class:`CudaGraphTorchBackend` records :class:`expo_core.export.OTFGraph` (the same
``policy.decide`` with explicit noise the ONNX export traces) once into a ``torch.cuda.CUDAGraph``
with static input/output buffers. Around the replay a decision costs as few host round trips as
it can (measured on an H200 before this layout: replay ~0.74 ms, the whole decision 0.95 ms p50):
the observation goes in through a pinned host buffer (one asynchronous copy), the noise inputs are
views of one flat buffer (one ``normal_`` from a seeded CUDA generator fills them all), and the
graph writes its four outputs into one flat float32 buffer (:class:`PackedDecision`) that comes
back in one asynchronous copy to pinned memory followed by one stream synchronization.

``compile=True`` (a bench row, ``bench_policy``'s "torch cuda-graph + inductor (cuda)", not yet
the node's: never measured on a GPU): :func:`capture` first compiles the decision with
``torch.compile`` (inductor, static shapes, one graph), whose fused Triton kernels replace most of
the ~336 small aten ops a decision runs at N=8, T=10 (published sizes; the layer norms, SiLUs,
residual adds and the denoising updates' elementwise chains each become one kernel with their
neighbours), then captures the compiled kernels as above. The first capture compiles (tens of
seconds); whether a swap's capture then reuses the compiled code (same shapes, new weights) or
compiles again is up to torch.compile's cache and was not measured: the node does not use it yet.

Weight hot-swap: :meth:`prepare` (the policy node's weights worker thread) builds the new policy
on the GPU and captures a new graph on a side stream with ``capture_error_mode="thread_local"``
(so the control thread may keep replaying the running graph meanwhile); :meth:`commit` swaps the
reference. A captured graph reads its weights from fixed addresses, so each capture owns its
policy; the old one is freed when no decision holds it any more.
Not run on a GPU in this repository's CI (CPU only): the tests skip with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from expo_core.export import OTFGraph, noise_shapes, observation_shapes
from expo_core.policy import ExpoPolicy

from .base import BackendUnavailableError, Decision, check_compatible, resolve_device
from .torch_eager import TorchBackend


class PackedDecision(torch.nn.Module):
    """:class:`~expo_core.export.OTFGraph` with one flat float32 output, ``[action (d),
    candidates (K*d), q (K), index (1)]`` (K = 2N; the index as a float, exact below 2**24), so a
    replay's results come back in one copy; :func:`unpack_decision` reads it."""

    def __init__(self, policy: ExpoPolicy) -> None:
        super().__init__()
        self.otf = OTFGraph(policy)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        action, candidates, q, index = self.otf(*inputs)
        parts = (action, candidates, q, index.to(action.dtype))
        return torch.cat([p.reshape(-1) for p in parts])


def packed_size(act_dim: int, num_candidates: int) -> int:
    """Length of :class:`PackedDecision`'s output at batch 1."""
    return act_dim + num_candidates * act_dim + num_candidates + 1


def unpack_decision(flat: np.ndarray, act_dim: int, num_candidates: int) -> Decision:
    """The :class:`Decision` in a :class:`PackedDecision` output (copies: the buffer is reused)."""
    d, k = act_dim, num_candidates
    if flat.shape != (packed_size(d, k),):
        raise ValueError(f"packed decision has shape {flat.shape}, expected ({packed_size(d, k)},)")
    action = flat[:d].copy()
    candidates = flat[d : d + k * d].reshape(k, d).copy()
    q = flat[d + k * d : d + k * d + k].copy()
    return Decision(action, candidates, q, int(flat[-1]))


def noise_views(flat: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> tuple[torch.Tensor, ...]:
    """Views of ``flat`` (1-D, exactly as long as all ``shapes`` together) with those shapes,
    in order: one ``flat.normal_()`` fills every noise input."""
    sizes = [math.prod(s) for s in shapes]
    if flat.dim() != 1 or flat.numel() != sum(sizes):
        raise ValueError(f"noise buffer of shape {tuple(flat.shape)} for noise shapes {list(shapes)}")
    return tuple(part.view(s) for part, s in zip(torch.split(flat, sizes), shapes))


@dataclass(frozen=True)
class CapturedDecision:
    """One policy and its captured decision: static ``inputs`` (obs first, then the noise in
    ``noise_shapes`` order: views of ``noise``), the flat ``packed`` output the replay writes,
    pinned host buffers for the observation and the output, the graph."""

    policy: ExpoPolicy
    inputs: tuple[torch.Tensor, ...]
    noise: torch.Tensor
    packed: torch.Tensor
    host_obs: torch.Tensor
    host_out: torch.Tensor
    graph: Any  # torch.cuda.CUDAGraph


def packed_module(policy: ExpoPolicy, compile: bool = False) -> torch.nn.Module:
    """``PackedDecision(policy)``, compiled by ``torch.compile`` (inductor, static shapes, no
    graph break allowed) when ``compile``; the compilation runs at its first call."""
    module = PackedDecision(policy)
    if compile:
        return torch.compile(module, fullgraph=True, dynamic=False)
    return module


def capture(
    policy: ExpoPolicy, device: torch.device, warmup: int = 3, compile: bool = False
) -> CapturedDecision:
    """Capture ``PackedDecision(policy)`` (``policy`` already on ``device``, eval) at batch 1;
    ``compile``: its :func:`packed_module` compiled first (by the warm-up calls)."""
    module = packed_module(policy, compile)
    cfg = policy.cfg
    (obs_shape,) = observation_shapes(cfg).values()
    shapes = list(noise_shapes(cfg).values())
    noise = torch.zeros(sum(math.prod(s) for s in shapes), device=device)
    inputs = (torch.zeros(obs_shape, device=device), *noise_views(noise, shapes))
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(warmup):  # allocator and cuBLAS handles, outside the capture
            module(*inputs)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
            packed = module(*inputs)
    side.synchronize()
    host_obs = torch.zeros(obs_shape, pin_memory=True)
    host_out = torch.zeros(packed.shape, pin_memory=True)
    return CapturedDecision(policy, inputs, noise, packed, host_obs, host_out, graph)


@dataclass(frozen=True)
class _CapturedPrepared:
    captured: CapturedDecision


class CudaGraphTorchBackend(TorchBackend):
    """:class:`~expo_policy.backends.TorchBackend` replaying a captured CUDA graph; same
    arguments (``device`` must resolve to CUDA). ``make_backend("torch", device="cuda")``
    builds this one. Noise comes from a seeded CUDA ``torch.Generator``. ``compile``: the captured
    decision is the inductor-compiled one (module doc)."""

    name = "torch"
    supports_pixels = False  # the captured decision takes a state vector; pixels: eager torch
    supports_chunks = False  # OTFGraph computes one action per decision; chunks: eager torch

    def __init__(
        self,
        device: str = "cuda",
        seed: int = 0,
        num_base_samples: int | None = None,
        num_threads: int = 0,
        compile: bool = False,
    ) -> None:
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"torch CUDA graphs need a CUDA GPU; torch {torch.__version__} sees none"
            )
        if resolve_device(device).type != "cuda":
            raise ValueError(f"CudaGraphTorchBackend runs on CUDA, not on device '{device}'")
        super().__init__(device, seed, num_base_samples, num_threads)
        self.compile = compile
        self._captured: CapturedDecision | None = None

    @property
    def captured(self) -> CapturedDecision:
        if self._captured is None:
            raise RuntimeError("CudaGraphTorchBackend has no weights: call load() or load_bundle() first")
        return self._captured

    @property
    def policy(self) -> ExpoPolicy:
        return self.captured.policy

    def load_bundle(self, data: bytes, sha256: str | None) -> None:
        self._captured = capture(self._build(data, sha256), self.device, compile=self.compile)
        self._gen = torch.Generator(self.device).manual_seed(self._seed)

    def prepare(self, data: bytes, sha256: str) -> _CapturedPrepared:
        new = self._build(data, sha256)
        check_compatible(self.policy, new)
        return _CapturedPrepared(capture(new, self.device, compile=self.compile))

    def commit(self, prepared: Any) -> None:
        if not isinstance(prepared, _CapturedPrepared):
            raise TypeError(
                f"CudaGraphTorchBackend.commit expects what prepare() returned, got {type(prepared)}"
            )
        self._captured = prepared.captured

    def decide(self, obs: np.ndarray) -> Decision:
        c = self.captured  # one capture for the whole decision, even if a commit follows
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, -1)
        want = c.policy.cfg.obs_dim
        if x.shape[1] != want:
            raise ValueError(f"observation has {x.shape[1]} values, the policy expects {want}")
        c.host_obs.copy_(x)
        c.inputs[0].copy_(c.host_obs, non_blocking=True)
        c.noise.normal_(generator=self._gen)
        c.graph.replay()
        c.host_out.copy_(c.packed, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        cfg = c.policy.cfg
        return unpack_decision(c.host_out.numpy(), cfg.act_dim, 2 * cfg.num_samples)


def eager_difference(backend: CudaGraphTorchBackend, obs: np.ndarray, decisions: int = 3) -> float:
    """The largest absolute difference of the candidates between ``decisions`` replays of
    ``backend`` and :class:`~expo_core.export.OTFGraph` run eagerly on each replay's own static
    inputs (the noise it drew): the check of a capture, compiled or not."""
    worst = 0.0
    for _ in range(decisions):
        d = backend.decide(obs)
        c = backend.captured
        with torch.no_grad():
            ref = OTFGraph(c.policy)(*c.inputs)
        worst = max(worst, float(np.abs(d.candidates - ref[1][0].cpu().numpy()).max()))
    return worst
