"""Graph backends: ONNX Runtime decisions against torch with the same noise, verified weight swaps
that keep the old graph on bad bundles, provider choice, and TensorRT where it is installed.

Tolerance torch vs ONNX Runtime (CPU, float32): 1e-4 absolute on action, candidates and q."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import FORMAT, WeightsError, policy_weights_bytes
from expo_core.export import DEFAULT_ATOL, noise_shapes
from expo_policy.backends import BackendUnavailableError, make_backend
from expo_policy.weights_swap import WeightsSwapper
from expo_ros.conversions import WeightsPayload

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
pytestmark = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")

OBS = np.linspace(-0.5, 1.0, 19).astype(np.float32)


def _torch_decision_with_numpy_noise(agent: ExpoAgent, obs: np.ndarray, seed: int, decisions: int):
    """The torch decisions a graph backend seeded with ``seed`` makes: same noise, drawn in order."""
    rng = np.random.default_rng(seed)
    policy = agent.policy.eval()
    out = []
    for _ in range(decisions):
        noise = {
            k: torch.from_numpy(rng.standard_normal(s, dtype=np.float32))
            for k, s in noise_shapes(policy.cfg).items()
        }
        base = torch.cat([noise["base_noise"][None], noise["step_noise"]])
        out.append(policy.decide(torch.as_tensor(obs)[None], base_noise=base, edit_noise=noise["edit_noise"]))
    return out


def test_make_backend_builds_onnxruntime(checkpoint: Path) -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = make_backend("onnxruntime", device="cpu", seed=0, num_base_samples=None, num_threads=1)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.providers == ["CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match="no weights"):
        backend.decide(OBS)


@pytest.mark.parametrize("graph", ["traced", "auto"])
def test_decide_matches_torch_with_the_same_noise(checkpoint: Path, agent: ExpoAgent, graph: str) -> None:
    """Both graphs (``auto`` on CPU: the lean one) make torch's decisions from the same noise."""
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(device="cpu", seed=3, graph=graph)
    assert backend.load(checkpoint).kind == "checkpoint"
    g = backend.compiled
    assert g.max_abs_diff is not None and g.max_abs_diff <= DEFAULT_ATOL  # the load-time check ran
    assert g.lean == (graph == "auto") and g.traced == (graph == "traced")
    assert g.export_s > 0 and g.compile_s > 0 and len(g.onnx_sha256) == 64
    refs = _torch_decision_with_numpy_noise(agent, OBS, seed=3, decisions=3)
    for ref in refs:
        d = backend.decide(OBS)
        n = backend.num_base_samples
        assert d.action.shape == (7,) and d.candidates.shape == (2 * n, 7) and d.q.shape == (2 * n,)
        assert d.action.dtype == np.float32 and np.all(np.abs(d.candidates) <= 1.0)
        np.testing.assert_allclose(d.candidates, ref.candidates[0].numpy(), atol=DEFAULT_ATOL, rtol=0)
        np.testing.assert_allclose(d.q, ref.q[0].numpy(), atol=DEFAULT_ATOL, rtol=0)
        assert d.index == int(np.argmax(d.q)) == int(ref.index[0])
        np.testing.assert_array_equal(d.action, d.candidates[d.index])
    with pytest.raises(ValueError, match="18 values, the policy expects 19"):
        backend.decide(OBS[:-1])


def test_num_base_samples_override_is_exported(checkpoint: Path) -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(device="cpu", num_base_samples=6, check_trials=0)
    backend.load(checkpoint)
    assert backend.num_base_samples == 6 and backend.decide(OBS).candidates.shape == (12, 7)
    assert backend.compiled.max_abs_diff is None
    with pytest.raises(ValueError, match="num_base_samples"):
        OnnxRuntimeBackend(num_base_samples=0)


