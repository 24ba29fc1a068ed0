"""Torch on a CUDA GPU with the OTF decision captured as one CUDA graph.

At N=8, T=10 an eager decision launches several hundred small kernels (10 denoising steps of a
few layers each, the editor, 10 critics); on a GPU their launch overhead, not the maths, sets the
latency. :class:`CudaGraphTorchBackend` records :class:`expo_core.export.OTFGraph` (the same
``policy.decide`` with explicit noise the ONNX export traces) once into a ``torch.cuda.CUDAGraph``
with static input/output buffers; a decision copies the observation in, draws the noise into the
static buffers with a seeded CUDA generator, replays the graph and copies the four outputs back.

Weight hot-swap: :meth:`prepare` (the policy node's weights worker thread) builds the new policy
on the GPU and captures a new graph on a side stream with ``capture_error_mode="thread_local"``
(so the control thread may keep replaying the running graph meanwhile); :meth:`commit` swaps the
reference. A captured graph reads its weights from fixed addresses, so each capture owns its
policy; the old one is freed when no decision holds it any more.
Not run on a GPU in this repository's CI (CPU only): the tests skip with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from expo_core.export import OTFGraph, input_shapes
from expo_core.policy import ExpoPolicy

from .base import BackendUnavailableError, Decision, check_compatible, resolve_device
from .torch_eager import TorchBackend


@dataclass(frozen=True)
class CapturedDecision:
    """One policy and its captured decision: static inputs (obs first, then the noise in
    ``noise_shapes`` order), the static outputs the replay writes, the graph."""

    policy: ExpoPolicy
    inputs: tuple[torch.Tensor, ...]
    outputs: tuple[torch.Tensor, ...]
    graph: Any  # torch.cuda.CUDAGraph


def capture(policy: ExpoPolicy, device: torch.device, warmup: int = 3) -> CapturedDecision:
    """Capture ``OTFGraph(policy)`` (``policy`` already on ``device``, eval) at batch 1."""
    module = OTFGraph(policy)
    inputs = tuple(torch.zeros(s, device=device) for s in input_shapes(policy.cfg).values())
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(warmup):  # allocator and cuBLAS handles, outside the capture
            module(*inputs)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
            outputs = module(*inputs)
    side.synchronize()
    return CapturedDecision(policy, inputs, tuple(outputs), graph)


@dataclass(frozen=True)
class _CapturedPrepared:
    captured: CapturedDecision


class CudaGraphTorchBackend(TorchBackend):
    """:class:`~expo_policy.backends.TorchBackend` replaying a captured CUDA graph; same
    arguments (``device`` must resolve to CUDA). ``make_backend("torch", device="cuda")``
    builds this one. Noise comes from a seeded CUDA ``torch.Generator``."""

    name = "torch"
    supports_pixels = False  # the captured decision takes a state vector; pixels: eager torch

    def __init__(
        self, device: str = "cuda", seed: int = 0, num_base_samples: int | None = None, num_threads: int = 0
    ) -> None:
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"torch CUDA graphs need a CUDA GPU; torch {torch.__version__} sees none"
            )
        if resolve_device(device).type != "cuda":
            raise ValueError(f"CudaGraphTorchBackend runs on CUDA, not on device '{device}'")
        super().__init__(device, seed, num_base_samples, num_threads)
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
        self._captured = capture(self._build(data, sha256), self.device)
        self._gen = torch.Generator(self.device).manual_seed(self._seed)

    def prepare(self, data: bytes, sha256: str) -> _CapturedPrepared:
        new = self._build(data, sha256)
        check_compatible(self.policy, new)
        return _CapturedPrepared(capture(new, self.device))

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
        c.inputs[0].copy_(x)
        for buf in c.inputs[1:]:
            buf.normal_(generator=self._gen)
        c.graph.replay()
        action, candidates, q, index = (t.cpu() for t in c.outputs)
        return Decision(action[0].numpy(), candidates[0].numpy(), q[0].numpy(), int(index[0]))
