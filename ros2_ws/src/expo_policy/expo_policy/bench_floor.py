"""The compute floor of one OTF decision: its FLOPs and weight bytes, and this machine's rates.

:func:`decision_flops` counts the matrix products of one decision analytically from the config
(2 FLOPs per multiply-add; elementwise ops, LayerNorm and the sampler's arithmetic are a few
percent and left out): per decision the observation's share of the denoiser's first layer once;
per denoising step the time features (shared by all samples); per sample and step the action's
share of the first layer, the residual blocks and the output layer (N x T of them); the editor
on N (obs, base action) pairs; the critic ensemble on 2N candidates (N without the editor).

:func:`measure_rates` times this machine in the same run as the latencies: a large square
matmul (the best sustained GFLOP/s), a decision-shaped one (N rows x hidden x block: what the
residual blocks actually run), and memory bandwidth (a large array copy). The floor of a decision
is max(FLOPs / peak rate, weight bytes / bandwidth): no backend on this machine can beat it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from expo_core.config import ExpoConfig


def _mlp_macs(sizes: list[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def decision_flops(cfg: ExpoConfig) -> dict[str, int]:
    """FLOPs of one decision by part (``denoiser``, ``time``, ``editor``, ``critics``, ``total``)."""
    d, o, a, n = cfg.diffusion, cfg.obs_dim, cfg.act_dim, cfg.num_samples
    steps = cfg.act_sampling_steps or d.num_steps
    per_sample_step = a * d.hidden_dim + d.num_blocks * 2 * d.hidden_dim * d.block_dim + d.hidden_dim * a
    denoiser = o * d.hidden_dim + steps * n * per_sample_step
    time_feat = steps * (d.time_embed_dim * d.hidden_dim + 2 * d.hidden_dim * d.hidden_dim)
    editor = n * _mlp_macs([o + a, *cfg.editor.hidden_dims, 2 * a]) if cfg.use_editor else 0
    k = 2 * n if cfg.use_editor else n
    critics = k * cfg.critic.num_critics * _mlp_macs([o + a, *cfg.critic.hidden_dims, 1])
    parts = {"denoiser": 2 * denoiser, "time": 2 * time_feat, "editor": 2 * editor, "critics": 2 * critics}
    return parts | {"total": sum(parts.values())}


def weight_bytes(policy: torch.nn.Module) -> int:
    """Bytes of the policy's tensors (float32): what one decision must read at least once."""
    return sum(t.numel() * t.element_size() for t in policy.state_dict().values())


@dataclass(frozen=True)
class MachineRates:
    """Measured: ``peak_gflops`` (large square matmul), ``decision_gflops`` (rows x hidden x
    block matmul, rows = N), ``bandwidth_gbs`` (array copy, read + write bytes per second)."""

    peak_gflops: float
    decision_gflops: float
    bandwidth_gbs: float


def _best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_rates(cfg: ExpoConfig, size: int = 1024, copy_mib: int = 256, repeats: int = 20) -> MachineRates:
    """Best-of-``repeats`` rates with torch's current thread count (the best run: the floor)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    peak = 2 * size**3 / _best_seconds(lambda: a @ b, repeats) / 1e9
    d = cfg.diffusion
    x, w = torch.randn(cfg.num_samples, d.hidden_dim), torch.randn(d.hidden_dim, d.block_dim)
    inner = 100

    def small() -> None:
        for _ in range(inner):
            x @ w

    dec = 2 * inner * cfg.num_samples * d.hidden_dim * d.block_dim / _best_seconds(small, repeats) / 1e9
    src = np.ones(copy_mib << 18, dtype=np.float32)  # copy_mib MiB
    dst = np.empty_like(src)
    bw = 2 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), max(3, repeats // 4)) / 1e9
    return MachineRates(peak, dec, bw)


def floor_ms(flops: int, nbytes: int, rates: MachineRates) -> dict[str, float]:
    """The decision's floor in ms: compute (FLOPs at the peak rate), memory (weight bytes at the
    bandwidth), the larger of the two, and compute at the decision-shaped matmul rate."""
    compute = flops / (rates.peak_gflops * 1e9) * 1e3
    memory = nbytes / (rates.bandwidth_gbs * 1e9) * 1e3
    return {
        "compute_ms": compute,
        "memory_ms": memory,
        "floor_ms": max(compute, memory),
        "compute_at_decision_rate_ms": flops / (rates.decision_gflops * 1e9) * 1e3,
    }
