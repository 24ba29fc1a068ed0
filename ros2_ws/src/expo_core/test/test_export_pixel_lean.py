"""A pixel policy's lean decision (expo_core.export.pixel_lean): per-camera encoder graphs + the
lean graph of the EXPO part on their features. Against eager torch on the same inputs and noise
(tolerance 1e-4 + 1e-5 |torch|, the same choice), with one encoder per camera and with shared
weights, both encoder heads; features computed ahead (as frames arrive) give the same decision;
the template takes new EXPO weights and refuses another encoder or config."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from expo_core.encoder import EncoderConfig
from expo_core.export import OUTPUT_NAMES, ort_session, parity, random_inputs, torch_reference
from expo_core.export.pixel_lean import (
    INPUT_FRAME,
    OUTPUT_FEATURES,
    PixelLeanTemplate,
    encoder_onnx_bytes,
    pixel_lean_runner,
    pixel_lean_unsupported,
)
from expo_core.pixel_agent import PixelAgent, PixelPolicy, pixel_expo_config
from expo_core.spec import task_obs_spec

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
pytestmark = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")

SIZE = 24
SPEC = task_obs_spec("lift", "pixels", image_size=SIZE)


def _policy(
    make_cfg, kind: str = "spatial_softmax", share: bool = False, seed: int = 0, **changes
) -> PixelPolicy:
    enc = EncoderConfig(
        camera_names=SPEC.cameras,
        image_size=SIZE,
        kind=kind,
        num_filters=8,
        num_layers=2,
        feature_dim=8,
        share_weights=share,
    )
    cfg = pixel_expo_config(make_cfg(act_dim=7, **changes), enc, SPEC)
    agent = PixelAgent(cfg, enc, SPEC, seed=seed)
    agent.freeze_encoder()
    rng = np.random.default_rng(seed)
    agent.set_proprio_normalization(rng.standard_normal(16), rng.random(16) + 0.5)
    return agent.acting_policy()


def _runner(policy: PixelPolicy, template: PixelLeanTemplate | None = None):
    template = template or PixelLeanTemplate.build(policy)
    return pixel_lean_runner(template, template.with_weights(policy), ort_session)


@pytest.mark.parametrize(
    ("kind", "share"), [("spatial_softmax", False), ("conv", False), ("spatial_softmax", True)]
)
def test_matches_torch_on_images(make_cfg, kind: str, share: bool) -> None:
    policy = _policy(make_cfg, kind, share)
    run = _runner(policy)
    p = parity(policy, run, trials=10, seed=3)  # raises beyond tolerance or on another choice
    assert p.max_abs_diff <= 1e-4
    distinct = {id(s) for s in run.encoder_sessions}
    assert len(distinct) == (1 if share else len(SPEC.cameras))


def test_the_cameras_encoders_differ_and_each_is_used(make_cfg) -> None:
    """One encoder per camera, each with its own weights: swapping the two frames changes the
    decision's Q values (a runner that used one camera's encoder for both would not notice)."""
    policy = _policy(make_cfg)
    run = _runner(policy)
    feeds = random_inputs(policy.cfg, np.random.default_rng(1), spec=SPEC)
    a, b = (f"{c}_image" for c in SPEC.cameras)
    swapped = feeds | {a: feeds[b], b: feeds[a]}
    ref = torch_reference(policy, swapped)
    got = dict(zip(OUTPUT_NAMES, run(swapped)))
    np.testing.assert_allclose(got["q"], ref["q"], atol=1e-4, rtol=1e-5)
    assert not np.allclose(got["q"], dict(zip(OUTPUT_NAMES, run(feeds)))["q"], atol=1e-3)


def test_features_computed_ahead_give_the_same_decision(make_cfg) -> None:
    policy = _policy(make_cfg)
    run = _runner(policy)
    feeds = random_inputs(policy.cfg, np.random.default_rng(2), spec=SPEC)
    ahead = {c: run.encode(c, feeds[f"{c}_image"][0]) for c in SPEC.cameras}  # (S, S, 3) frames
    assert all(z.shape == (1, 8) and z.dtype == np.float32 for z in ahead.values())
    split = run.decide(ahead, feeds["proprio"], feeds)
    whole = run(feeds)
    for x, y in zip(split, whole):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(KeyError, match="unknown camera"):
        run.encode("sideview", feeds[f"{SPEC.cameras[0]}_image"])


def test_encoder_graph_is_the_camera_encoder(make_cfg) -> None:
    import torch

    policy = _policy(make_cfg, "conv")
    cam = SPEC.cameras[1]
    enc = policy.encoder.encoder_for(cam)
    frame = np.random.default_rng(4).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    got = ort_session(encoder_onnx_bytes(enc)).run([OUTPUT_FEATURES], {INPUT_FRAME: frame})[0]
    with torch.no_grad():
        ref = enc(torch.from_numpy(frame)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
    enc.requires_grad_(True)
    enc._frozen = False
    with pytest.raises(ValueError, match="only a frozen encoder"):
        encoder_onnx_bytes(enc)


def test_template_takes_new_expo_weights_and_refuses_another_encoder(make_cfg) -> None:
    policy = _policy(make_cfg)
    template = PixelLeanTemplate.build(policy)
    newer = _policy(make_cfg)  # same encoder (same seed), then other EXPO weights
    for t in newer.policy.critic.parameters():
        t.data.add_(0.05)
    assert template.fits(newer)
    p = parity(newer, _runner(newer, template), trials=3, seed=5)
    assert p.max_abs_diff <= 1e-4
    other_encoder = _policy(make_cfg, seed=9)
    other_config = _policy(make_cfg, num_samples=3)
    for bad in (other_encoder, other_config):
        assert not template.fits(bad)
        with pytest.raises(ValueError, match="build a new PixelLeanTemplate"):
            template.with_weights(bad)
    assert not template.fits(other_encoder.policy)  # its EXPO part alone is a state policy


def test_what_the_lean_graph_does_not_express_is_refused(make_cfg) -> None:
    policy = _policy(make_cfg, act_sampling_steps=2)
    assert "DDIM acting" in (pixel_lean_unsupported(policy) or "")
    with pytest.raises(ValueError, match="lean graph: DDIM acting"):
        PixelLeanTemplate.build(policy)
    assert pixel_lean_unsupported(_policy(make_cfg)) is None
