"""The whole OTF decision as one ONNX graph with explicit noise inputs.

:class:`OTFGraph` wraps :meth:`ExpoPolicy.decide` so that acting is a pure function of the
observation and the noise: obs normalization, N base DDPM samples (T denoising steps), the
editor's N edits, the critic ensemble's mean Q over the 2N candidates and the argmax. The graph
calls ``decide`` itself, so it is that method, not a copy of its maths; given the same noise
the ONNX graph and torch agree to float32 rounding (``verify_onnx`` checks it).

Graph inputs, B = export batch (1 for the policy node), N = ``cfg.num_samples``, A = act_dim:
  obs         (B, obs_dim)     raw (unnormalized) observation, float32
  base_noise  (B, N, A)        initial noise x_T of the base sampler, standard normal
  step_noise  (T, B, N, A)     noise added after denoising step i (i = 0..T-1); the last slice is
                               unused (z = 0 at the final step) and kept so that
                               cat(base_noise[None], step_noise) is exactly torch's (T+1, B, N, A)
                               noise layout (``DiffusionBase.noise_shape``). Absent for DDIM
                               acting (``act_sampling_steps`` in [1, T)), which only has x_T.
  edit_noise  (B, N, A)        editor noise eps (zeros give the editor's mean, the eval policy).
                               Absent when ``use_editor`` is False.
Graph outputs: action (B, A), candidates (B, K, A) with K = 2N (N without editor), q (B, K) the
ensemble-mean Q the choice was made on, index (B,) int64.

Batch axis: ``dynamic_batch=True`` names B "batch" in every input and output (axis 1 of
step_noise), so one file serves batch-1 control and batch-B evaluation; the traced ops take B from
the input's shape, and :func:`verify_onnx` checks such a graph at batch 1 and at a larger batch.
The backends keep a static batch of 1 (the control path; static shapes let the runtimes plan
memory once). Opset 17 (:data:`DEFAULT_OPSET`).

Two ways to a model: ``onnx_file.export_onnx`` / :func:`export_onnx_bytes` trace the policy itself
(constant-folded; files for deployment, ~0.5 s at published sizes), and :class:`GraphTemplate`,
traced once per config, into which new weights are copied byte for byte (~15 ms). Backends
use the template for weight hot-swaps: tracing holds the GIL in C++ stretches of up to ~80 ms,
which would stall the control loop running in another thread.

``onnx`` and ``onnxruntime`` are imported lazily inside the functions that need them, so the rest
of expo_core never depends on them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from ..checkpoint import (
    FORMAT,
    WeightsError,
    _read_meta,
    load_checkpoint,
    policy_from_weights,
    policy_weights_bytes,
)
from ..config import ExpoConfig
from ..policy import ExpoPolicy

log = logging.getLogger(__name__)

ONNX_FORMAT = "expo-otf-onnx-v1"
#: ONNX opset of the exported graph: 17 has LayerNormalization as one op (TensorRT >= 8.6 and
#: every onnxruntime >= 1.13 run it).
DEFAULT_OPSET = 17
INPUT_OBS = "obs"
OUTPUT_NAMES = ("action", "candidates", "q", "index")
BATCH_AXIS = "batch"
#: default tolerance of the torch-vs-ONNX check on action, candidates and q (float32, CPU):
#: |onnx - torch| <= DEFAULT_ATOL + DEFAULT_RTOL * |torch|. Measured at published sizes: <= 5e-6
#: on actions; on Q about 5e-7 * |Q| (8e-5 at |Q| = 160), hence the relative term.
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-5

#: OTFGraph's attribute: a template's initializer names are this prefix + state-dict keys
INITIALIZER_PREFIX = "policy."
_PREFIX = INITIALIZER_PREFIX
_EXPORT_LOCK = threading.Lock()  # torch.onnx.export keeps global state: one export at a time


class ExportMismatchError(RuntimeError):
    """The exported graph does not reproduce the torch policy within tolerance."""


def uses_ddpm(cfg: ExpoConfig) -> bool:
    """True when acting runs the full ancestral sampler (and thus consumes per-step noise)."""
    return cfg.act_sampling_steps in (0, cfg.diffusion.num_steps)


def noise_shapes(cfg: ExpoConfig, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """The graph's noise inputs in input order: name -> shape (see the module docstring)."""
    n, a = cfg.num_samples, cfg.act_dim
    shapes: dict[str, tuple[int, ...]] = {"base_noise": (batch, n, a)}
    if uses_ddpm(cfg):
        shapes["step_noise"] = (cfg.diffusion.num_steps, batch, n, a)
    if cfg.use_editor:
        shapes["edit_noise"] = (batch, n, a)
    return shapes


