"""The exported OTF graph: it is ExpoPolicy.decide with explicit noise, and ONNX Runtime runs it
like eager torch. Tolerance (small networks, |Q| < 10): max abs difference <= 1e-4 on action,
candidates and q (float32), the same chosen index unless the two choices are a near-tie (Q within
the tolerance). The backends' load-time check adds 1e-5 * |torch| for large Q values."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from expo_core.config import ExpoConfig
from expo_core.export import (
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    ONNX_FORMAT,
    OUTPUT_NAMES,
    ExportMismatchError,
    GraphTemplate,
    OTFGraph,
    export_onnx,
    export_onnx_bytes,
    input_shapes,
    noise_shapes,
    random_inputs,
    read_onnx_metadata,
    torch_reference,
    verify_onnx,
    weights_sha256,
)
from expo_core.policy import ExpoPolicy

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")

VARIANTS = {
    "ddpm": {},
    "ddim2": {"act_sampling_steps": 2},
    "no_editor": {"use_editor": False},
}


def _policy(cfg: ExpoConfig, seed: int = 0) -> ExpoPolicy:
    """Random weights and non-trivial normalizer statistics (so normalization is exercised)."""
    torch.manual_seed(seed)
    policy = ExpoPolicy(cfg)
    policy.normalizer.set_stats(torch.randn(cfg.obs_dim), torch.rand(cfg.obs_dim) + 0.5)
    return policy.eval()


def test_noise_shapes_follow_the_sampler(make_cfg) -> None:
    cfg = make_cfg()  # T = 5, N = 4, act 3
    assert input_shapes(cfg, batch=2) == {
        "obs": (2, 4),
        "base_noise": (2, 4, 3),
        "step_noise": (5, 2, 4, 3),
        "edit_noise": (2, 4, 3),
    }
    assert list(noise_shapes(make_cfg(act_sampling_steps=2))) == ["base_noise", "edit_noise"]
    assert list(noise_shapes(make_cfg(act_sampling_steps=5))) == ["base_noise", "step_noise", "edit_noise"]
    assert list(noise_shapes(make_cfg(use_editor=False))) == ["base_noise", "step_noise"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_graph_module_is_decide_with_explicit_noise(make_cfg, variant: str) -> None:
    """Same noise through policy.decide (torch's layout) and OTFGraph: bit-identical."""
    cfg = make_cfg(**VARIANTS[variant])
    policy = _policy(cfg)
    inputs = {k: torch.from_numpy(v) for k, v in random_inputs(cfg, np.random.default_rng(1), 3).items()}
    base = inputs["base_noise"][None]
    if "step_noise" in inputs:
        base = torch.cat([base, inputs["step_noise"]])
    ref = policy.decide(inputs["obs"], base_noise=base, edit_noise=inputs.get("edit_noise"))
    got = OTFGraph(policy)(*inputs.values())
    for name, r, g in zip(OUTPUT_NAMES, (ref.action, ref.candidates, ref.q, ref.index), got):
        assert torch.equal(r, g), name
    k = 2 * cfg.num_samples if cfg.use_editor else cfg.num_samples
    assert got[1].shape == (3, k, 3) and got[3].dtype == torch.int64
    with pytest.raises(ValueError, match="expects noise inputs"):
        OTFGraph(policy)(inputs["obs"])


@needs_ort
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_onnxruntime_matches_torch(make_cfg, variant: str) -> None:
    cfg = make_cfg(**VARIANTS[variant])
    policy = _policy(cfg, seed=2)
    model = export_onnx_bytes(policy, batch=4)
    diff = verify_onnx(policy, model, trials=5, atol=DEFAULT_ATOL)  # raises beyond tolerance
    assert 0.0 <= diff <= DEFAULT_ATOL


@needs_ort
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_template_with_weights_is_the_policy(make_cfg, variant: str) -> None:
    """Weights copied byte for byte into a template traced from other values: every initializer
    holds the policy's tensor, and onnxruntime reproduces torch as for a direct export."""
    import onnx
    from onnx import numpy_helper

    cfg = make_cfg(**VARIANTS[variant])
    template = GraphTemplate.export(cfg, batch=2)
    assert template.batch == 2 and template.cfg == cfg
    policy = _policy(cfg, seed=4)
    model = template.with_weights(policy)
    state = policy.state_dict()
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}
    assert set(inits) == {"policy." + k for k in template.slots}
    assert all(np.array_equal(inits["policy." + k], state[k].numpy()) for k in template.slots)
    unused = {  # tensors the graph does not read: the editor without editing, DDPM's betas for DDIM
        "ddpm": set(),
        "ddim2": {"base.alphas", "base.betas"},
        "no_editor": {k for k in state if k.startswith("editor.")},
    }[variant]
    assert set(state) - set(template.slots) == unused
    assert verify_onnx(policy, model, trials=3) <= DEFAULT_ATOL
    with pytest.raises(ValueError, match="config differs"):
        template.with_weights(_policy(make_cfg(num_samples=2)))


@needs_ort
def test_export_file_carries_metadata(tmp_path: Path, make_cfg) -> None:
    import onnx

    cfg = make_cfg()
    policy = _policy(cfg)
    info = export_onnx(policy, tmp_path / "otf.onnx", check_trials=2)
    assert info.path.is_file() and not list(tmp_path.glob("*.tmp"))
    assert info.max_abs_diff is not None and info.max_abs_diff <= DEFAULT_ATOL
    meta = read_onnx_metadata(info.path)
    assert meta["expo.format"] == ONNX_FORMAT and meta["expo.opset"] == str(DEFAULT_OPSET)
    assert ExpoConfig.from_json(meta["expo.config"]) == cfg
    assert meta["expo.weights_sha256"] == info.weights_sha256 == weights_sha256(policy)
    assert json.loads(meta["expo.inputs"])["step_noise"] == [cfg.diffusion.num_steps, 1, 4, 3]
    model = onnx.load(str(info.path))
    onnx.checker.check_model(model)
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {DEFAULT_OPSET}
    assert [i.name for i in model.graph.input] == list(input_shapes(cfg))
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    other = _policy(cfg, seed=5)
    assert weights_sha256(other) != info.weights_sha256


@needs_ort
def test_verify_catches_a_graph_of_other_weights(make_cfg) -> None:
    cfg = make_cfg()
    policy, other = _policy(cfg, seed=0), _policy(cfg, seed=1)
    with pytest.raises(ExportMismatchError, match="exceeds|chose candidate"):
        verify_onnx(policy, export_onnx_bytes(other), trials=2)


def test_torch_reference_is_deterministic(make_cfg) -> None:
    cfg = make_cfg()
    policy = _policy(cfg)
    inputs = random_inputs(cfg, np.random.default_rng(0))
    a, b = torch_reference(policy, inputs), torch_reference(policy, inputs)
    assert all(np.array_equal(a[k], b[k]) for k in OUTPUT_NAMES)


def test_importing_export_does_not_import_onnx() -> None:
    code = (
        "import sys, expo_core.export, expo_core.policy\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('onnx', 'onnxruntime'))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
