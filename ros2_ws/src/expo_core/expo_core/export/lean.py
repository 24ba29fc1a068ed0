"""The OTF decision at batch 1 as a hand-built, lean ONNX graph (CPU latency, issue 15).

The traced graph (:class:`~expo_core.export.graph.OTFGraph`) is ``ExpoPolicy.decide`` as torch
runs it: 3-D and 4-D tensors, ~150 reshapes, the critic ensemble as batched matmuls. An ONNX
Runtime profile of it at published sizes, N = 8, T = 10, one thread, found ~490 nodes, the two
batched (10, 16, 256) x (10, 256, 256) critic ``MatMul`` at ~25 GFLOP/s where MLAS runs a 2-D
``Gemm`` with constant (prepacked) weights at ~70-90, and ~1.2 ms of the profile in reshapes.
This graph has ~350 nodes, all 2-D; measured 1.1-1.2x faster than the traced one (p50, same
run; docs/results.md, issue 15). The denoiser's 60 (8, 256) x (256, 1024)-sized ``Gemm`` are
~3.2 ms of its ~4 ms: one CPU core's float32 rate bounds it, not dispatch.

:func:`lean_onnx_bytes` writes the same function with the same inputs and outputs
(:func:`~expo_core.export.graph.input_shapes`, :data:`~expo_core.export.graph.OUTPUT_NAMES`,
batch 1) directly from the weights, with ``onnx.helper``, no tracing:

- 2-D tensors throughout (rows = N base samples, or 2N candidates), weights stored
  pre-transposed (in, out) as ``Gemm`` initializers;
- the denoiser's time share ``time_proj(t)`` of every step is a constant (it depends on the
  weights only), computed once by torch at build time; the observation share ``obs_proj(s)`` once
  per decision; both enter each step's first ``Gemm`` as its bias row (W [s; a; t] = W_s s +
  W_a a + W_t t, as :meth:`~expo_core.nets.Denoiser.forward_shared_`);
- the observation's share of every critic's first layer is one (1, o) x (o, E*H) ``Gemm`` and the
  actions' share one (2N, d) x (d, E*H) ``Gemm`` for all E critics; the remaining layers run per
  critic as 2-D ``Gemm`` with their own LayerNorm; the E heads are one block-diagonal ``Gemm``;
- the editor's first layer is split the same way (:meth:`~expo_core.editor.Editor.act`).

Every op is the reference's op (same formulas, same order of the sampler's update), so outputs
agree with eager torch to float32 rounding (reassociated sums: a few 1e-6); the backends check
every graph against torch before using it (``check.compare_with_torch``). Building one takes
~0.1 s at published sizes; weight swaps copy new weights into a :class:`LeanTemplate` of the
config instead of serializing the graph again.

What it does not express (:func:`lean_unsupported` says why, and the caller falls back to the
traced graph): action chunks, DDIM acting, a random critic subset per decision
(``act_score="subset_min"`` with ``num_min < num_critics``), batch > 1. A pixel policy's EXPO part
is a state policy on the encoder's features: :mod:`.pixel_lean` runs it as this graph behind
per-camera encoder graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import ExpoConfig
from ..diffusion import DiffusionBase
from ..pixel_agent import PixelPolicy
from ..policy import ExpoPolicy
from .graph import INPUT_OBS, ONNX_FORMAT, OUTPUT_NAMES, noise_shapes, uses_ddpm

#: metadata tag of a lean graph (``expo.graph``); the traced graph has none
LEAN_GRAPH = "lean-v1"
#: opset of the lean graph (LayerNormalization as one op; ReduceMean/ReduceMin take ``axes`` as
#: an attribute, which opset 18 moved to an input)
LEAN_OPSET = 17


def lean_unsupported(policy: ExpoPolicy | PixelPolicy) -> str | None:
    """Why :func:`lean_onnx_bytes` cannot express ``policy``'s decision, or None when it can."""
    if isinstance(policy, PixelPolicy) or not isinstance(policy, ExpoPolicy):
        return "a pixel policy is expressed by expo_core.export.pixel_lean (encoder graphs + this graph)"
    cfg = policy.cfg
    if getattr(cfg.diffusion, "chunk_len", 1) != 1:
        return "action chunks (diffusion.chunk_len > 1) run the traced graph"
    if not uses_ddpm(cfg):
        return "DDIM acting (act_sampling_steps < T) runs the traced graph"
    if policy.critic.draws_subset(cfg.act_score):
        return "act_score 'subset_min' with a random critic subset per decision runs the traced graph"
    if cfg.act_score not in ("mean", "subset_min"):
        return f"act_score {cfg.act_score!r} is not one the lean graph knows"
    return None