def input_shapes(cfg: ExpoConfig, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """All graph inputs in order: obs first, then :func:`noise_shapes`."""
    return {INPUT_OBS: (batch, cfg.obs_dim), **noise_shapes(cfg, batch)}


def dynamic_axes(cfg: ExpoConfig) -> dict[str, dict[int, str]]:
    """torch.onnx ``dynamic_axes`` naming the batch axis of every input and output."""
    axes = {name: {1 if name == "step_noise" else 0: BATCH_AXIS} for name in input_shapes(cfg)}
    return axes | {name: {0: BATCH_AXIS} for name in OUTPUT_NAMES}


def weights_sha256(policy: ExpoPolicy) -> str:
    """sha256 of the policy's tensors alone (safetensors bytes of its state dict, no metadata):
    identical weights give the same digest whatever bundle version or step they came with."""
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()


class OTFGraph(nn.Module):
    """``policy.decide`` with explicit noise: (obs, *noise) -> (action, candidates, q, index).

    ``noise`` are the tensors named by :func:`noise_shapes` for the policy's config, in that
    order. Shapes as in the module docstring.
    """

    def __init__(self, policy: ExpoPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.noise_names = tuple(noise_shapes(policy.cfg))

    def forward(self, obs: torch.Tensor, *noise: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(noise) != len(self.noise_names):
            raise ValueError(f"OTFGraph expects noise inputs {self.noise_names}, got {len(noise)} tensors")
        named = dict(zip(self.noise_names, noise))
        base = named["base_noise"][None]
        if "step_noise" in named:
            base = torch.cat([base, named["step_noise"]], dim=0)  # (T+1, B, N, A), torch's layout
        res = self.policy.decide(obs, base_noise=base, edit_noise=named.get("edit_noise"))
        return res.action, res.candidates, res.q, res.index


def random_inputs(cfg: ExpoConfig, rng: np.random.Generator, batch: int = 1) -> dict[str, np.ndarray]:
    """float32 inputs for the graph: obs ~ N(0, 1), noise standard normal (as the backends draw)."""
    return {k: rng.standard_normal(s, dtype=np.float32) for k, s in input_shapes(cfg, batch).items()}


def torch_reference(policy: ExpoPolicy, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of :class:`OTFGraph` in eager torch (CPU) for numpy inputs, by output name."""
    graph = OTFGraph(policy)
    args = [torch.from_numpy(inputs[k]) for k in input_shapes(policy.cfg)]
    with torch.no_grad():
        outs = graph(*args)
    return {k: v.cpu().numpy() for k, v in zip(OUTPUT_NAMES, outs)}


def _cpu_copy(policy: ExpoPolicy) -> ExpoPolicy:
    """The policy itself when it is on CPU, else a CPU copy (the caller's module is untouched)."""
    if all(t.device.type == "cpu" for t in policy.state_dict().values()):
        return policy
    cpu = ExpoPolicy(policy.cfg)
    cpu.load_state_dict({k: v.detach().cpu() for k, v in policy.state_dict().items()})
    return cpu


def _trace(
    policy: ExpoPolicy,
    batch: int,
    opset: int,
    fold: bool,
    metadata: dict[str, str],
    dynamic_batch: bool = False,
) -> Any:
    """Trace OTFGraph(policy) to an onnx.ModelProto with ``metadata`` in its metadata_props."""
    import onnx  # lazy: only exporting needs it

    shapes = input_shapes(policy.cfg, batch)
    args = tuple(torch.zeros(s) for s in shapes.values())
    buf = io.BytesIO()
    with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            OTFGraph(policy),
            args,
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=list(shapes),
            output_names=list(OUTPUT_NAMES),
            do_constant_folding=fold,
            dynamic_axes=dynamic_axes(policy.cfg) if dynamic_batch else None,
        )
    model = onnx.load_from_string(buf.getvalue())
    for k, v in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    model.producer_name = "expo_core.export"
    return model


def export_onnx_bytes(
    policy: ExpoPolicy,
    *,
    batch: int = 1,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
    dynamic_batch: bool = False,
) -> bytes:
    """The serialized ONNX model of :class:`OTFGraph` for ``policy`` (traced at batch ``batch``;
    a static batch unless ``dynamic_batch``; constant-folded), with expo metadata in
    ``metadata_props`` (see :func:`onnx_metadata`) plus ``metadata``. Uses the TorchScript
    exporter (``dynamo=False``): it traces the unrolled sampler loop in one pass and needs no
    extra packages."""
    policy = _cpu_copy(policy)
    meta = onnx_metadata(policy.cfg, batch, opset, weights_sha256(policy), dynamic_batch)
    meta |= dict(metadata or {})
    return _trace(policy, batch, opset, True, meta, dynamic_batch).SerializeToString()


@dataclass(frozen=True)
class GraphTemplate:
    """The graph of one config, traced once, whose weights are replaced without re-tracing.

    Traced from a copy of the policy whose tensors hold distinct random values, with constant
    folding off: every policy tensor is then its own initializer named after it (the exporter
    merges equal-valued initializers, e.g. LayerNorm weights still at their init, and folding
    would bake weights into derived constants). ``slots`` gives each tensor's raw bytes in
    ``model`` (key -> byte offset, byte length), so :meth:`with_weights` is one copy of the bytes
    and a memcpy per tensor. onnxruntime and TensorRT fold constants when they load the graph.
    Backends compare every graph made this way with eager torch before using it.
    """

    cfg: ExpoConfig
    batch: int
    opset: int
    model: bytes
    slots: dict[str, tuple[int, int]]
    shapes: dict[str, tuple[int, ...]]

    @classmethod
    def export(
        cls, cfg: ExpoConfig, *, batch: int = 1, opset: int = DEFAULT_OPSET, seed: int = 0
    ) -> GraphTemplate:
        """Trace the template for ``cfg``. RuntimeError when a tensor cannot be located (the
        graph would then not be swappable byte for byte)."""
        policy = ExpoPolicy(cfg)
        gen = torch.Generator().manual_seed(seed)
        state = policy.state_dict()
        with torch.no_grad():
            for t in state.values():
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        meta = onnx_metadata(cfg, batch, opset, "template")
        proto = _trace(policy, batch, opset, False, meta)
        model = proto.SerializeToString()
        names = [i.name for i in proto.graph.initializer]  # serialized in this order
        foreign = sorted(set(names) - {_PREFIX + k for k in state})
        if foreign:
            raise RuntimeError(f"template graph has initializers that are not policy tensors: {foreign[:5]}")
        slots, shapes, pos = {}, {}, 0
        for name in names:  # tensors the graph does not use have no initializer
            k = name[len(_PREFIX) :]
            raw = state[k].numpy().tobytes()
            off = model.find(raw, pos)  # random values: the bytes occur once, after the previous
            if off < 0:
                raise RuntimeError(f"cannot locate tensor {k} in the template graph")
            slots[k], shapes[k], pos = (off, len(raw)), tuple(state[k].shape), off + len(raw)
        return cls(cfg, batch, opset, model, slots, shapes)

    def with_weights(self, policy: ExpoPolicy) -> bytes:
        """The template's graph with ``policy``'s tensors (same config required)."""
        if policy.cfg != self.cfg:
            raise ValueError("policy config differs from the template's: export a new template")
        state = policy.state_dict()
        buf = bytearray(self.model)
        for k, (off, n) in self.slots.items():
            t = state[k].detach()
            if tuple(t.shape) != self.shapes[k] or t.dtype != torch.float32:
                raise ValueError(
                    f"tensor {k} is {t.dtype} {tuple(t.shape)}, the template has float32 {self.shapes[k]}"
                )
            buf[off : off + n] = t.cpu().contiguous().numpy().tobytes()
        return bytes(buf)


def onnx_metadata(
    cfg: ExpoConfig, batch: int, opset: int, weights_digest: str, dynamic_batch: bool = False
) -> dict[str, str]:
    """The ``expo.*`` metadata_props an exported graph carries (``weights_digest``:
    :func:`weights_sha256`, or "template" for a :class:`GraphTemplate`; ``expo.inputs`` gives
    the shapes at the traced batch, ``expo.dynamic_batch`` "1" when B is free)."""
    return {
        "expo.format": ONNX_FORMAT,
        "expo.config": cfg.to_json(),
        "expo.weights_sha256": weights_digest,
        "expo.opset": str(opset),
        "expo.inputs": json.dumps(input_shapes(cfg, batch)),
        "expo.outputs": json.dumps(list(OUTPUT_NAMES)),
        "expo.dynamic_batch": "1" if dynamic_batch else "0",
        "expo.torch_version": torch.__version__,
    }


def read_onnx_metadata(model: str | Path | bytes) -> dict[str, str]:
    """metadata_props of an ONNX file or serialized model as a dict."""
    import onnx

    m = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    return {p.key: p.value for p in m.metadata_props}


Runner = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]


def load_acting_policy(path: str | Path) -> ExpoPolicy:
    """The acting policy (EMA base, editor, critics; CPU, eval mode) of a policy-weights bundle
    file (``policy_weights_bytes`` written to disk) or a checkpoint (``save_checkpoint``'s
    ``x.safetensors`` with ``x.json`` beside it, or its path ``x``). Raises WeightsError."""
    p = Path(path).expanduser()
    if not p.is_file() and p.with_suffix(".safetensors").is_file():
        p = p.with_suffix(".safetensors")
    if not p.is_file():
        raise WeightsError(f"no checkpoint or policy-weights file at {path}")
    data = p.read_bytes()
    is_bundle = _read_meta(data).get("format") == FORMAT  # WeightsError when not safetensors
    if is_bundle:
        return policy_from_weights(data).eval()
    if not p.with_suffix(".json").is_file():
        raise WeightsError(
            f"{p}: neither a policy-weights bundle nor a checkpoint (no {p.with_suffix('.json').name})"
        )
    agent, _ = load_checkpoint(p)
    return policy_from_weights(policy_weights_bytes(agent)[0]).eval()
