"""Inference backends: loading bundles and checkpoints, decisions, verified weight swaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import FORMAT, WeightsError, policy_weights_bytes
from expo_core.spec import task_obs_spec
from expo_policy.backends import TorchBackend, make_backend, read_weights_source, resolve_device
from expo_policy.weights_swap import WeightsSwapper
from expo_ros.conversions import WeightsPayload

LIFT_OBS_DIM = task_obs_spec("lift").dim  # 19
OBS = np.linspace(-0.5, 1.0, LIFT_OBS_DIM).astype(np.float32)


def _bundle(agent: ExpoAgent, version: int) -> tuple[bytes, str]:
    return policy_weights_bytes(agent, version=version)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_make_backend_names() -> None:
    assert isinstance(make_backend("torch"), TorchBackend)
    with pytest.raises(
        ValueError,
        match=r"unknown inference backend 'jax'; available: \['auto', 'onnxruntime', 'tensorrt', 'torch'\]",
    ):
        make_backend("jax")


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="invalid"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_read_checkpoint_bundle_and_directory(tmp_path: Path, checkpoint: Path, agent: ExpoAgent) -> None:
    src = read_weights_source(checkpoint)
    assert (src.kind, src.version) == ("checkpoint", 0)
    assert read_weights_source(checkpoint.with_suffix("")).path == checkpoint  # save_checkpoint's stem
    data, sha = _bundle(agent, version=5)
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    (bundle_dir / "policy.safetensors").write_bytes(data)
    src = read_weights_source(bundle_dir)  # a directory with exactly one file
    assert (src.kind, src.version, src.sha256, src.data) == ("bundle", 5, sha, data)
    with pytest.raises(WeightsError, match="no checkpoint or policy-weights file"):
        read_weights_source(tmp_path / "missing")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        read_weights_source(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsError, match="2 .safetensors files"):
        read_weights_source(tmp_path)


def test_decide_matches_expo_policy_and_is_consistent(checkpoint: Path, agent: ExpoAgent) -> None:
    backend = TorchBackend(seed=3)
    assert backend.load(checkpoint).kind == "checkpoint"
    d = backend.decide(OBS)
    n = backend.num_base_samples
    assert d.action.shape == (7,) and d.candidates.shape == (2 * n, 7) and d.q.shape == (2 * n,)
    assert d.action.dtype == np.float32 and np.all(np.abs(d.candidates) <= 1.0)
    assert d.index == int(np.argmax(d.q))
    np.testing.assert_array_equal(d.action, d.candidates[d.index])
    # Reference: the core policy with the same generator seed gives the same decision.
    ref = agent.policy.eval().decide(torch.as_tensor(OBS)[None], torch.Generator().manual_seed(3))
    np.testing.assert_allclose(d.candidates, ref.candidates[0].numpy(), atol=1e-6)
    assert d.index == int(ref.index[0])
    with pytest.raises(ValueError, match="18 values, the policy expects 19"):
        backend.decide(OBS[:-1])


def test_a_chunked_base_s_plan_comes_back_with_the_decision(
    tmp_path: Path, checkpoint: Path, agent: ExpoAgent
) -> None:
    """diffusion.chunk_len k = 4: the decision carries the chosen candidate's next 3 actions, as
    expo_core's decision does with the same seed; a base without chunks gives no plan."""
    from dataclasses import replace

    from expo_core.checkpoint import save_checkpoint

    cfg = replace(agent.cfg, diffusion=replace(agent.cfg.diffusion, chunk_len=4))
    chunked = ExpoAgent(cfg, seed=1)
    save_checkpoint(tmp_path / "chunked", chunked)
    backend = TorchBackend(seed=5)
    backend.load(tmp_path / "chunked.safetensors")
    d = backend.decide(OBS)
    assert d.plan is not None and d.plan.shape == (3, 7) and d.plan.dtype == np.float32
    assert np.all(np.abs(d.plan) <= 1.0)
    ref = chunked.policy.eval().decide(torch.as_tensor(OBS)[None], torch.Generator().manual_seed(5))
    np.testing.assert_allclose(d.plan, ref.plan[0].numpy(), atol=1e-6)
    plain = TorchBackend()
    plain.load(checkpoint)
    assert plain.decide(OBS).plan is None


def test_num_base_samples_override(checkpoint: Path) -> None:
    backend = TorchBackend(num_base_samples=6)
    backend.load(checkpoint)
    assert backend.num_base_samples == 6 and backend.decide(OBS).candidates.shape == (12, 7)
    with pytest.raises(ValueError, match="num_base_samples"):
        TorchBackend(num_base_samples=0)


def test_swap_weights_accepts_good_and_keeps_old_on_bad(
    checkpoint: Path, agent: ExpoAgent, make_agent
) -> None:
    backend = TorchBackend()
    backend.load(checkpoint)
    before = backend.policy
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        backend.swap_weights(*_bundle(make_agent(seed=1), 1)[:1], "0" * 64)
    wide = make_agent(seed=1, critic_hidden=(64, 64))
    with pytest.raises(WeightsError, match="shape mismatch with the running policy"):
        backend.swap_weights(*_bundle(wide, 2))
    other_task = make_agent(seed=1, obs_dim=LIFT_OBS_DIM + 4)
    with pytest.raises(WeightsError, match="shape mismatch"):
        backend.swap_weights(*_bundle(other_task, 3))
    assert backend.policy is before and _same_state(backend.policy, agent.policy)
    new = make_agent(seed=7)
    backend.swap_weights(*_bundle(new, 4))
    assert backend.policy is not before and _same_state(backend.policy, new.policy)


def test_weights_swapper_versions_and_failures(checkpoint: Path, make_agent) -> None:
    backend = TorchBackend()
    backend.load(checkpoint)
    swapper = WeightsSwapper(backend, version=2)
    good = make_agent(seed=5)
    data, sha = _bundle(good, 3)
    try:
        ev = swapper.offer(WeightsPayload(2, data, sha, FORMAT))
        assert ev is not None and not ev.ok and "ignored" in ev.error and swapper.ignored == 1
        ev = swapper.offer(WeightsPayload(3, data, sha, "pickle"))
        assert ev is not None and "format 'pickle'" in ev.error and swapper.rejected == 1
        assert swapper.offer(WeightsPayload(3, data, "f" * 64, FORMAT)) is None  # verified in the worker
        assert swapper.offer(WeightsPayload(4, data, sha, FORMAT)) is None
        assert swapper.newest == 4
        swapper.wait(timeout_s=30)
        events = swapper.poll()
        assert [(e.version, e.ok) for e in events] == [(3, False), (4, True)]
        assert "sha256 mismatch" in events[0].error
        assert swapper.version == 4 and (swapper.accepted, swapper.rejected) == (1, 2)
        assert _same_state(backend.policy, good.policy)
    finally:
        swapper.close()
