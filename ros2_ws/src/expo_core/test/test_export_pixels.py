"""The exported OTF graph of a pixel policy: uint8 camera inputs (B, H, W, 3) + proprio + noise ->
action, candidates, q, index, with the frozen encoder inside. Same checks as the state export:
the graph module is PixelPolicy.decide with explicit noise, ONNX Runtime reproduces torch
(tolerance 1e-4 + 1e-5 |torch|), the template swaps the EXPO weights byte for byte with the
encoder baked in, and the CLI exports a pixel checkpoint."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.checkpoint import policy_weights_bytes, save_checkpoint
from expo_core.encoder import EncoderConfig
from expo_core.export import (
    DEFAULT_ATOL,
    OUTPUT_NAMES,
    ExportMismatchError,
    GraphTemplate,
    OTFGraph,
    encoder_digest,
    export_onnx,
    export_onnx_bytes,
    input_dtypes,
    input_shapes,
    load_acting_policy,
    random_inputs,
    read_onnx_metadata,
    torch_reference,
    verify_onnx,
    verify_onnx_report,
)
from expo_core.pixel_agent import PixelAgent, PixelPolicy, pixel_expo_config
from expo_core.spec import ObsSpec, task_obs_spec

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")

SIZE = 24
SPEC = task_obs_spec("lift", "pixels", image_size=SIZE)


def _enc(kind: str = "spatial_softmax") -> EncoderConfig:
    return EncoderConfig(
        camera_names=SPEC.cameras, image_size=SIZE, kind=kind, num_filters=8, num_layers=2, feature_dim=8
    )


def _agent(make_cfg, kind: str = "spatial_softmax", seed: int = 0, **changes) -> PixelAgent:
    enc = _enc(kind)
    cfg = pixel_expo_config(make_cfg(act_dim=7, **changes), enc, SPEC)
    agent = PixelAgent(cfg, enc, SPEC, seed=seed)
    agent.freeze_encoder()
    rng = np.random.default_rng(seed)
    agent.set_proprio_normalization(rng.standard_normal(16), rng.random(16) + 0.5)
    return agent


def _policy(make_cfg, kind: str = "spatial_softmax", seed: int = 0, **changes) -> PixelPolicy:
    return _agent(make_cfg, kind, seed, **changes).acting_policy()


def test_inputs_are_uint8_cameras_then_proprio_then_noise(make_cfg) -> None:
    policy = _policy(make_cfg)
    shapes = input_shapes(policy.cfg, 2, SPEC)
    assert list(shapes) == [
        "agentview_image",
        "robot0_eye_in_hand_image",
        "proprio",
        "base_noise",
        "step_noise",
        "edit_noise",
    ]
    assert shapes["agentview_image"] == (2, SIZE, SIZE, 3) and shapes["proprio"] == (2, 16)
    dtypes = input_dtypes(policy.cfg, SPEC)
    assert dtypes["agentview_image"] == "uint8" and dtypes["proprio"] == dtypes["base_noise"] == "float32"
    x = random_inputs(policy.cfg, np.random.default_rng(0), 2, SPEC)
    assert x["robot0_eye_in_hand_image"].dtype == np.uint8 and x["proprio"].dtype == np.float32


@pytest.mark.parametrize("kind", ["spatial_softmax", "conv"])
def test_graph_module_is_pixel_decide_with_explicit_noise(make_cfg, kind: str) -> None:
    policy = _policy(make_cfg, kind)
    x = {
        k: torch.from_numpy(v)
        for k, v in random_inputs(policy.cfg, np.random.default_rng(1), 3, SPEC).items()
    }
    base = torch.cat([x["base_noise"][None], x["step_noise"]])
    images = {"agentview": x["agentview_image"], "robot0_eye_in_hand": x["robot0_eye_in_hand_image"]}
    ref = policy.decide(images, x["proprio"], base_noise=base, edit_noise=x["edit_noise"])
    got = OTFGraph(policy)(*x.values())
    for name, r, g in zip(OUTPUT_NAMES, (ref.action, ref.candidates, ref.q, ref.index), got):
        assert torch.equal(r, g), name
    # Swapping the two cameras changes the decision: each input reaches its own encoder.
    swapped = list(x.values())
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert not torch.equal(OTFGraph(policy)(*swapped)[1], got[1])


@needs_ort
@pytest.mark.parametrize("kind", ["spatial_softmax", "conv"])
def test_onnxruntime_matches_torch_with_images(make_cfg, kind: str) -> None:
    policy = _policy(make_cfg, kind, seed=2)
    model = export_onnx_bytes(policy, dynamic_batch=True)
    checks = verify_onnx_report(policy, model, eval_batch=3, trials=3)
    assert [c.batch for c in checks] == [1, 3]
    assert all(c.max_abs_diff <= DEFAULT_ATOL for c in checks)
    meta = read_onnx_metadata(model)
    assert ObsSpec.from_json(json.loads(meta["expo.obs_spec"])) == SPEC
    assert EncoderConfig.from_dict(json.loads(meta["expo.encoder_config"])) == policy.encoder_cfg
    assert json.loads(meta["expo.input_dtypes"])["agentview_image"] == "uint8"


@needs_ort
def test_verify_catches_another_encoder(make_cfg) -> None:
    """Same EXPO weights, another encoder: the check fails (the encoder is part of the graph)."""
    policy = _policy(make_cfg, seed=0)
    other = _policy(make_cfg, seed=0)
    with torch.no_grad():
        next(other.encoder.parameters()).add_(0.5)
    with pytest.raises(ExportMismatchError, match="exceeds|chose candidate"):
        verify_onnx(policy, export_onnx_bytes(other), trials=2)


@needs_ort
def test_template_bakes_the_encoder_and_swaps_the_expo_weights(make_cfg) -> None:
    import onnx
    from onnx import numpy_helper

    agent = _agent(make_cfg, seed=3)
    policy = agent.acting_policy()
    template = GraphTemplate.export(policy.cfg, pixel=policy)
    assert template.encoder_digest == encoder_digest(policy) and template.fits(policy)
    assert all(k.startswith("policy.") for k in template.slots)  # only the EXPO part swaps
    # A later bundle from the learner: same frozen encoder, new EXPO weights.
    for p in agent.agent.policy.critic.parameters():
        p.data.add_(0.1)
    newer = agent.acting_policy()
    model = template.with_weights(newer)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}
    state = newer.state_dict()
    assert all(np.array_equal(inits["policy." + k], state[k].numpy()) for k in template.slots)
    assert verify_onnx(newer, model, trials=2) <= DEFAULT_ATOL
    other = _policy(make_cfg, seed=4)  # another encoder
    assert not template.fits(other)
    with pytest.raises(ValueError, match="encoder"):
        template.with_weights(other)
    state_template = GraphTemplate.export(make_cfg())
    assert state_template.encoder_digest is None and not state_template.fits(policy)


@needs_ort
@pytest.mark.parametrize("source", ["checkpoint", "bundle"])
def test_cli_exports_a_pixel_checkpoint(tmp_path: Path, make_cfg, source: str) -> None:
    agent = _agent(make_cfg, seed=5)
    if source == "checkpoint":
        save_checkpoint(tmp_path / "px", agent)
        weights = tmp_path / "px"
    else:
        weights = tmp_path / "px_bundle.safetensors"
        weights.write_bytes(policy_weights_bytes(agent)[0])
    assert isinstance(load_acting_policy(weights), PixelPolicy)
    out = tmp_path / "otf.onnx"
    res = subprocess.run(
        [sys.executable, "-m", "expo_core.export", str(weights), str(out), "--trials", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.type for i in session.get_inputs()}
    assert inputs["agentview_image"] == "tensor(uint8)" and inputs["proprio"] == "tensor(float)"
    x = random_inputs(agent.cfg, np.random.default_rng(0), 2, SPEC)
    ref = torch_reference(agent.acting_policy(), x)
    got = session.run(list(OUTPUT_NAMES), x)
    np.testing.assert_allclose(got[0], ref["action"], atol=DEFAULT_ATOL)


@needs_ort
def test_export_file_of_a_pixel_policy(tmp_path: Path, make_cfg) -> None:
    policy = _policy(make_cfg, seed=6)
    info = export_onnx(policy, tmp_path / "px.onnx", check_trials=1)
    assert info.max_abs_diff is not None and info.max_abs_diff <= DEFAULT_ATOL
