"""Pixel weights in the policy node's plumbing: the kind is read before loading, ``backend: auto``
never picks a backend that refuses pixel weights, and hot swaps accept the running policy's format
(PIXELS_FORMAT for a pixel policy, FORMAT for a state one) and nothing else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.checkpoint import FORMAT, PIXELS_FORMAT, WeightsError, policy_weights_bytes, save_checkpoint
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig
from expo_core.pixel_agent import PixelAgent, encoder_preset, pixel_expo_config
from expo_core.spec import task_obs_spec
from expo_policy.backends import AUTO_ORDER, TorchBackend, is_pixel_weights, make_backend
from expo_policy.backends.registry import PIXEL_CUDA_EAGER, _order
from expo_policy.weights_swap import WeightsSwapper
from expo_ros.conversions import WeightsPayload

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
SPEC = task_obs_spec("lift", "pixels", image_size=32)
COMMON = {"seed": 0, "num_base_samples": None, "num_threads": 1}


def tiny_pixel_agent(seed: int = 0) -> PixelAgent:
    enc = encoder_preset("tiny", SPEC.cameras, 32)
    cfg = ExpoConfig(
        obs_dim=1,
        act_dim=7,
        diffusion=DiffusionConfig(hidden_dim=16, num_blocks=1, block_dim=32, time_embed_dim=8, num_steps=2),
        editor=EditorConfig(hidden_dims=(16,), beta=0.2),
        critic=CriticConfig(hidden_dims=(16,), num_critics=2, num_min=2),
        num_samples=2,
    )
    agent = PixelAgent(pixel_expo_config(cfg, enc, SPEC), enc, SPEC, seed=seed)
    agent.freeze_encoder()
    return agent


def payload(data: bytes, sha: str, version: int, fmt: str) -> WeightsPayload:
    return WeightsPayload(version=version, data=data, sha256=sha, format=fmt)


def test_weights_kind_is_read_without_loading(tmp_path: Path, checkpoint: Path) -> None:
    agent = tiny_pixel_agent()
    save_checkpoint(tmp_path / "px", agent)
    data, _ = policy_weights_bytes(agent, version=3)
    (tmp_path / "bundle.safetensors").write_bytes(data)
    assert is_pixel_weights(tmp_path / "px.safetensors") and is_pixel_weights(tmp_path / "px")
    assert is_pixel_weights(tmp_path / "bundle.safetensors")
    assert not is_pixel_weights(checkpoint)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        is_pixel_weights(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsError, match="no checkpoint or policy-weights file"):
        is_pixel_weights(tmp_path / "absent")


def test_auto_order_for_pixels_drops_nothing_but_adds_eager_cuda() -> None:
    order = _order(eager_cuda=True)
    assert [c[0] for c in order if c is not PIXEL_CUDA_EAGER] == [c[0] for c in AUTO_ORDER]
    labels = [c[0] for c in order]
    assert labels.index("torch eager (cuda)") == labels.index("torch cuda-graph (cuda)") + 1
    assert _order(eager_cuda=False) == AUTO_ORDER


def test_auto_with_pixel_weights_skips_backends_that_refuse_them() -> None:
    backend = make_backend("auto", pixels=True, device="auto", **COMMON)
    assert backend.supports_pixels
    why = backend.selection
    assert "tensorrt (cuda): does not run pixel policies (image encoder)" in why
    assert "torch cuda-graph (cuda): does not run pixel policies (image encoder)" in why
    if not torch.cuda.is_available():
        want = "onnxruntime (cpu)" if HAVE_ORT else "torch (cpu)"
        assert why.startswith(f"backend auto chose {want}")
    backend.load_bundle(*policy_weights_bytes(tiny_pixel_agent()))  # and it loads them
    assert backend.obs_spec == SPEC


def test_swapper_takes_the_running_policys_format_only() -> None:
    backend = TorchBackend()
    backend.load_bundle(*policy_weights_bytes(tiny_pixel_agent(0)))
    swapper = WeightsSwapper(backend, 0)
    try:
        assert swapper.expected_format == PIXELS_FORMAT
        data, sha = policy_weights_bytes(tiny_pixel_agent(1), version=1)
        ev = swapper.offer(payload(data, sha, 1, FORMAT))
        assert ev is not None and not ev.ok and f"expected {PIXELS_FORMAT!r}" in ev.error
        assert swapper.offer(payload(data, sha, 2, PIXELS_FORMAT)) is None
        swapper.wait(30.0)
        events = swapper.poll()
        assert [(e.version, e.ok) for e in events] == [(2, True)] and swapper.version == 2
        obs = backend.zero_observation()
        assert np.all(np.isfinite(backend.decide(obs).action))
    finally:
        swapper.close()


def test_state_swapper_refuses_pixel_bundles(agent) -> None:
    backend = TorchBackend()
    backend.load_bundle(*policy_weights_bytes(agent))
    swapper = WeightsSwapper(backend, 0)
    try:
        assert swapper.expected_format == FORMAT
        data, sha = policy_weights_bytes(tiny_pixel_agent(), version=1)
        ev = swapper.offer(payload(data, sha, 1, PIXELS_FORMAT))
        assert ev is not None and not ev.ok and f"expected {FORMAT!r}" in ev.error and swapper.rejected == 1
    finally:
        swapper.close()
