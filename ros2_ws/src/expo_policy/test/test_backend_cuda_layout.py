"""The CUDA graph backend's buffer layout, checked on the CPU (the capture and the replay need a
GPU: ``test_backend_select.py::test_cuda_graph_replay_is_the_eager_decision``, skipped here).

What the captured graph computes is :class:`PackedDecision`: the traced decision with its four
outputs in one flat buffer, and its noise inputs are views of one flat buffer. Both must give
exactly the decision of :class:`~expo_core.export.OTFGraph` on the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from expo_core.export import OTFGraph, noise_shapes, observation_shapes
from expo_policy.backends.torch_cuda import (
    PackedDecision,
    noise_views,
    packed_module,
    packed_size,
    unpack_decision,
)


@pytest.mark.parametrize("act_steps", [0, 2])  # DDPM (base, step and edit noise) and DDIM-2
def test_packed_decision_is_the_traced_decision(make_agent, act_steps: int) -> None:
    policy = make_agent(seed=3, act_sampling_steps=act_steps).policy.eval()
    cfg = policy.cfg
    shapes = list(noise_shapes(cfg).values())
    assert len(shapes) == (3 if act_steps == 0 else 2)
    (obs_shape,) = observation_shapes(cfg).values()
    gen = torch.Generator().manual_seed(5)
    flat = torch.zeros(sum(int(np.prod(s)) for s in shapes))
    views = noise_views(flat, shapes)
    flat.normal_(generator=gen)  # fills every view
    assert all(v.shape == s for v, s in zip(views, shapes))
    assert all(v.abs().sum() > 0 for v in views)
    obs = torch.randn(obs_shape, generator=gen)
    with torch.no_grad():
        ref = OTFGraph(policy)(obs, *(v.clone() for v in views))
        packed = PackedDecision(policy)(obs, *views)
    k = 2 * cfg.num_samples
    assert packed.shape == (packed_size(cfg.act_dim, k),) and packed.dtype == torch.float32
    d = unpack_decision(packed.numpy(), cfg.act_dim, k)
    np.testing.assert_array_equal(d.action, ref[0][0].numpy())
    np.testing.assert_array_equal(d.candidates, ref[1][0].numpy())
    np.testing.assert_array_equal(d.q, ref[2][0].numpy())
    assert d.index == int(ref[3][0]) and d.candidates.shape == (k, cfg.act_dim)
    # The decision owns its arrays: the reused buffer may change under it.
    buf = packed.numpy().copy()
    d2 = unpack_decision(buf, cfg.act_dim, k)
    buf[:] = 0.0
    np.testing.assert_array_equal(d2.candidates, d.candidates)


def test_layout_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="noise buffer of shape"):
        noise_views(torch.zeros(5), [(1, 2, 3)])
    with pytest.raises(ValueError, match="expected"):
        unpack_decision(np.zeros(3, dtype=np.float32), 7, 16)


def test_the_compiled_packed_decision_is_the_eager_one(make_agent) -> None:
    """``compile=True`` compiles :class:`PackedDecision` as one graph (``fullgraph``: a graph break
    would raise) and computes the same decision, here with inductor's CPU code (~10-20 s to
    compile the tiny policy); capturing it in a CUDA graph needs a GPU: test_backend_select.py's
    ``test_the_inductor_compiled_capture_is_the_eager_decision``, skipped here."""
    policy = make_agent(seed=3).policy.eval()
    assert type(packed_module(policy)) is PackedDecision
    compiled = packed_module(policy, compile=True)
    assert type(compiled._orig_mod) is PackedDecision and compiled._orig_mod.otf.policy is policy
    (obs_shape,) = observation_shapes(policy.cfg).values()
    gen = torch.Generator().manual_seed(4)
    inputs = [torch.randn(s, generator=gen) for s in (obs_shape, *noise_shapes(policy.cfg).values())]
    with torch.no_grad():
        ref = PackedDecision(policy)(*inputs)
        out = compiled(*inputs)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)
