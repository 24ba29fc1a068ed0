"""``backend: auto`` and hot-swaps on every backend that runs here.

auto: the first available of AUTO_ORDER is built and the reason logged; a missing runtime
(onnxruntime import made to fail) falls back to the next; a device limits GPU/CPU candidates.
Hot-swap: new weights are prepared in the WeightsSwapper's worker thread while the control
thread keeps deciding, then committed between decisions; the decisions after the commit use the
new critics (their Q values match eager torch with the new weights)."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import FORMAT, WeightsError, policy_weights_bytes, save_checkpoint
from expo_core.config import DiffusionConfig
from expo_policy.backends import (
    AUTO_ORDER,
    BackendUnavailableError,
    TorchBackend,
    make_backend,
    weights_chunk_len,
)
from expo_policy.weights_swap import WeightsSwapper
from expo_ros.conversions import WeightsPayload

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
CUDA = torch.cuda.is_available()
OBS = np.linspace(-0.5, 1.0, 19).astype(np.float32)
COMMON = {"seed": 0, "num_base_samples": None, "num_threads": 1}


def test_auto_order_is_fastest_first_and_cpu_last() -> None:
    labels = [label for label, *_ in AUTO_ORDER]
    assert labels == [
        "tensorrt (cuda)",
        "onnxruntime (CUDA EP)",
        "torch cuda-graph (cuda)",
        "onnxruntime (cpu)",
        "torch (cpu)",
    ]


@pytest.mark.skipif(CUDA or not HAVE_ORT, reason="expects a CPU-only machine with onnxruntime")
def test_auto_on_this_cpu_picks_onnxruntime_and_logs_why(caplog) -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    with caplog.at_level(logging.INFO, logger="expo_policy.backends"):
        backend = make_backend("auto", device="auto", **COMMON)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.providers == ["CPUExecutionProvider"]
    why = backend.selection
    assert why.startswith("backend auto chose onnxruntime (cpu)")
    if not HAVE_TRT:
        assert "tensorrt (cuda): inference backend 'tensorrt' is not available" in why
    assert "onnxruntime (CUDA EP): device 'cuda' requested but this onnxruntime has no" in why
    assert "torch cuda-graph (cuda): torch CUDA graphs need a CUDA GPU" in why
    assert why in caplog.text


def test_auto_falls_back_to_torch_when_onnxruntime_is_missing(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with caplog.at_level(logging.INFO, logger="expo_policy.backends"):
        backend = make_backend("auto", device="cpu", **COMMON)
    assert type(backend) is TorchBackend and backend.device.type == "cpu"
    assert backend.selection.startswith("backend auto chose torch (cpu)")
    assert "onnxruntime (cpu): inference backend 'onnxruntime' is not available" in backend.selection
    assert "tensorrt (cuda): device 'cpu' asked" in backend.selection  # cpu: no GPU candidates
    assert backend.selection in caplog.text
    with pytest.raises(BackendUnavailableError, match="not available: onnxruntime is not installed"):
        make_backend("onnxruntime", device="cpu", **COMMON)  # named explicitly: no fallback


@pytest.mark.skipif(CUDA, reason="checks the error where no GPU exists")
def test_auto_on_cuda_without_a_gpu_names_every_reason() -> None:
    with pytest.raises(BackendUnavailableError, match="no inference backend can run here") as e:
        make_backend("auto", device="cuda", **COMMON)
    assert "torch (cpu): device 'cuda' asked" in str(e.value)
    with pytest.raises(ValueError, match="CUDA is not available"):
        make_backend("torch", device="cuda", **COMMON)
    with pytest.raises(ValueError, match="invalid"):
        make_backend("auto", device="gpu", **COMMON)


def _chunk_agent(make_agent) -> ExpoAgent:
    tiny = {"hidden_dim": 32, "num_blocks": 1, "block_dim": 64, "time_embed_dim": 8, "num_steps": 3}
    return make_agent(diffusion=DiffusionConfig(**tiny, chunk_len=4))


def test_weights_chunk_len_reads_checkpoints_and_bundles(
    checkpoint: Path, make_agent, tmp_path: Path
) -> None:
    assert weights_chunk_len(checkpoint) == 1
    agent = _chunk_agent(make_agent)
    save_checkpoint(tmp_path / "chunks", agent)
    assert weights_chunk_len(tmp_path / "chunks") == 4  # x.safetensors + x.json
    bundle = tmp_path / "bundle.safetensors"
    bundle.write_bytes(policy_weights_bytes(agent, version=3)[0])
    assert weights_chunk_len(bundle) == 4  # the config in the bundle's metadata
    (tmp_path / "chunks.json").write_text("{}")
    with pytest.raises(WeightsError, match="no readable config"):
        weights_chunk_len(tmp_path / "chunks")


def test_auto_with_action_chunks_picks_eager_torch_and_says_why(make_agent, tmp_path: Path) -> None:
    """Before: auto picked onnxruntime, whose load then failed configure ("action chunks need the
    torch backend"); now the backends that compute one action per decision are passed over."""
    save_checkpoint(tmp_path / "chunks", _chunk_agent(make_agent))
    backend = make_backend("auto", device="cpu", chunks=True, **COMMON)
    assert type(backend) is TorchBackend and backend.device.type == "cpu"
    if HAVE_ORT:
        assert "onnxruntime (cpu): does not run action chunks (diffusion.chunk_len > 1)" in backend.selection
    backend.load(tmp_path / "chunks")
    dec = backend.decide(OBS)
    assert dec.plan is not None and dec.plan.shape == (3, 7)  # the chosen candidate's other 3 steps
    if HAVE_ORT:  # named explicitly: no fallback, the load says why
        ort = make_backend("onnxruntime", device="cpu", **COMMON)
        with pytest.raises(WeightsError, match="action chunks need the torch backend"):
            ort.load(tmp_path / "chunks")


def _available(name: str) -> tuple[str, dict]:
    """(backend name, kwargs) for the hot-swap test, or pytest.skip with the reason."""
    if name == "torch (cpu)":
        return "torch", {"device": "cpu"}
    if name == "onnxruntime (cpu)":
        if not HAVE_ORT:
            pytest.skip("onnxruntime not installed")
        return "onnxruntime", {"device": "cpu"}
    if not CUDA:
        pytest.skip(f"{name} needs a CUDA GPU; torch sees none")
    if name == "tensorrt (cuda)" and not HAVE_TRT:
        pytest.skip("TensorRT not installed")
    if name == "onnxruntime (cuda)":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            pytest.skip("this onnxruntime has no CUDA execution provider")
    return {"torch cuda-graph (cuda)": "torch", "onnxruntime (cuda)": "onnxruntime"}.get(name, "tensorrt"), {
        "device": "cuda"
    }


@pytest.mark.parametrize(
    "name",
    ["torch (cpu)", "onnxruntime (cpu)", "torch cuda-graph (cuda)", "onnxruntime (cuda)", "tensorrt (cuda)"],
)
def test_hot_swap_keeps_deciding_and_takes_the_new_weights(
    name: str, checkpoint: Path, make_agent, tmp_path: Path, monkeypatch
) -> None:
    backend_name, kw = _available(name)
    monkeypatch.setenv("EXPO_TRT_CACHE", str(tmp_path / "trt"))
    backend = make_backend(backend_name, **(COMMON | kw))
    backend.load(checkpoint)
    backend.warmup()
    new = make_agent(seed=11)
    data, sha = policy_weights_bytes(new, version=2)
    window: list[float] = []  # when the worker's prepare started and ended
    prepare = backend.prepare

    def timed_prepare(*args):
        window.append(time.perf_counter())
        try:
            out = prepare(*args)
            # A prepare as slow as a large model's: on the CPU backends the real one can take
            # less than one decision (8 ms seen), so whether a decision fits inside was a matter
            # of timing; with the worker asleep here, none fitting means the swap blocks the loop.
            time.sleep(0.3)
            return out
        finally:
            window.append(time.perf_counter())

    monkeypatch.setattr(backend, "prepare", timed_prepare)
    swapper = WeightsSwapper(backend, version=1)
    ticks: list[tuple[float, float]] = []
    try:
        assert swapper.offer(WeightsPayload(2, data, sha, FORMAT)) is None
        # The control loop: decide (old weights) each tick, poll between ticks; the worker
        # prepares the new weights meanwhile and poll() commits them once ready.
        events, deadline = [], time.monotonic() + 120
        while not events and time.monotonic() < deadline:
            t0 = time.perf_counter()
            backend.decide(OBS)
            ticks.append((t0, time.perf_counter()))
            events = swapper.poll()
        assert [(e.version, e.ok) for e in events] == [(2, True)]
    finally:
        swapper.close()
    inside = [t for t in ticks if window[0] <= t[0] and t[1] <= window[1]]
    assert inside, f"no decision completed during the {window[1] - window[0]:.3f} s prepare"
    d = backend.decide(OBS)
    with torch.no_grad():  # the candidates' Q under the new critics
        p = new.policy.eval()
        ref = p.q_values(p.normalizer(torch.as_tensor(OBS)[None]), torch.as_tensor(d.candidates)[None])
    tol = 1e-4 if kw["device"] == "cpu" else 1e-2
    np.testing.assert_allclose(d.q, ref[0].numpy(), atol=tol, rtol=tol)


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a CUDA GPU; torch sees none (CPU-only machine)")
def test_cuda_graph_replay_is_the_eager_decision(checkpoint: Path) -> None:
    """make_backend('torch', device='cuda') replays a captured graph; its outputs equal OTFGraph
    run eagerly on the same static inputs (the noise the replay drew)."""
    from expo_core.export import OTFGraph
    from expo_policy.backends.torch_cuda import CudaGraphTorchBackend

    backend = make_backend("torch", device="cuda", **COMMON)
    assert isinstance(backend, CudaGraphTorchBackend)
    backend.load(checkpoint)
    for _ in range(3):
        d = backend.decide(OBS)
        c = backend.captured
        with torch.no_grad():
            ref = OTFGraph(c.policy)(*c.inputs)
        np.testing.assert_allclose(d.candidates, ref[1][0].cpu().numpy(), atol=1e-5)
        assert d.index == int(ref[3][0]) and d.action.shape == (7,)


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a CUDA GPU; torch sees none (CPU-only machine)")
def test_the_inductor_compiled_capture_is_the_eager_decision(checkpoint: Path) -> None:
    """CudaGraphTorchBackend(compile=True) replays the torch.compile'd decision; its outputs equal
    OTFGraph run eagerly on the same static inputs, within the fused kernels' rounding."""
    from expo_policy.backends.torch_cuda import CudaGraphTorchBackend, eager_difference

    backend = CudaGraphTorchBackend("cuda", seed=COMMON["seed"], compile=True)
    backend.load(checkpoint)
    assert eager_difference(backend, OBS, decisions=3) < 1e-4  # the plain capture: the test above