class _Builder:
    """Collects nodes and initializers (name, array); names are unique by counter. Initializers
    given as torch tensors derive from the weights (``weights`` lists their indices, in order);
    numpy ones (scalars, shapes, split sizes) from the config alone."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list[tuple[str, np.ndarray]] = []
        self.weights: list[int] = []
        self._n = 0
        self._scalars: dict[tuple[str, float], str] = {}

    def const(self, array: np.ndarray | torch.Tensor, name: str, dtype: type = np.float32) -> str:
        if isinstance(array, torch.Tensor):
            self.weights.append(len(self.inits))
            a = array.detach().cpu().numpy()
        else:
            a = np.asarray(array)
        self._n += 1
        full = f"{name}_{self._n}"
        self.inits.append((full, np.ascontiguousarray(a.astype(dtype))))
        return full

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        return self.ops(kind, inputs, 1, **attrs)[0]

    def ops(self, kind: str, inputs: list[str], n_out: int, **attrs) -> list[str]:
        from onnx import helper

        self._n += 1
        outs = [f"{kind.lower()}_{self._n}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(kind, inputs, outs, **attrs))
        return outs

    def split(self, x: str, sizes: list[int], axis: int) -> list[str]:
        """x split along ``axis`` into pieces of ``sizes``."""
        if len(sizes) == 1:
            return [x]
        return self.ops(
            "Split", [x, self.const(np.array(sizes, np.int64), "split", np.int64)], len(sizes), axis=axis
        )

    def gemm(self, x: str, w_in_out: torch.Tensor, bias: str | torch.Tensor | None, name: str) -> str:
        """x @ W + bias; W (in, out) stored as given; bias a tensor name (broadcast row) or weights."""
        inputs = [x, self.const(w_in_out, name + ".w")]
        if isinstance(bias, torch.Tensor):
            inputs.append(self.const(bias.reshape(-1), name + ".b"))
        elif bias is not None:
            inputs.append(bias)
        return self.op("Gemm", inputs)

    def scalar(self, value: float, name: str) -> str:
        """A float32 scalar initializer, one per distinct (name, value)."""
        key = (name, float(value))
        if key not in self._scalars:
            self._scalars[key] = self.const(np.array(value, dtype=np.float32), name)
        return self._scalars[key]

    def shape(self, dims: tuple[int, ...], name: str) -> str:
        return self.const(np.array(dims, dtype=np.int64), name, np.int64)


def _swish(b: _Builder, x: str) -> str:
    return b.op("Mul", [x, b.op("Sigmoid", [x])])  # onnxruntime fuses this pair (QuickGelu)


@torch.no_grad()
def _denoise(b: _Builder, policy: ExpoPolicy, nobs: str, n: int) -> str:
    """The ancestral DDPM sampler (``DiffusionBase._ddpm``) -> base actions (N, d)."""
    base = policy.base
    den = base.denoiser
    T, d = base.num_steps, policy.cfg.act_dim
    ts = list(range(T - 1, -1, -1))
    t_share = den.time_proj(torch.tensor(ts, dtype=torch.float32))  # (T, H): weights only
    proj = b.gemm(nobs, den.in_obs.weight.T, den.in_obs.bias, "den.in_obs")  # (1, H)
    shared = b.op("Add", [proj, b.const(t_share, "den.t_share")])  # (T, H), step order
    rows = b.split(shared, [1] * T, axis=0)
    x = b.op("Reshape", ["base_noise", b.shape((n, d), "nd")])
    zs = b.split(b.op("Reshape", ["step_noise", b.shape((T * n, d), "tnd")]), [n] * T, axis=0)
    w_act = b.const(den.in_act.weight.T, "den.in_act.w")
    blocks = [
        (
            b.const(blk.norm.weight, "ln.g"),
            b.const(blk.norm.bias, "ln.b"),
            blk.norm.eps,
            b.const(blk.fc1.weight.T, "fc1.w"),
            b.const(blk.fc1.bias, "fc1.b"),
            b.const(blk.fc2.weight.T, "fc2.w"),
            b.const(blk.fc2.bias, "fc2.b"),
        )
        for blk in den.blocks
    ]
    w_out, b_out = b.const(den.out.weight.T, "den.out.w"), b.const(den.out.bias, "den.out.b")
    for i, t in enumerate(ts):
        x = _ddpm_step(b, base, x, rows[i], zs[i], t, w_act, blocks, w_out, b_out)
    return x


def _ddpm_step(
    b: _Builder,
    base: DiffusionBase,
    x: str,
    row: str,
    z: str,
    t: int,
    w_act: str,
    blocks: list[tuple],
    w_out: str,
    b_out: str,
) -> str:
    """One denoising step of rows x (m, d) at step index t: ``Denoiser.forward_shared_`` with
    this step's shared row (1, H), then the ancestral update with this step's noise z (m, d)."""
    h = b.op("Gemm", [x, w_act, row])
    for g, beta, eps, w1, b1, w2, b2 in blocks:
        ln = b.op("LayerNormalization", [h, g, beta], axis=-1, epsilon=float(eps))
        f = _swish(b, b.op("Gemm", [ln, w1, b1]))
        h = b.op("Add", [h, b.op("Gemm", [f, w2, b2])])
    e = b.op("Gemm", [_swish(b, h), w_out, b_out])
    # x <- (x - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) [+ sqrt(beta_t) z], clipped
    x = b.op("Sub", [x, b.op("Mul", [e, b.scalar(base._eps_coef[t], "eps_coef")])])
    x = b.op("Div", [x, b.scalar(base._sqrt_alpha[t], "sqrt_alpha")])
    if t > 0:
        x = b.op("Add", [x, b.op("Mul", [z, b.scalar(base._sigma[t], "sigma")])])
    return b.op("Clip", [x, b.scalar(-1.0, "lo"), b.scalar(1.0, "hi")])


@torch.no_grad()
def _edit(b: _Builder, policy: ExpoPolicy, nobs: str, x: str, n: int) -> str:
    """``Editor.act`` with explicit noise -> edited actions (N, d)."""
    ed = policy.editor
    o, d = policy.cfg.obs_dim, policy.cfg.act_dim
    first, *rest = ed.net.net
    shared = b.gemm(nobs, first.weight[:, :o].T, first.bias, "ed.in_obs")  # (1, H)
    h = b.gemm(x, first.weight[:, o:].T, shared, "ed.in_act")
    for layer in rest:
        h = (
            b.op("Relu", [h])
            if isinstance(layer, torch.nn.ReLU)
            else b.gemm(h, layer.weight.T, layer.bias, "ed")
        )
    mu, log_std = b.split(h, [d, d], axis=1)
    c = ed.cfg
    log_std = b.op("Clip", [log_std, b.scalar(c.log_std_min, "ls_min"), b.scalar(c.log_std_max, "ls_max")])
    noise = b.op("Reshape", ["edit_noise", b.shape((n, d), "nd")])
    u = b.op("Tanh", [b.op("Add", [mu, b.op("Mul", [b.op("Exp", [log_std]), noise])])])
    edited = b.op("Add", [x, b.op("Mul", [u, b.scalar(ed.beta, "beta")])])
    return b.op("Clip", [edited, b.scalar(-1.0, "lo"), b.scalar(1.0, "hi")])


@torch.no_grad()
def _score(b: _Builder, policy: ExpoPolicy, nobs: str, cands: str) -> str:
    """The critics' acting score (``ExpoPolicy.q_values``) of the K candidates -> (K,)."""
    cr = policy.critic
    o, E = policy.cfg.obs_dim, cr.num
    lin0 = cr.linears[0]
    h1 = lin0.weight.shape[-1]
    w_obs = lin0.weight[:, :o].permute(1, 0, 2).reshape(o, E * h1)  # member m in columns [m*h1, (m+1)*h1)
    w_act = lin0.weight[:, o:].permute(1, 0, 2).reshape(-1, E * h1)
    shared = b.gemm(nobs, w_obs, lin0.bias.reshape(-1), "cr.in_obs")  # (1, E*h1)
    h_all = b.gemm(cands, w_act, shared, "cr.in_act")  # (K, E*h1)
    parts = b.split(h_all, [h1] * E, axis=1)
    last = []
    for m in range(E):
        h = parts[m]
        for i, lin in enumerate(cr.linears):
            if i > 0:
                h = b.gemm(h, lin.weight[m], lin.bias[m, 0], f"cr{m}.l{i}")
            if cr.cfg.layer_norm:
                norm = cr.norms[i]
                g, beta = b.const(norm.weight[m, 0], "cr.ln.g"), b.const(norm.bias[m, 0], "cr.ln.b")
                h = b.op("LayerNormalization", [h, g, beta], axis=-1, epsilon=1e-5)
            h = b.op("Relu", [h])
        last.append(h)
    hl = cr.head.weight.shape[1]
    head = torch.zeros(E * hl, E)
    for m in range(E):
        head[m * hl : (m + 1) * hl, m] = cr.head.weight[m, :, 0]
    feats = b.op("Concat", last, axis=1) if E > 1 else last[0]
    q = b.gemm(feats, head, cr.head.bias.reshape(-1), "cr.head")  # (K, E)
    reduce = "ReduceMean" if policy.cfg.act_score == "mean" else "ReduceMin"
    return b.op(reduce, [q], axes=[1], keepdims=0)


