"""The rows ``bench_policy`` times: every inference backend that runs here at one (N, T), the
naive eager reference loop, and the pixel policy's pieces (its acting bundle, its encoder alone,
packed camera observations).

Each row is an object with ``decide(obs)``; rows that cannot run here come back as skip reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from expo_core.checkpoint import policy_from_weights, policy_weights_bytes
from expo_core.config import ExpoConfig
from expo_core.pixel_agent import PixelAgent, encoder_preset, pack_observation, pixel_expo_config
from expo_core.spec import task_obs_spec

from .backends import BackendUnavailableError, Decision, TorchBackend

BATCHED = "torch eager batched (cpu)"
NAIVE = "torch eager naive loop (cpu)"
ORT_LEAN = "onnxruntime lean graph (cpu, 1 thread)"  # what backend auto runs on CPU
PIXELS = "pixels"  # prefix of the pixel rows
CUDA_COMPILED = "torch cuda-graph + inductor (cuda)"  # CudaGraphTorchBackend(compile=True)


class NaiveLoop:
    """Reference: eager torch, one base sample at a time (its T denoising steps, its edit, the
    critics on the pair), then the argmax over all 2N candidates."""

    name = "naive"

    def __init__(self, data: bytes, sha: str, num_samples: int, seed: int = 0) -> None:
        self.policy = policy_from_weights(data, sha).eval()
        self.policy.cfg = self.policy.cfg.replace(num_samples=1)
        self.n = num_samples
        self.gen = torch.Generator().manual_seed(seed)

    def decide(self, obs: np.ndarray) -> Decision:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, -1)
        cands, qs = [], []
        for _ in range(self.n):
            res = self.policy.decide(x, self.gen)
            cands.append(res.candidates[0])
            qs.append(res.q[0])
        c, q = torch.cat(cands), torch.cat(qs)
        i = int(torch.argmax(q))
        return Decision(c[i].numpy(), c.numpy(), q.numpy(), i)


def build_rows(
    data: bytes, sha: str, n: int, threads: int, seed: int, naive: bool, compiled: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """name -> object with decide(obs), for every backend that runs here; name -> skip reason.
    ``naive``: with the naive loop's row; ``compiled``: with the inductor-compiled CUDA graph's
    (:data:`CUDA_COMPILED`; its compilation takes tens of seconds, so the bench asks for it at
    the goal's N and T only)."""
    rows: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    cuda = torch.cuda.is_available()

    def add(name: str, make: Callable[[], Any]) -> None:
        try:
            backend = make()
            if hasattr(backend, "load_bundle"):
                backend.load_bundle(data, sha)
            rows[name] = backend
        except (BackendUnavailableError, ImportError, RuntimeError, ValueError) as e:
            skipped[name] = f"{type(e).__name__}: {e}"

    add(BATCHED, lambda: TorchBackend(device="cpu", seed=seed, num_base_samples=n, num_threads=threads))
    if naive:
        add(NAIVE, lambda: NaiveLoop(data, sha, n, seed))

    def ort(device: str, num_threads: int, graph: str = "auto") -> Any:
        from .backends.onnx_runtime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            device=device, seed=seed, num_base_samples=n, num_threads=num_threads, graph=graph
        )

    add(ORT_LEAN, lambda: ort("cpu", 1, "lean"))
    add("onnxruntime lean graph (cpu, 2 threads, no spin)", lambda: ort("cpu", 2, "lean"))
    add("onnxruntime traced graph (cpu, 1 thread)", lambda: ort("cpu", 1, "traced"))
    add("onnxruntime traced graph (cpu, 2 threads, no spin)", lambda: ort("cpu", 2, "traced"))
    if cuda:
        from .backends.torch_cuda import CudaGraphTorchBackend

        add("torch eager (cuda)", lambda: TorchBackend(device="cuda", seed=seed, num_base_samples=n))
        add("torch cuda-graph (cuda)", lambda: CudaGraphTorchBackend("cuda", seed, n))
        if compiled:
            add(CUDA_COMPILED, lambda: CudaGraphTorchBackend("cuda", seed, n, compile=True))
    else:
        skipped["torch cuda-graph (cuda)"] = "CUDA not available to torch"
        if compiled:
            skipped[CUDA_COMPILED] = "CUDA not available to torch"
    add("onnxruntime (cuda)", lambda: ort("cuda", 1))

    def trt(fp16: bool) -> Any:
        from .backends.tensorrt_engine import TensorRTBackend

        return TensorRTBackend(device="cuda", seed=seed, num_base_samples=n, fp16=fp16)

    add("tensorrt fp32 (cuda)", lambda: trt(False))
    add("tensorrt fp16 (cuda)", lambda: trt(True))
    return rows, skipped


class EncoderOnly:
    """The pixel policy's encoder alone: both cameras + proprio -> features (torch, no grad)."""

    def __init__(self, agent: PixelAgent) -> None:
        self.policy = agent.acting_policy()

    def decide(self, obs: dict[str, Any]) -> Any:
        with torch.no_grad():
            images = {c: torch.from_numpy(obs[f"{c}_image"])[None] for c in self.policy.cameras}
            return self.policy.features(images, obs["low_dim"][None])


def pixel_bundle(cfg: ExpoConfig, preset: str, seed: int) -> tuple[PixelAgent, bytes, str]:
    """A frozen pixel agent for lift's pixel spec with ``preset``'s encoder in front of ``cfg``'s
    networks (random weights), and its acting bundle."""
    spec = task_obs_spec("lift", "pixels")
    enc = encoder_preset(preset)
    agent = PixelAgent(pixel_expo_config(cfg, enc, spec), enc, spec, seed=seed)
    agent.freeze_encoder()
    return agent, *policy_weights_bytes(agent, version=1)


def pixel_observations(seed: int, count: int = 16) -> list[dict[str, np.ndarray]]:
    """Packed lift pixel observations: random 84x84 uint8 frames of both cameras + 16-D proprio."""
    rng = np.random.default_rng(seed)
    spec = task_obs_spec("lift", "pixels")
    out = []
    for _ in range(count):
        images = {k.camera: rng.integers(0, 256, k.shape, dtype=np.uint8) for k in spec.rgb}
        out.append(pack_observation(images, rng.standard_normal(spec.dim).astype(np.float32)))
    return out
