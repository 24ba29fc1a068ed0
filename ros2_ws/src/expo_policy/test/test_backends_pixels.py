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
@pytest.mark.parametrize("graph", ["auto", "traced"])
def test_onnxruntime_matches_torch_with_images_and_swaps_without_retrace(
    pixel_checkpoint: Path, pixel_agent: PixelAgent, graph: str
) -> None:
    """``auto`` on CPU: the encoder graphs + the lean graph (expo_core.export.pixel_lean);
    ``traced``: the one traced graph. Both agree with the core policy for the same noise."""
    from expo_core.export.pixel_lean import PixelLeanTemplate
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(device="cpu", seed=4, graph=graph)
    backend.load(pixel_checkpoint)
    g = backend.compiled
    assert g.max_abs_diff is not None and g.max_abs_diff <= DEFAULT_ATOL
    assert g.template.encoder_digest is not None
    if graph == "auto":
        assert g.lean and not g.traced and isinstance(g.template, PixelLeanTemplate)
    else:
        assert g.traced and not g.lean
    backend.warmup()
    backend = OnnxRuntimeBackend(device="cpu", seed=4, graph=graph)
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
    assert now.onnx_sha256 != before.onnx_sha256
    if graph == "auto":  # the frozen encoder's sessions are kept; only the lean graph is new
        assert all(a is b for a, b in zip(now.run.encoder_sessions, before.run.encoder_sessions))
    # Another encoder (same shapes): a new template.
    backend.swap_weights(*policy_weights_bytes(_pixel_agent(seed=8), version=3))
    assert backend.compiled.template is not before.template
    assert backend.compiled.traced == (graph == "traced")
    assert backend.compiled.max_abs_diff <= DEFAULT_ATOL


@needs_ort
def test_frames_encoded_on_arrival_give_the_same_decision(pixel_checkpoint: Path) -> None:
    """``encode_ahead``: the lean path keeps a frame's features and a decision on an observation
    holding that very frame uses them (same outputs as encoding inside ``decide``, the time
    reported as ``ahead_ms``); a copy of the frame, another encoder after a swap, a bad frame,
    an unknown camera or a backend that encodes inside the graph do not use them."""
    from expo_policy.backends.onnx_runtime import OnnxRuntimeBackend

    ahead, inside = (OnnxRuntimeBackend(device="cpu", seed=6) for _ in range(2))
    for b in (ahead, inside):
        b.load(pixel_checkpoint)
    for i in range(3):
        obs = _obs(20 + i)
        for cam in SPEC.cameras:
            assert ahead.encode_ahead(cam, obs[f"{cam}_image"])
        d, ref = ahead.decide(obs), inside.decide(obs)
        assert d.ahead_ms > 0 and ref.ahead_ms == 0
        np.testing.assert_array_equal(d.candidates, ref.candidates)
        np.testing.assert_array_equal(d.q, ref.q)
        assert d.index == ref.index
    copy = {k: np.array(v) for k, v in obs.items()}  # equal pixels, other arrays: encoded inside
    assert ahead.decide(copy).ahead_ms == 0
    cam = SPEC.cameras[0]
    assert not ahead.encode_ahead(cam, np.zeros((SIZE, SIZE, 4), np.uint8))
    assert not ahead.encode_ahead(cam, np.zeros((SIZE, SIZE, 3), np.float32))
    assert not ahead.encode_ahead("sideview", obs[f"{cam}_image"])
    traced = OnnxRuntimeBackend(device="cpu", graph="traced")
    traced.load(pixel_checkpoint)
    assert not traced.encode_ahead(cam, obs[f"{cam}_image"])
    torch_backend = TorchBackend(device="cpu")
    torch_backend.load(pixel_checkpoint)
    assert not torch_backend.encode_ahead(cam, obs[f"{cam}_image"])
    # Features of the old encoder are never used after a swap to another encoder.
    obs = _obs(30)
    for c in SPEC.cameras:
        ahead.encode_ahead(c, obs[f"{c}_image"])
    other = _pixel_agent(seed=8)
    ahead.swap_weights(*policy_weights_bytes(other, version=2))
    d = ahead.decide(obs)
    assert d.ahead_ms == 0
    np.testing.assert_allclose(d.q, _q_of(other, obs, d.candidates), atol=DEFAULT_ATOL, rtol=0)


def _q_of(agent: PixelAgent, obs: dict, candidates: np.ndarray) -> np.ndarray:
    """Q of ``candidates`` under ``agent``'s acting policy for ``obs`` (eager torch)."""
    policy = agent.acting_policy()
    with torch.no_grad():
        z = policy.features(_images(obs), obs["low_dim"][None])
        inner = policy.policy
        return inner.q_values(inner.normalizer(z), torch.as_tensor(candidates)[None])[0].numpy()
