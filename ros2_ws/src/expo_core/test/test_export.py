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
    # Tensors the graph does not read: the noise schedule (the sampler bakes its coefficients in
    # as constants: they follow from the config, never from training) and the editor without editing.
    schedule = {"base.alphas", "base.betas", "base.alpha_bars"}
    unused = {
        "ddpm": schedule,
        "ddim2": schedule,
        "no_editor": schedule | {k for k in state if k.startswith("editor.")},
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


@needs_ort
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_dynamic_batch_graph_matches_torch_at_batch_1_and_b(make_cfg, variant: str) -> None:
    """One graph with a free batch axis: batch-1 control and batch-B evaluation both match torch;
    the relative error is reported per output."""
    from expo_core.export import verify_onnx_report

    cfg = make_cfg(**VARIANTS[variant])
    policy = _policy(cfg, seed=3)
    model = export_onnx_bytes(policy, dynamic_batch=True)
    assert read_onnx_metadata(model)["expo.dynamic_batch"] == "1"
    checks = verify_onnx_report(policy, model, eval_batch=5, trials=2)
    assert [c.batch for c in checks] == [1, 5]
    for c in checks:
        assert c.max_abs_diff <= DEFAULT_ATOL and set(c.rel_err) == {"action", "candidates", "q"}
        assert 0.0 <= c.max_rel_err < 1e-4 and "relative error" in str(c)
    static = export_onnx_bytes(policy, batch=2)
    assert [c.batch for c in verify_onnx_report(policy, static, eval_batch=5, trials=1)] == [2]


@needs_ort
def test_nan_never_passes(make_cfg) -> None:
    """NaN from the graph (or from torch) fails the check, whatever the tolerance."""
    from expo_core.export import parity

    cfg = make_cfg()
    policy = _policy(cfg)

    def run_with(bad: str):
        def run(inputs):
            out = torch_reference(policy, inputs)
            out[bad] = np.full_like(out[bad], np.nan)
            return [out[k] for k in OUTPUT_NAMES]

        return run

    for bad in ("action", "candidates", "q"):
        with pytest.raises(ExportMismatchError, match=f"graph's {bad} is not finite"):
            parity(policy, run_with(bad), atol=1e9, rtol=1e9)
    exact = parity(policy, lambda x: [torch_reference(policy, x)[k] for k in OUTPUT_NAMES])
    assert exact.max_abs_diff == 0.0 and exact.max_rel_err == 0.0
    broken = _policy(cfg)
    with torch.no_grad():
        next(broken.critic.parameters()).fill_(float("nan"))
    with pytest.raises(ExportMismatchError, match="torch's q is not finite"):
        parity(broken, lambda x: [torch_reference(policy, x)[k] for k in OUTPUT_NAMES])


@needs_ort
@pytest.mark.parametrize("source", ["checkpoint", "bundle"])
def test_cli_exports_and_a_fresh_process_gives_the_same_action(tmp_path: Path, make_cfg, source: str) -> None:
    """``python -m expo_core.export`` from a checkpoint or a bundle; another process loading the
    file with onnxruntime returns torch's action for the same noise, at batch 1 and 3."""
    from expo_core.agent import ExpoAgent
    from expo_core.checkpoint import policy_from_weights, policy_weights_bytes, save_checkpoint

    agent = ExpoAgent(make_cfg(), seed=4)
    if source == "checkpoint":
        save_checkpoint(tmp_path / "ckpt", agent)
        weights = tmp_path / "ckpt"  # the stem, as save_checkpoint was called
    else:
        weights = tmp_path / "policy.safetensors"
        weights.write_bytes(policy_weights_bytes(agent, version=3)[0])
    out = tmp_path / "otf.onnx"
    res = subprocess.run(
        [sys.executable, "-m", "expo_core.export", str(weights), str(out), "--trials", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "relative error" in res.stderr and "batch dynamic" in res.stderr
    policy = policy_from_weights(policy_weights_bytes(agent)[0]).eval()
    for batch in (1, 3):
        inputs = random_inputs(agent.cfg, np.random.default_rng(batch), batch)
        np.savez(tmp_path / "in.npz", **inputs)
        code = (
            "import sys, numpy as np, onnxruntime as ort\n"
            "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
            "x = dict(np.load(sys.argv[2]))\n"
            "np.save(sys.argv[3], s.run(['action'], x)[0])\n"
        )
        argv = [sys.executable, "-c", code, str(out), str(tmp_path / "in.npz"), str(tmp_path / "a.npy")]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        got = np.load(tmp_path / "a.npy")
        ref = torch_reference(policy, inputs)["action"]
        assert got.shape == (batch, agent.cfg.act_dim)
        np.testing.assert_allclose(got, ref, atol=DEFAULT_ATOL, rtol=0)
    bad = subprocess.run(
        [sys.executable, "-m", "expo_core.export", str(tmp_path / "nope"), str(tmp_path / "x.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "no checkpoint or policy-weights file" in bad.stderr