def test_swap_keeps_old_graph_on_bad_bundles_and_takes_good_ones(checkpoint: Path, make_agent) -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(device="cpu", seed=1, graph="traced")
    backend.load(checkpoint)
    before = backend.compiled
    good = make_agent(seed=7)
    data, sha = policy_weights_bytes(good, version=2)
    corrupted = bytearray(data)
    corrupted[len(corrupted) // 2] ^= 0xFF
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        backend.swap_weights(bytes(corrupted), sha)
    with pytest.raises(WeightsError, match="undecodable"):
        backend.swap_weights(data[: len(data) // 2], None)  # truncated, no hash to catch it
    wide = make_agent(seed=1, critic_hidden=(64, 64))
    with pytest.raises(WeightsError, match="shape mismatch with the running policy"):
        backend.swap_weights(*policy_weights_bytes(wide, version=3))
    assert backend.compiled is before
    swapper = WeightsSwapper(backend, version=1)  # prepare (export + session) in its worker thread
    try:
        assert swapper.offer(WeightsPayload(4, data, sha, FORMAT)) is None
        swapper.wait(timeout_s=60)
        assert [(e.version, e.ok) for e in swapper.poll()] == [(4, True)]
    finally:
        swapper.close()
    now = backend.compiled
    assert now is not before and now.onnx_sha256 != before.onnx_sha256
    assert not now.traced and now.template is before.template  # weights copied, graph not re-traced
    assert now.max_abs_diff is not None and now.max_abs_diff <= DEFAULT_ATOL
    d = backend.decide(OBS)
    with torch.no_grad():  # the candidates' Q under the new critics
        p = good.policy.eval()
        ref = p.q_values(p.normalizer(torch.as_tensor(OBS)[None]), torch.as_tensor(d.candidates)[None])
    np.testing.assert_allclose(d.q, ref[0].numpy(), atol=DEFAULT_ATOL, rtol=0)


def test_swap_with_a_new_config_retraces(checkpoint: Path, agent: ExpoAgent) -> None:
    """A bundle whose config changes the graph (here the editor's beta) gets a new template."""
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(device="cpu", seed=5, graph="traced")
    backend.load(checkpoint)
    cfg = agent.cfg.replace(editor=dataclasses.replace(agent.cfg.editor, beta=0.05))
    other = ExpoAgent(cfg, seed=9)
    backend.swap_weights(*policy_weights_bytes(other, version=2))
    g = backend.compiled
    assert g.traced and g.template.cfg == cfg and g.max_abs_diff <= DEFAULT_ATOL
    d = backend.decide(OBS)
    n = backend.num_base_samples
    assert np.all(np.abs(d.candidates[n:] - d.candidates[:n]) <= 0.05 + 1e-6)  # the new beta bounds edits


def test_ort_providers() -> None:
    from expo_policy.backends.onnx_runtime import CPU_EP, CUDA_EP, ort_providers

    assert ort_providers("cpu", [CUDA_EP, CPU_EP]) == [CPU_EP]
    assert ort_providers("auto", [CPU_EP]) == [CPU_EP]
    assert ort_providers("auto", [CUDA_EP, CPU_EP]) == [(CUDA_EP, {"device_id": 0}), CPU_EP]
    assert ort_providers("cuda:1", [CUDA_EP, CPU_EP])[0] == (CUDA_EP, {"device_id": 1})
    with pytest.raises(BackendUnavailableError, match="no CUDAExecutionProvider"):
        ort_providers("cuda", [CPU_EP])
    with pytest.raises(ValueError, match="invalid"):
        ort_providers("gpu", [CPU_EP])


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: its absence cannot be tested here")
def test_tensorrt_absent_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        make_backend("tensorrt", device="cuda", seed=0, num_base_samples=None, num_threads=1)


@pytest.mark.skipif(
    not (HAVE_TRT and torch.cuda.is_available()),
    reason="TensorRT not installed" if not HAVE_TRT else "TensorRT needs CUDA; no GPU here",
)
def test_tensorrt_matches_onnxruntime(tmp_path: Path, checkpoint: Path) -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend
    from expo_policy.backends.tensorrt_engine import TensorRTBackend

    trt = TensorRTBackend(seed=2, cache_dir=tmp_path)
    trt.load(checkpoint)
    assert len(list(tmp_path.glob("*.engine"))) == 1
    ort = OnnxRuntimeBackend(device="cpu", seed=2)
    ort.load(checkpoint)
    for _ in range(3):  # the same numpy noise stream: the same decisions up to TF32 rounding
        a, b = trt.decide(OBS), ort.decide(OBS)
        np.testing.assert_allclose(a.candidates, b.candidates, atol=1e-2)
        np.testing.assert_allclose(a.q, b.q, atol=1e-2, rtol=1e-2)
    again = TensorRTBackend(seed=2, cache_dir=tmp_path)
    again.load(checkpoint)  # served from the cache, holding these very weights: no refit
    assert len(list(tmp_path.glob("*.engine"))) == 1 and not again.refitted


@pytest.mark.skipif(
    not (HAVE_TRT and torch.cuda.is_available()),
    reason="TensorRT not installed" if not HAVE_TRT else "TensorRT needs CUDA; no GPU here",
)
def test_tensorrt_swap_refits_the_cached_engine(tmp_path: Path, checkpoint: Path, make_agent) -> None:
    """New weights of the same config: the cached refittable engine is refit, not rebuilt."""
    from expo_policy.backends.tensorrt_engine import TensorRTBackend

    trt = TensorRTBackend(seed=2, cache_dir=tmp_path)
    trt.load(checkpoint)
    engines = sorted(tmp_path.glob("*.engine"))
    new = make_agent(seed=12)
    trt.swap_weights(*policy_weights_bytes(new, version=2))  # checked against torch in prepare
    assert trt.refitted and sorted(tmp_path.glob("*.engine")) == engines
    assert trt.compiled.max_abs_diff is not None and trt.compiled.max_abs_diff <= 1e-2
