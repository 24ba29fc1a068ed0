"""Checking an exported OTF graph against the torch policy it came from.

:func:`parity` runs both on the same random observations and noise and reports, per output, the
max absolute and relative error (any NaN or inf fails); :func:`verify_onnx_report` /
:func:`verify_onnx` raise :class:`~expo_core.export.graph.ExportMismatchError` beyond tolerance.
onnxruntime is imported inside the functions that need it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..pixel_agent import PixelPolicy
from ..policy import ExpoPolicy
from .graph import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    OUTPUT_NAMES,
    ExportMismatchError,
    Runner,
    _cpu_copy,
    obs_spec_of,
    random_inputs,
    read_onnx_metadata,
    torch_reference,
)


@dataclass(frozen=True)
class Parity:
    """Result of a torch-vs-graph comparison: the largest absolute difference over action,
    candidates and q, the largest relative one per output (max |graph - torch| / max |torch|),
    the batch and the number of random trials."""

    max_abs_diff: float
    rel_err: dict[str, float]
    batch: int
    trials: int

    @property
    def max_rel_err(self) -> float:
        return max(self.rel_err.values(), default=0.0)

    def __str__(self) -> str:
        rel = ", ".join(f"{k} {v:.2e}" for k, v in self.rel_err.items())
        return (
            f"batch {self.batch}, {self.trials} trials: max abs diff {self.max_abs_diff:.2e}, "
            f"relative error {rel}"
        )


def parity(
    policy: ExpoPolicy | PixelPolicy,
    run: Runner,
    *,
    batch: int = 1,
    trials: int = 3,
    seed: int = 0,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> Parity:
    """Run a compiled graph (``run``: inputs by name -> outputs in OUTPUT_NAMES order) and eager
    torch on ``trials`` random (obs, noise) inputs of batch ``batch``; returns the differences.
    For a :class:`PixelPolicy` the observation is random uint8 frames per camera + proprio.

    Raises ExportMismatchError when any output of either side is not finite (NaN never passes),
    when any |graph - torch| exceeds ``atol + rtol * |torch|``, or when the chosen index differs
    and the two choices are not a near-tie (their torch Q values further apart than that
    tolerance). GPU runtimes (TF32 or fp16 matmuls) need larger tolerances."""
    policy = _cpu_copy(policy)
    rng = np.random.default_rng(seed)
    worst = 0.0
    peak = dict.fromkeys(("action", "candidates", "q"), 0.0)  # max |torch| per output
    rel_num = dict(peak)  # max |graph - torch| per output
    for trial in range(trials):
        inputs = random_inputs(policy.cfg, rng, batch, obs_spec_of(policy))
        ref = torch_reference(policy, inputs)
        got = dict(zip(OUTPUT_NAMES, run(inputs)))
        for k in OUTPUT_NAMES:
            if np.shape(got[k]) != ref[k].shape:
                raise ExportMismatchError(
                    f"trial {trial}: {k} has shape {np.shape(got[k])}, torch {ref[k].shape}"
                )
            for side, v in (("graph", got[k]), ("torch", ref[k])):
                if not np.all(np.isfinite(v)):
                    raise ExportMismatchError(f"trial {trial}: the {side}'s {k} is not finite (NaN or inf)")
        same = got["index"] == ref["index"]
        for b in np.flatnonzero(~same):
            q, i, j = ref["q"][b], got["index"][b], ref["index"][b]
            if abs(q[i] - q[j]) > atol + rtol * abs(q[j]):
                raise ExportMismatchError(
                    f"trial {trial}: the graph chose candidate {i}, torch {j} (Q {q[i]:.6g} vs {q[j]:.6g})"
                )
        pairs = {k: (got[k], ref[k]) for k in ("candidates", "q")}
        if same.any():
            pairs["action"] = (got["action"][same], ref["action"][same])
        for k, (g, r) in pairs.items():
            err = np.abs(g - r)
            if not np.all(err <= atol + rtol * np.abs(r)):
                raise ExportMismatchError(
                    f"trial {trial}: {k} max abs difference {float(np.nanmax(err)):.3g} exceeds "
                    f"atol {atol:g} + rtol {rtol:g} * |torch|"
                )
            worst = max(worst, float(err.max()))
            rel_num[k] = max(rel_num[k], float(err.max()))
            peak[k] = max(peak[k], float(np.abs(r).max()))
    rel = {k: rel_num[k] / peak[k] if peak[k] > 0 else rel_num[k] for k in rel_num}
    return Parity(worst, rel, batch, trials)


def compare_with_torch(policy: ExpoPolicy | PixelPolicy, run: Runner, **kwargs: Any) -> float:
    """:func:`parity`'s max abs difference (keyword arguments as there)."""
    return parity(policy, run, **kwargs).max_abs_diff


def model_batch(model: bytes | str | Path) -> tuple[int, bool]:
    """(traced batch, whether the batch axis is dynamic) from an exported graph's metadata."""
    meta = read_onnx_metadata(model)
    first = next(iter(json.loads(meta["expo.inputs"]).values()))  # obs, or the first camera
    return first[0], meta.get("expo.dynamic_batch") == "1"


def verify_onnx_report(
    policy: ExpoPolicy | PixelPolicy, model: bytes, *, eval_batch: int = 4, **kwargs: Any
) -> list[Parity]:
    """:func:`parity` on an onnxruntime CPU session of the serialized ``model``: at the traced
    batch, and for a dynamic-batch graph also at batch 1 and ``eval_batch``."""
    session = ort_session(model)
    batch, dynamic = model_batch(model)
    batches = sorted({batch, 1, eval_batch}) if dynamic else [batch]
    run = partial(session.run, list(OUTPUT_NAMES))
    return [parity(policy, run, batch=b, **kwargs) for b in batches]


def verify_onnx(policy: ExpoPolicy | PixelPolicy, model: bytes, **kwargs: Any) -> float:
    """Max abs difference of :func:`verify_onnx_report` (keyword arguments as there)."""
    return max(p.max_abs_diff for p in verify_onnx_report(policy, model, **kwargs))


def ort_session(
    model: bytes | str | Path,
    providers: list[Any] | None = None,
    num_threads: int = 1,
    allow_spinning: bool = True,
) -> Any:
    """An onnxruntime InferenceSession (full graph optimization, ``num_threads`` intra-op threads,
    0 = onnxruntime's default, one inter-op thread, sequential execution). ``allow_spinning``
    False stops idle intra-op workers from busy-waiting (they would steal a shared core).
    ``providers`` default to CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(num_threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, opts, providers=providers or ["CPUExecutionProvider"])
