"""The lean ONNX graph (expo_core.export.lean) is ExpoPolicy.decide with explicit noise: same
candidates, Q and choice as eager torch on the same inputs, for every config it accepts, and a
clear refusal for those it does not express. Networks differ from each other (divergent.py: the
online base and target critics perturbed, a non-trivial normalizer), so a graph that took the
wrong copy or skipped normalization would fail. Tolerance (float32, small networks): 2e-5 on
action, candidates and q; the same index unless the two choices are a near-tie."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.config import CriticConfig, DiffusionConfig, ExpoConfig
from expo_core.export import OUTPUT_NAMES, ort_session, random_inputs, read_onnx_metadata, torch_reference
from expo_core.export.lean import LEAN_GRAPH, LeanTemplate, lean_onnx_bytes, lean_unsupported
from expo_core.policy import ExpoPolicy

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
pytestmark = pytest.mark.skipif(not HAVE_ORT, reason="onnx/onnxruntime not installed")
ATOL = 2e-5

VARIANTS = {
    "default": {},
    "no_editor": {"use_editor": False},
    "critics_without_layer_norm": {
        "critic": CriticConfig(hidden_dims=(32, 16), num_critics=3, layer_norm=False)
    },
    "subset_min_over_all": {
        "act_score": "subset_min",
        "critic": CriticConfig(hidden_dims=(32, 32), num_critics=4, num_min=4),
    },
    "one_critic_one_sample": {
        "num_samples": 1,
        "critic": CriticConfig(hidden_dims=(32,), num_critics=1, num_min=1),
    },
    "one_step_two_blocks": {
        "diffusion": DiffusionConfig(hidden_dim=32, num_blocks=2, block_dim=48, time_embed_dim=8, num_steps=1)
    },
}


def _acting_policy(cfg: ExpoConfig, seed: int = 0) -> ExpoPolicy:
    agent = diverge(ExpoAgent(cfg, seed=seed), seed=seed)
    return agent.policy.eval()


def _compare(policy: ExpoPolicy, trials: int, seed: int = 0) -> dict[str, float]:
    """Max abs difference per output over ``trials`` random inputs; asserts the choice agrees."""
    session = ort_session(lean_onnx_bytes(policy), num_threads=1)
    rng = np.random.default_rng(seed)
    worst = dict.fromkeys(("action", "candidates", "q"), 0.0)
    for _ in range(trials):
        feeds = random_inputs(policy.cfg, rng)
        ref = torch_reference(policy, feeds)
        out = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), feeds)))
        for k in worst:
            assert out[k].shape == ref[k].shape, k
            worst[k] = max(worst[k], float(np.abs(out[k] - ref[k]).max()))
        i, j = int(out["index"][0]), int(ref["index"][0])
        assert i == j or abs(ref["q"][0, i] - ref["q"][0, j]) <= ATOL  # a near-tie at most
        np.testing.assert_array_equal(out["action"][0], out["candidates"][0, i])
    return worst


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lean_graph_matches_torch(make_cfg, variant: str) -> None:
    policy = _acting_policy(make_cfg(**VARIANTS[variant]))
    assert lean_unsupported(policy) is None
    worst = _compare(policy, trials=5)
    assert max(worst.values()) <= ATOL, worst


def test_lean_graph_follows_weights_and_normalizer(make_cfg) -> None:
    """Other weights or other observation statistics give other outputs (nothing baked in twice)."""
    cfg = make_cfg()
    a, b = _acting_policy(cfg, seed=0), _acting_policy(cfg, seed=1)
    feeds = random_inputs(cfg, np.random.default_rng(3))
    out_a = ort_session(lean_onnx_bytes(a)).run(["q"], feeds)[0]
    out_b = ort_session(lean_onnx_bytes(b)).run(["q"], feeds)[0]
    assert np.abs(out_a - out_b).max() > 1e-3
    with torch.no_grad():
        a.normalizer.std.mul_(2.0)
    np.testing.assert_allclose(
        ort_session(lean_onnx_bytes(a)).run(["q"], feeds)[0],
        torch_reference(a, feeds)["q"],
        atol=ATOL,
        rtol=0,
    )


def test_lean_graph_metadata(make_cfg) -> None:
    policy = _acting_policy(make_cfg())
    meta = read_onnx_metadata(lean_onnx_bytes(policy, metadata={"expo.note": "x"}))
    assert meta["expo.graph"] == LEAN_GRAPH and meta["expo.note"] == "x"
    assert ExpoConfig.from_json(meta["expo.config"]) == policy.cfg


def test_lean_graph_refuses_what_it_does_not_express(make_cfg) -> None:
    cases = {  # the reason's words -> config
        "DDIM acting": make_cfg(act_sampling_steps=2),
        "random critic subset": make_cfg(act_score="subset_min"),  # num_min 2 of 4 critics
    }
    if "chunk_len" in {f.name for f in dataclasses.fields(DiffusionConfig)}:
        cfg = make_cfg()
        cases["action chunks"] = cfg.replace(diffusion=dataclasses.replace(cfg.diffusion, chunk_len=2))
    for words, cfg in cases.items():
        policy = ExpoPolicy(cfg)
        assert words in (lean_unsupported(policy) or "")
        with pytest.raises(ValueError, match=f"lean graph: .*{words}"):
            lean_onnx_bytes(policy)


def test_lean_graph_published_sizes() -> None:
    """Published sizes (10 critics, denoiser 256/1024 x3, T = 10, N = 8): 20 draws, same choice."""
    cfg = ExpoConfig(obs_dim=19, act_dim=7)
    worst = _compare(_acting_policy(cfg), trials=20, seed=1)
    assert worst["action"] <= 1e-4 and worst["candidates"] <= 1e-4 and worst["q"] <= 1e-4, worst


def test_lean_template_takes_new_weights_byte_for_byte(make_cfg) -> None:
    """A template built once per config, filled with a policy's weights, runs exactly as that
    policy's own lean graph; another config does not fit."""
    cfg = make_cfg()
    template = LeanTemplate.build(cfg)
    feeds = random_inputs(cfg, np.random.default_rng(5))
    for seed in (0, 1):
        policy = _acting_policy(cfg, seed=seed)
        assert template.fits(policy)
        swapped = ort_session(template.with_weights(policy)).run(list(OUTPUT_NAMES), feeds)
        own = ort_session(lean_onnx_bytes(policy)).run(list(OUTPUT_NAMES), feeds)
        for a, b in zip(swapped, own):
            np.testing.assert_array_equal(a, b)
    other = _acting_policy(make_cfg(num_samples=3))
    assert not template.fits(other)
    with pytest.raises(ValueError, match="build a new LeanTemplate"):
        template.with_weights(other)