@torch.no_grad()
def _build(policy: ExpoPolicy) -> _Builder:
    """The lean graph's nodes and initializers for ``policy`` (module docstring)."""
    from onnx import helper

    why = lean_unsupported(policy)
    if why is not None:
        raise ValueError(f"lean graph: {why}")
    policy = policy.cpu() if any(t.device.type != "cpu" for t in policy.state_dict().values()) else policy
    cfg = policy.cfg
    n, d = cfg.num_samples, cfg.act_dim
    k = 2 * n if cfg.use_editor else n
    b = _Builder()
    nobs = b.op("Div", [b.op("Sub", [INPUT_OBS, b.const(policy.normalizer.mean, "obs_mean")]),
                        b.const(policy.normalizer.std, "obs_std")])  # fmt: skip
    x = _denoise(b, policy, nobs, n)
    cands = b.op("Concat", [x, _edit(b, policy, nobs, x, n)], axis=0) if cfg.use_editor else x
    q = _score(b, policy, nobs, cands)
    b.nodes.append(helper.make_node("Reshape", [q, b.shape((1, k), "1k")], ["q"]))
    b.nodes.append(helper.make_node("ArgMax", ["q"], ["index"], axis=1, keepdims=0))
    b.nodes.append(helper.make_node("Gather", [cands, "index"], ["action"], axis=0))
    b.nodes.append(helper.make_node("Reshape", [cands, b.shape((1, k, d), "1kd")], ["candidates"]))
    return b


