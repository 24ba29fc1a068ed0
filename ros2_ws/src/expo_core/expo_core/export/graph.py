"""The whole OTF decision as one ONNX graph with explicit noise inputs.

:class:`OTFGraph` wraps :meth:`ExpoPolicy.decide` so that acting is a pure function of the
observation and the noise: obs normalization, N base DDPM samples (T denoising steps), the
editor's N edits, the critic ensemble's mean Q over the 2N candidates and the argmax. The graph
calls ``decide`` itself, so it is that method, not a copy of its maths; given the same noise
the ONNX graph and torch agree to float32 rounding (``verify_onnx`` checks it).

Graph inputs, B = export batch (1 for the policy node), N = ``cfg.num_samples``, A = act_dim:
  obs         (B, obs_dim)     raw (unnormalized) observation, float32 (state policies)
  <camera>_image (B, H, W, 3)  pixel policies instead of ``obs``: one uint8 RGB input per camera
                               of the spec, in spec order (robomimic's key names), then
  proprio     (B, P)           the spec's low-dim vector, raw, float32. The graph runs the frozen
                               encoder (uint8 -> float, normalization, trunk, head; never the
                               random shift) and the OTF decision on concat(features, proprio).
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

import copy
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
    PIXELS_FORMAT,
    WeightsError,
    _read_meta,
    acting_policy_from_weights,
    load_any_checkpoint,
    policy_weights_bytes,
)
from ..config import ExpoConfig
from ..pixel_agent import PixelPolicy
from ..policy import ExpoPolicy
from ..spec import ObsSpec

log = logging.getLogger(__name__)

ONNX_FORMAT = "expo-otf-onnx-v1"
#: ONNX opset of the exported graph: 17 has LayerNormalization as one op (TensorRT >= 8.6 and
#: every onnxruntime >= 1.13 run it).
DEFAULT_OPSET = 17
INPUT_OBS = "obs"
INPUT_PROPRIO = "proprio"
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
    """The graph's noise inputs in input order: name -> shape (see the module docstring).
    Every export path takes its inputs from here; a base with action chunks
    (diffusion.chunk_len > 1) raises: the graph has no plan output."""
    if cfg.diffusion.chunk_len != 1:
        raise ValueError(
            f"diffusion.chunk_len={cfg.diffusion.chunk_len}: action chunks need the torch backend "
            "(the ONNX/TensorRT graph computes one action per decision); allowed: 1"
        )
    n, a = cfg.num_samples, cfg.act_dim
    shapes: dict[str, tuple[int, ...]] = {"base_noise": (batch, n, a)}
    if uses_ddpm(cfg):
        shapes["step_noise"] = (cfg.diffusion.num_steps, batch, n, a)
    if cfg.use_editor:
        shapes["edit_noise"] = (batch, n, a)
    return shapes


def observation_shapes(
    cfg: ExpoConfig, batch: int = 1, spec: ObsSpec | None = None
) -> dict[str, tuple[int, ...]]:
    """The observation inputs: ``obs`` (B, obs_dim) for a state policy; for a pixel policy (a
    ``spec`` with cameras) one (B, H, W, 3) uint8 input per camera, then ``proprio`` (B, P)."""
    if spec is None or not spec.has_images:
        return {INPUT_OBS: (batch, cfg.obs_dim)}
    shapes = {k.name: (batch, *k.shape) for k in spec.rgb}
    return shapes | {INPUT_PROPRIO: (batch, spec.dim)}


def input_shapes(cfg: ExpoConfig, batch: int = 1, spec: ObsSpec | None = None) -> dict[str, tuple[int, ...]]:
    """All graph inputs in order: the observation (:func:`observation_shapes`), then
    :func:`noise_shapes`."""
    return {**observation_shapes(cfg, batch, spec), **noise_shapes(cfg, batch)}


def input_dtypes(cfg: ExpoConfig, spec: ObsSpec | None = None) -> dict[str, str]:
    """numpy dtype name of every input: uint8 for camera frames, float32 otherwise."""
    images = set(spec.rgb_names) if spec is not None else set()
    return {k: "uint8" if k in images else "float32" for k in input_shapes(cfg, 1, spec)}


def obs_spec_of(policy: ExpoPolicy | PixelPolicy) -> ObsSpec | None:
    """The pixel policy's spec (its graph takes images), None for a state policy."""
    return policy.obs_spec if isinstance(policy, PixelPolicy) else None


