"""Inference backends with a pixel policy (issue 13): ``decide`` takes the packed observation
``{"low_dim": proprio, "<camera>_image": (H, W, 3) uint8}``; torch eager and onnxruntime agree
with the core PixelPolicy for the same noise (1e-4 absolute), bad frames raise errors naming the
entry (the node holds on them), state and pixel weights never swap into each other, and a new
EXPO bundle with the same frozen encoder swaps into the onnxruntime graph without re-tracing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.checkpoint import WeightsError, policy_weights_bytes, save_checkpoint
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig
from expo_core.encoder import EncoderConfig
from expo_core.export import DEFAULT_ATOL, noise_shapes
from expo_core.pixel_agent import PixelAgent, pack_observation, pixel_expo_config
from expo_core.spec import task_obs_spec
from expo_policy.backends import TorchBackend, read_weights_source
from expo_policy.backends.base import pixel_feeds

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")

SIZE = 24
SPEC = task_obs_spec("lift", "pixels", image_size=SIZE)
ENC = EncoderConfig(
    camera_names=SPEC.cameras,
    image_size=SIZE,
    kind="spatial_softmax",
    num_filters=8,
    num_layers=2,
    feature_dim=8,
)


def _pixel_agent(seed: int = 0, enc: EncoderConfig = ENC) -> PixelAgent:
    tiny = ExpoConfig(
        obs_dim=1,
        act_dim=7,
        diffusion=DiffusionConfig(hidden_dim=32, num_blocks=1, block_dim=64, time_embed_dim=8, num_steps=3),
        editor=EditorConfig(hidden_dims=(32,), beta=0.2),
        critic=CriticConfig(hidden_dims=(32, 32), num_critics=2, num_min=2),
        num_samples=4,
    )
    cfg = pixel_expo_config(tiny, enc, SPEC)
    agent = PixelAgent(cfg, enc, SPEC, seed=seed)
    agent.freeze_encoder()
    rng = np.random.default_rng(seed)
    agent.set_proprio_normalization(rng.standard_normal(16), rng.random(16) + 0.5)
    return agent


def _obs(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = {c: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for c in SPEC.cameras}
    return pack_observation(images, rng.standard_normal(16).astype(np.float32))


@pytest.fixture
def pixel_agent() -> PixelAgent:
    return _pixel_agent()


@pytest.fixture
def pixel_checkpoint(tmp_path: Path, pixel_agent: PixelAgent) -> Path:
    save_checkpoint(tmp_path / "px", pixel_agent)
    return tmp_path / "px.safetensors"


def _images(obs: dict) -> dict[str, torch.Tensor]:
    return {c: torch.from_numpy(obs[f"{c}_image"])[None] for c in SPEC.cameras}


def test_pixel_feeds_checks_every_entry() -> None:
    obs = _obs(0)
    feeds = pixel_feeds(SPEC, obs)
    assert list(feeds) == ["agentview_image", "robot0_eye_in_hand_image", "proprio"]
    assert feeds["agentview_image"].shape == (1, SIZE, SIZE, 3) and feeds["proprio"].shape == (1, 16)
    bad = {
        "dtype float32": (obs | {"agentview_image": obs["agentview_image"].astype(np.float32)}, ValueError),
        "shape": (obs | {"agentview_image": obs["agentview_image"][:-1]}, ValueError),
        "robot0_eye_in_hand_image": (
            {k: v for k, v in obs.items() if k != "robot0_eye_in_hand_image"},
            KeyError,
        ),
        "low_dim": ({k: v for k, v in obs.items() if k != "low_dim"}, KeyError),
        "15 values": (obs | {"low_dim": obs["low_dim"][:-1]}, ValueError),
        "non-finite": (obs | {"low_dim": np.full(16, np.nan, np.float32)}, ValueError),
    }
    for what, (o, err) in bad.items():
        with pytest.raises(err, match=what.split()[0]):
            pixel_feeds(SPEC, o)
    with pytest.raises(ValueError, match="state vector"):
        pixel_feeds(SPEC, obs["low_dim"])


def test_torch_backend_acts_on_images(pixel_checkpoint: Path, pixel_agent: PixelAgent) -> None:
    backend = TorchBackend(seed=3)
    src = backend.load(pixel_checkpoint)
    assert src.kind == "checkpoint" and backend.obs_spec == SPEC
    backend.warmup()  # black frames, zero proprio
    backend = TorchBackend(seed=3)
    backend.load(pixel_checkpoint)
    obs = _obs(1)
    d = backend.decide(obs)
    n = backend.num_base_samples
    assert d.action.shape == (7,) and d.candidates.shape == (2 * n, 7) and d.index == int(np.argmax(d.q))
    ref = pixel_agent.acting_policy().decide(
        _images(obs), obs["low_dim"][None], torch.Generator().manual_seed(3)
    )
    np.testing.assert_allclose(d.candidates, ref.candidates[0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="pixel observation|state vector"):
        backend.decide(obs["low_dim"])
    with pytest.raises(ValueError, match="uint8"):
        backend.decide(obs | {"agentview_image": obs["agentview_image"].astype(np.float32)})


def test_state_and_pixel_weights_never_swap_into_each_other(pixel_checkpoint: Path, make_agent) -> None:
    backend = TorchBackend()
    backend.load(pixel_checkpoint)
    before = backend.policy
    with pytest.raises(WeightsError, match="keys differ"):
        backend.swap_weights(*policy_weights_bytes(make_agent()))
    assert backend.policy is before
    state = TorchBackend()
    state.load_bundle(*policy_weights_bytes(make_agent()))
    assert state.obs_spec is None
    with pytest.raises(WeightsError, match="keys differ"):
        state.swap_weights(*policy_weights_bytes(_pixel_agent(1)))
    with pytest.raises(ValueError, match="pixel observation"):
        state.decide(_obs(0))
    backend.swap_weights(*policy_weights_bytes(_pixel_agent(2)))
    assert backend.policy is not before


def test_read_weights_source_of_a_pixel_bundle(tmp_path: Path, pixel_agent: PixelAgent) -> None:
    data, sha = policy_weights_bytes(pixel_agent, version=7)
    (tmp_path / "b.safetensors").write_bytes(data)
    src = read_weights_source(tmp_path / "b.safetensors")
    assert (src.kind, src.version, src.sha256) == ("bundle", 7, sha)


def test_gpu_only_backends_refuse_pixel_weights() -> None:
    from expo_policy.backends.tensorrt_engine import TensorRTBackend
    from expo_policy.backends.torch_cuda import CudaGraphTorchBackend

    assert not TensorRTBackend.supports_pixels and not CudaGraphTorchBackend.supports_pixels

    class NoPixels(TorchBackend):
        supports_pixels = False

    with pytest.raises(WeightsError, match="does not run pixel policies"):
        NoPixels().load_bundle(*policy_weights_bytes(_pixel_agent()))


@needs_ort
def test_onnxruntime_matches_torch_with_images_and_swaps_without_retrace(
    pixel_checkpoint: Path, pixel_agent: PixelAgent
) -> None:
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(device="cpu", seed=4)
    backend.load(pixel_checkpoint)
    g = backend.compiled
    assert g.traced and g.max_abs_diff is not None and g.max_abs_diff <= DEFAULT_ATOL
    assert g.template.encoder_digest is not None
    backend.warmup()
    backend = OnnxRuntimeBackend(device="cpu", seed=4)
    backend.load(pixel_checkpoint)
    policy = pixel_agent.acting_policy()
    rng = np.random.default_rng(4)  # the backend's noise stream
    for i in range(3):
        obs = _obs(10 + i)
        noise = {
            k: torch.from_numpy(rng.standard_normal(s, dtype=np.float32))
            for k, s in noise_shapes(policy.cfg).items()
        }
        base = torch.cat([noise["base_noise"][None], noise["step_noise"]])
        ref = policy.decide(
            _images(obs), obs["low_dim"][None], base_noise=base, edit_noise=noise["edit_noise"]
        )
        d = backend.decide(obs)
        np.testing.assert_allclose(d.candidates, ref.candidates[0].numpy(), atol=DEFAULT_ATOL, rtol=0)
        np.testing.assert_allclose(d.q, ref.q[0].numpy(), atol=DEFAULT_ATOL, rtol=0)
        assert d.index == int(ref.index[0])
    with pytest.raises(ValueError, match="shape"):
        backend.decide(obs | {"robot0_eye_in_hand_image": np.zeros((SIZE, SIZE, 4), np.uint8)})
    # The learner's next bundle: same frozen encoder, new EXPO weights -> no re-trace.
    for p in pixel_agent.agent.policy.critic.parameters():
        p.data.add_(0.05)
    before = backend.compiled
    backend.swap_weights(*policy_weights_bytes(pixel_agent, version=2))
    now = backend.compiled
    assert not now.traced and now.template is before.template and now.max_abs_diff <= DEFAULT_ATOL
    # Another encoder (same shapes): a new template.
    backend.swap_weights(*policy_weights_bytes(_pixel_agent(seed=8), version=3))
    assert backend.compiled.traced