def _serialize(b: _Builder, cfg: ExpoConfig, metadata: dict[str, str] | None) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    n, d, o = cfg.num_samples, cfg.act_dim, cfg.obs_dim
    k = 2 * n if cfg.use_editor else n
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(INPUT_OBS, f32, [1, o])]
    inputs += [helper.make_tensor_value_info(name, f32, list(s)) for name, s in noise_shapes(cfg).items()]
    shapes = {"action": [1, d], "candidates": [1, k, d], "q": [1, k], "index": [1]}
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64 if name == "index" else f32, shapes[name])
        for name in OUTPUT_NAMES
    ]
    inits = [numpy_helper.from_array(a, name) for name, a in b.inits]
    graph = helper.make_graph(b.nodes, "expo_otf_lean", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", LEAN_OPSET)])
    model.ir_version = 8
    model.producer_name = "expo_core.export.lean"
    meta = {"expo.format": ONNX_FORMAT, "expo.graph": LEAN_GRAPH, "expo.config": cfg.to_json()}
    for key, value in (meta | dict(metadata or {})).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return model.SerializeToString()


def lean_onnx_bytes(policy: ExpoPolicy, *, metadata: dict[str, str] | None = None) -> bytes:
    """The serialized lean graph of ``policy``'s decision at batch 1 (module docstring); inputs
    and outputs as the traced graph's, opset :data:`LEAN_OPSET`, ``metadata`` added to its
    ``metadata_props``. Raises ValueError (with :func:`lean_unsupported`'s reason) for a policy
    it cannot express."""
    return _serialize(_build(policy), policy.cfg, metadata)


@dataclass(frozen=True)
class LeanTemplate:
    """The lean graph of one config, serialized once; new weights are copied into its bytes.

    Serializing the ~13 MB model holds the GIL for ~20 ms (protobuf, in C), which a weight swap
    in the policy node's worker thread would take from the control loop. As
    :class:`~expo_core.export.graph.GraphTemplate` does for the traced graph, the template is
    built once per config from a policy with distinct random values, ``slots`` locates each
    weight-derived initializer's raw bytes in it, and :meth:`with_weights` rebuilds only the
    initializer arrays for new weights (time shares, stacked critic weights, block-diagonal
    heads included) and copies them in (one 13 MB copy, then a memcpy per initializer)."""

    cfg: ExpoConfig
    model: bytes
    slots: tuple[tuple[int, int], ...]

    @classmethod
    @torch.no_grad()
    def build(cls, cfg: ExpoConfig, seed: int = 0) -> LeanTemplate:
        """ValueError for a config the lean graph does not express; RuntimeError when a tensor
        cannot be located (then the graph would not be swappable byte for byte)."""
        policy = ExpoPolicy(cfg)
        gen = torch.Generator().manual_seed(seed)
        for t in [*policy.parameters(), policy.normalizer.mean, policy.normalizer.std]:
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        b = _build(policy)
        model = _serialize(b, cfg, {"expo.weights": "template"})
        slots, pos = [], 0
        for i in b.weights:
            raw = b.inits[i][1].tobytes()
            off = model.find(raw, pos)  # random values: the bytes occur once, after the previous
            if off < 0:
                raise RuntimeError(f"cannot locate initializer {b.inits[i][0]} in the lean template")
            slots.append((off, len(raw)))
            pos = off + len(raw)
        return cls(cfg, model, tuple(slots))

    def fits(self, policy: ExpoPolicy | PixelPolicy) -> bool:
        """Whether :meth:`with_weights` takes ``policy``: a state policy of the same config."""
        return (
            isinstance(policy, ExpoPolicy) and not isinstance(policy, PixelPolicy) and policy.cfg == self.cfg
        )

    def with_weights(self, policy: ExpoPolicy) -> bytes:
        """The template's graph holding ``policy``'s weights (ValueError for another config)."""
        if not self.fits(policy):
            raise ValueError(
                "policy is not a state policy of the template's config: build a new LeanTemplate"
            )
        b = _build(policy)
        if len(b.weights) != len(self.slots):
            raise ValueError("policy's graph has other initializers than the template's")
        buf = bytearray(self.model)
        for i, (off, n) in zip(b.weights, self.slots):
            raw = b.inits[i][1].tobytes()
            if len(raw) != n:
                raise ValueError(f"initializer {b.inits[i][0]} has {len(raw)} bytes, the template {n}")
            buf[off : off + n] = raw
        return bytes(buf)
