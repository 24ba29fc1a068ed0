"""Eager torch backend: :class:`expo_core.policy.ExpoPolicy` (or, for pixel weights,
:class:`expo_core.pixel_agent.PixelPolicy`: the frozen encoder in front) run as it is, on CPU or
CUDA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from expo_core.checkpoint import acting_policy_from_weights
from expo_core.config import ExpoConfig
from expo_core.pixel_agent import PixelPolicy
from expo_core.policy import ExpoPolicy

from .base import (
    PROPRIO_FEED,
    Decision,
    InferenceBackend,
    Observation,
    check_compatible,
    pixel_feeds,
    resolve_device,
    state_vector,
)


@dataclass(frozen=True)
class _TorchPrepared:
    policy: ExpoPolicy | PixelPolicy


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

    supports_chunks = True  # ExpoPolicy.decide plans the chosen candidate's chunk

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
        self._policy: ExpoPolicy | PixelPolicy | None = None
        self._gen = torch.Generator(self.device).manual_seed(self._seed)

    @property
    def policy(self) -> ExpoPolicy | PixelPolicy:
        if self._policy is None:
            raise RuntimeError("TorchBackend has no weights: call load() or load_bundle() first")
        return self._policy

    @property
    def config(self) -> ExpoConfig:
        return self.policy.cfg

    @property
    def num_base_samples(self) -> int:
        return self.policy.cfg.num_samples

    def _build(self, data: bytes, sha256: str | None) -> ExpoPolicy | PixelPolicy:
        policy = acting_policy_from_weights(data, sha256)  # verifies hash, format, shapes, finiteness
        self._check_kind(policy)
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

    def decide(self, obs: Observation) -> Decision:
        policy = self.policy  # one reference for the whole decision, even if a commit follows
        if isinstance(policy, PixelPolicy):
            feeds = pixel_feeds(policy.obs_spec, obs)
            proprio = torch.from_numpy(feeds.pop(PROPRIO_FEED))
            images = {k: torch.from_numpy(v) for k, v in feeds.items()}
            res = policy.decide(images, proprio, self._gen)
        else:
            x = torch.from_numpy(state_vector(obs, policy.cfg.obs_dim))
            res = policy.decide(x.to(self.device), self._gen)
        plan = getattr(res, "plan", None)  # (B, k-1, d) with action chunks, else None
        return Decision(
            action=res.action[0].float().cpu().numpy(),
            candidates=res.candidates[0].float().cpu().numpy(),
            q=res.q[0].float().cpu().numpy(),
            index=int(res.index[0]),
            plan=None if plan is None else plan[0].float().cpu().numpy(),
        )