def dynamic_axes(cfg: ExpoConfig, spec: ObsSpec | None = None) -> dict[str, dict[int, str]]:
    """torch.onnx ``dynamic_axes`` naming the batch axis of every input and output."""
    axes = {name: {1 if name == "step_noise" else 0: BATCH_AXIS} for name in input_shapes(cfg, 1, spec)}
    return axes | {name: {0: BATCH_AXIS} for name in OUTPUT_NAMES}


def weights_sha256(policy: ExpoPolicy | PixelPolicy) -> str:
    """sha256 of the policy's tensors alone (safetensors bytes of its state dict, no metadata):
    identical weights give the same digest whatever bundle version or step they came with."""
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()


def encoder_digest(policy: PixelPolicy) -> str:
    """sha256 of a pixel policy's encoder: its tensors, config and spec (what a
    :class:`GraphTemplate` of that policy bakes in)."""
    state = {k: v.detach().cpu().contiguous() for k, v in policy.encoder.state_dict().items()}
    h = hashlib.sha256(save(state))  # no safetensors metadata: its order is not deterministic
    h.update(json.dumps(policy.encoder_cfg.to_dict(), sort_keys=True).encode())
    h.update(json.dumps(policy.obs_spec.to_json()).encode())
    return h.hexdigest()


class OTFGraph(nn.Module):
    """``policy.decide`` with explicit noise: (observation inputs, *noise) -> (action,
    candidates, q, index).

    The inputs are those of :func:`input_shapes` for the policy's config (and spec, for a
    :class:`PixelPolicy`), in that order. Shapes as in the module docstring.
    """

    def __init__(self, policy: ExpoPolicy | PixelPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.obs_names = tuple(observation_shapes(policy.cfg, 1, obs_spec_of(policy)))
        self.noise_names = tuple(noise_shapes(policy.cfg))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n_obs = len(self.obs_names)
        if len(inputs) != n_obs + len(self.noise_names):
            raise ValueError(
                f"OTFGraph expects noise inputs {self.noise_names} after the observation inputs "
                f"{self.obs_names}, got {len(inputs)} tensors"
            )
        named = dict(zip(self.noise_names, inputs[n_obs:]))
        base = named["base_noise"][None]
        if "step_noise" in named:
            base = torch.cat([base, named["step_noise"]], dim=0)  # (T+1, B, N, A), torch's layout
        if isinstance(self.policy, PixelPolicy):
            spec = self.policy.obs_spec
            images = {k.camera: x for k, x in zip(spec.rgb, inputs[: n_obs - 1])}
            res = self.policy.decide(
                images, inputs[n_obs - 1], base_noise=base, edit_noise=named.get("edit_noise")
            )
        else:
            res = self.policy.decide(inputs[0], base_noise=base, edit_noise=named.get("edit_noise"))
        return res.action, res.candidates, res.q, res.index


def random_inputs(
    cfg: ExpoConfig, rng: np.random.Generator, batch: int = 1, spec: ObsSpec | None = None
) -> dict[str, np.ndarray]:
    """Inputs for the graph: obs / proprio ~ N(0, 1) float32, noise standard normal (as the
    backends draw), camera frames uniform uint8."""
    dtypes = input_dtypes(cfg, spec)
    out = {}
    for k, s in input_shapes(cfg, batch, spec).items():
        if dtypes[k] == "uint8":
            out[k] = rng.integers(0, 256, s, dtype=np.uint8)
        else:
            out[k] = rng.standard_normal(s, dtype=np.float32)
    return out


def torch_reference(policy: ExpoPolicy | PixelPolicy, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of :class:`OTFGraph` in eager torch (CPU) for numpy inputs, by output name."""
    graph = OTFGraph(policy)
    args = [torch.from_numpy(inputs[k]) for k in input_shapes(policy.cfg, 1, obs_spec_of(policy))]
    with torch.no_grad():
        outs = graph(*args)
    return {k: v.cpu().numpy() for k, v in zip(OUTPUT_NAMES, outs)}


def _cpu_copy(policy: ExpoPolicy | PixelPolicy) -> ExpoPolicy | PixelPolicy:
    """The policy itself when it is on CPU, else a CPU copy (the caller's module is untouched)."""
    if all(t.device.type == "cpu" for t in policy.state_dict().values()):
        return policy
    if isinstance(policy, PixelPolicy):
        return copy.deepcopy(policy).cpu()
    cpu = ExpoPolicy(policy.cfg)
    cpu.load_state_dict({k: v.detach().cpu() for k, v in policy.state_dict().items()})
    return cpu


def _trace(
    policy: ExpoPolicy | PixelPolicy,
    batch: int,
    opset: int,
    fold: bool,
    metadata: dict[str, str],
    dynamic_batch: bool = False,
) -> Any:
    """Trace OTFGraph(policy) to an onnx.ModelProto with ``metadata`` in its metadata_props."""
    import onnx  # lazy: only exporting needs it

    spec = obs_spec_of(policy)
    shapes = input_shapes(policy.cfg, batch, spec)
    dtypes = input_dtypes(policy.cfg, spec)
    args = tuple(torch.zeros(s, dtype=getattr(torch, dtypes[k])) for k, s in shapes.items())
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
            dynamic_axes=dynamic_axes(policy.cfg, spec) if dynamic_batch else None,
        )
    model = onnx.load_from_string(buf.getvalue())
    for k, v in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    model.producer_name = "expo_core.export"
    return model


def export_onnx_bytes(
    policy: ExpoPolicy | PixelPolicy,
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
    meta = onnx_metadata(policy.cfg, batch, opset, weights_sha256(policy), dynamic_batch, policy)
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

    Pixel policies: the encoder is frozen, so a template is traced for one encoder
    (``encoder_digest``, :func:`encoder_digest`) with its real values baked in; only the EXPO
    part (``policy.*``) is randomized and swappable. New weights with another encoder need a new
    template (:meth:`fits` says whether one serves).
    """

    cfg: ExpoConfig
    batch: int
    opset: int
    model: bytes
    slots: dict[str, tuple[int, int]]
    shapes: dict[str, tuple[int, ...]]
    encoder_digest: str | None = None

    @classmethod
    def export(
        cls,
        cfg: ExpoConfig,
        *,
        batch: int = 1,
        opset: int = DEFAULT_OPSET,
        seed: int = 0,
        pixel: PixelPolicy | None = None,
    ) -> GraphTemplate:
        """Trace the template for ``cfg`` (and, for a pixel policy, ``pixel``'s encoder).
        RuntimeError when a tensor cannot be located (the graph would then not be swappable
        byte for byte)."""
        if pixel is not None:
            policy: ExpoPolicy | PixelPolicy = copy.deepcopy(_cpu_copy(pixel))
            policy.cfg = cfg
            swappable = {f"policy.{k}": t for k, t in policy.policy.state_dict().items()}
            digest: str | None = encoder_digest(policy)
        else:
            policy = ExpoPolicy(cfg)
            swappable = dict(policy.state_dict())
            digest = None
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for t in swappable.values():
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        meta = onnx_metadata(cfg, batch, opset, "template", False, policy)
        proto = _trace(policy, batch, opset, False, meta)
        model = proto.SerializeToString()
        names = [i.name for i in proto.graph.initializer]  # serialized in this order
        fixed = _PREFIX + "encoder."
        foreign = sorted(n for n in names if n[len(_PREFIX) :] not in swappable and not n.startswith(fixed))
        if pixel is None and foreign:
            raise RuntimeError(f"template graph has initializers that are not policy tensors: {foreign[:5]}")
        swap_foreign = [n for n in foreign if n.startswith(_PREFIX + "policy.")]
        if swap_foreign:
            raise RuntimeError(f"template graph has derived EXPO initializers: {swap_foreign[:5]}")
        slots, shapes, pos = {}, {}, 0
        for name in names:  # tensors the graph does not use have no initializer
            k = name[len(_PREFIX) :]
            if k not in swappable:
                continue  # the frozen encoder's tensors and constants, baked in
            raw = swappable[k].numpy().tobytes()
            off = model.find(raw, pos)  # random values: the bytes occur once, after the previous
            if off < 0:
                raise RuntimeError(f"cannot locate tensor {k} in the template graph")
            slots[k], shapes[k], pos = (off, len(raw)), tuple(swappable[k].shape), off + len(raw)
        return cls(cfg, batch, opset, model, slots, shapes, digest)

    def fits(self, policy: ExpoPolicy | PixelPolicy) -> bool:
        """Whether :meth:`with_weights` can take ``policy`` (same config; same encoder for pixels)."""
        if policy.cfg != self.cfg:
            return False
        if isinstance(policy, PixelPolicy):
            return self.encoder_digest == encoder_digest(policy)
        return self.encoder_digest is None

    def with_weights(self, policy: ExpoPolicy | PixelPolicy) -> bytes:
        """The template's graph with ``policy``'s tensors (same config required; for a pixel
        policy the template's encoder)."""
        if policy.cfg != self.cfg:
            raise ValueError("policy config differs from the template's: export a new template")
        if not self.fits(policy):
            raise ValueError(
                "policy's image encoder (or its absence) differs from the template's: export a new template"
            )
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
    cfg: ExpoConfig,
    batch: int,
    opset: int,
    weights_digest: str,
    dynamic_batch: bool = False,
    policy: ExpoPolicy | PixelPolicy | None = None,
) -> dict[str, str]:
    """The ``expo.*`` metadata_props an exported graph carries (``weights_digest``:
    :func:`weights_sha256`, or "template" for a :class:`GraphTemplate`; ``expo.inputs`` gives
    the shapes at the traced batch, ``expo.input_dtypes`` their dtypes, ``expo.dynamic_batch``
    "1" when B is free; a pixel policy adds ``expo.obs_spec`` and ``expo.encoder_config``)."""
    spec = obs_spec_of(policy) if policy is not None else None
    meta = {
        "expo.format": ONNX_FORMAT,
        "expo.config": cfg.to_json(),
        "expo.weights_sha256": weights_digest,
        "expo.opset": str(opset),
        "expo.inputs": json.dumps(input_shapes(cfg, batch, spec)),
        "expo.input_dtypes": json.dumps(input_dtypes(cfg, spec)),
        "expo.outputs": json.dumps(list(OUTPUT_NAMES)),
        "expo.dynamic_batch": "1" if dynamic_batch else "0",
        "expo.torch_version": torch.__version__,
    }
    if isinstance(policy, PixelPolicy):
        meta["expo.obs_spec"] = json.dumps(policy.obs_spec.to_json())
        meta["expo.encoder_config"] = json.dumps(policy.encoder_cfg.to_dict(), sort_keys=True)
    return meta


def read_onnx_metadata(model: str | Path | bytes) -> dict[str, str]:
    """metadata_props of an ONNX file or serialized model as a dict."""
    import onnx

    m = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    return {p.key: p.value for p in m.metadata_props}


Runner = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]


def load_acting_policy(path: str | Path) -> ExpoPolicy | PixelPolicy:
    """The acting policy (CPU, eval mode) of a policy-weights bundle file
    (``policy_weights_bytes`` written to disk) or a checkpoint (``save_checkpoint``'s
    ``x.safetensors`` with ``x.json`` beside it, or its path ``x``): an :class:`ExpoPolicy`
    (EMA base, editor, critics) or, for pixel files, a :class:`PixelPolicy` (the frozen encoder
    in front). Raises WeightsError."""
    p = Path(path).expanduser()
    if not p.is_file() and p.with_suffix(".safetensors").is_file():
        p = p.with_suffix(".safetensors")
    if not p.is_file():
        raise WeightsError(f"no checkpoint or policy-weights file at {path}")
    data = p.read_bytes()
    is_bundle = _read_meta(data).get("format") in (FORMAT, PIXELS_FORMAT)  # WeightsError: not safetensors
    if is_bundle:
        return acting_policy_from_weights(data).eval()
    if not p.with_suffix(".json").is_file():
        raise WeightsError(
            f"{p}: neither a policy-weights bundle nor a checkpoint (no {p.with_suffix('.json').name})"
        )
    agent, _ = load_any_checkpoint(p)
    return acting_policy_from_weights(policy_weights_bytes(agent)[0]).eval()
