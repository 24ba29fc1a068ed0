"""The onnxruntime backend's lean graph (``graph`` auto/lean, expo_core.export.lean): chosen on
CPU for what it expresses, the traced graph otherwise; weight swaps rebuild it from the weights
and are checked against torch like any graph. Tolerance as test_backend_onnx (1e-4 absolute)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import WeightsError, policy_weights_bytes
from expo_core.export import DEFAULT_ATOL
from expo_core.export.lean import LeanTemplate

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
pytestmark = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")

OBS = np.linspace(-0.5, 1.0, 19).astype(np.float32)


def _q_under(agent: ExpoAgent, candidates: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        p = agent.policy.eval()
        return p.q_values(p.normalizer(torch.as_tensor(OBS)[None]), torch.as_tensor(candidates)[None])[
            0
        ].numpy()


def test_graph_argument_is_checked() -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    with pytest.raises(ValueError, match="graph must be one of"):
        OnnxRuntimeBackend(device="cpu", graph="fast")


def test_lean_swap_rebuilds_from_weights(checkpoint: Path, make_agent) -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(device="cpu", seed=1)
    backend.load(checkpoint)
    before = backend.compiled
    assert before.lean and isinstance(before.template, LeanTemplate) and not before.traced
    wide = make_agent(seed=1, critic_hidden=(64, 64))
    with pytest.raises(WeightsError, match="shape mismatch with the running policy"):
        backend.swap_weights(*policy_weights_bytes(wide, version=3))
    assert backend.compiled is before
    good = make_agent(seed=7)
    backend.swap_weights(*policy_weights_bytes(good, version=2))
    now = backend.compiled
    assert now.lean and now.onnx_sha256 != before.onnx_sha256 and now.template is before.template
    assert now.max_abs_diff is not None and now.max_abs_diff <= DEFAULT_ATOL
    d = backend.decide(OBS)
    np.testing.assert_allclose(d.q, _q_under(good, d.candidates), atol=DEFAULT_ATOL, rtol=0)
    assert d.index == int(np.argmax(d.q))


def test_auto_falls_back_to_the_traced_graph(checkpoint: Path, make_agent) -> None:
    """DDIM acting is not in the lean graph: ``auto`` traces, ``lean`` refuses with the reason;
    a later swap to weights the lean graph expresses goes back to it."""
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    ddim = make_agent(seed=3)
    ddim.cfg = ddim.cfg.replace(act_sampling_steps=2)
    ddim.policy.cfg = ddim.cfg
    data, sha = policy_weights_bytes(ddim, version=1)
    backend = OnnxRuntimeBackend(device="cpu", seed=2)
    backend.load_bundle(data, sha)
    g = backend.compiled
    assert not g.lean and g.traced and g.template is not None and g.max_abs_diff <= DEFAULT_ATOL
    with pytest.raises(WeightsError, match="graph 'lean' asked, but DDIM acting"):
        OnnxRuntimeBackend(device="cpu", graph="lean").load_bundle(data, sha)
    backend.swap_weights(*policy_weights_bytes(make_agent(seed=4), version=2))
    assert backend.compiled.lean
