"""TensorRT backend pieces that run without TensorRT or a GPU: the engine cache key (structure,
not weights; GPU and settings), the refit weight mapping, and the refit sequence against a stand-in
of the TensorRT Refitter API. The engine build itself needs TensorRT + CUDA (test_backend_onnx)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
from expo_core.agent import ExpoAgent
from expo_core.export import GraphTemplate

HAVE_ONNX = importlib.util.find_spec("onnx") is not None
pytestmark = pytest.mark.skipif(not HAVE_ONNX, reason="onnx not installed (the template is an ONNX graph)")


@pytest.fixture
def template(agent: ExpoAgent) -> GraphTemplate:
    return GraphTemplate.export(agent.cfg)


def _initializer_names(template: GraphTemplate) -> list[str]:
    import onnx

    return [i.name for i in onnx.load_from_string(template.model).graph.initializer]


def test_engine_cache_key_depends_on_structure_gpu_and_settings(agent: ExpoAgent, make_agent) -> None:
    import hashlib

    from expo_policy.backends.tensorrt_engine import engine_cache_key

    t1 = GraphTemplate.export(agent.cfg)
    t2 = GraphTemplate.export(make_agent(seed=5).cfg)  # other weights, same config: same graph
    assert t1.model == t2.model
    sha = hashlib.sha256(t1.model).hexdigest()
    base = (sha, "10.9.0", "NVIDIA H100", (9, 0), False, 1024)
    key = engine_cache_key(*base)
    assert key == engine_cache_key(hashlib.sha256(t2.model).hexdigest(), *base[1:])
    for i, other in enumerate(["0" * 64, "10.10.0", "NVIDIA L4", (8, 9), True, 2048]):
        changed = list(base)
        changed[i] = other
        assert engine_cache_key(*changed) != key, i
    wide = GraphTemplate.export(make_agent(critic_hidden=(64, 64)).cfg)
    assert engine_cache_key(hashlib.sha256(wide.model).hexdigest(), *base[1:]) != key


def test_refit_weights_maps_engine_names_to_policy_tensors(template: GraphTemplate, make_agent) -> None:
    from expo_policy.backends.tensorrt_engine import refit_weights

    policy = make_agent(seed=3).policy
    names = _initializer_names(template)
    arrays = refit_weights(template, policy, names)
    state = policy.state_dict()
    assert set(arrays) == set(names) and len(arrays) == len(template.slots)
    for name, arr in arrays.items():
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
        np.testing.assert_array_equal(arr, state[name.removeprefix("policy.")].numpy())
    assert refit_weights(template, policy, names[:3]).keys() == set(names[:3])  # only what it asks
    with pytest.raises(RuntimeError, match="not policy tensors: \\['onnx::MatMul_123'\\]"):
        refit_weights(template, policy, [*names, "onnx::MatMul_123"])
    wide = make_agent(critic_hidden=(64, 64)).policy
    with pytest.raises(RuntimeError, match="the engine's graph has"):
        refit_weights(template, wide, names)


class _FakeRefitter:
    """The part of tensorrt.Refitter the backend uses, recording what it is given."""

    def __init__(self, names: list[str], accept: bool = True) -> None:
        self.names, self.accept, self.given, self.refits = names, accept, {}, 0

    def get_all_weights(self) -> list[str]:
        return list(self.names)

    def set_named_weights(self, name: str, w: SimpleNamespace) -> bool:
        self.given[name] = w.arr.copy()
        return self.accept

    def get_missing_weights(self) -> list[str]:
        return [n for n in self.names if n not in self.given]

    def refit_cuda_engine(self) -> bool:
        self.refits += 1
        return True


def test_refit_sequence_with_named_weights(template: GraphTemplate, make_agent) -> None:
    """Without OnnxParserRefitter (TensorRT < 10): every engine weight set by name, then refit."""
    from expo_policy.backends.tensorrt_engine import TensorRTBackend

    policy = make_agent(seed=8).policy
    refitter = _FakeRefitter(_initializer_names(template))
    trt = SimpleNamespace(
        Refitter=lambda engine, logger: refitter, Weights=lambda arr: SimpleNamespace(arr=arr)
    )
    fake = SimpleNamespace(trt=trt, _logger=None)
    TensorRTBackend._refit(fake, object(), template, policy, template.with_weights(policy))
    assert refitter.refits == 1 and set(refitter.given) == set(refitter.names)
    state = policy.state_dict()
    for name, arr in refitter.given.items():
        np.testing.assert_array_equal(arr, state[name.removeprefix("policy.")].numpy())
    refuse = _FakeRefitter(refitter.names, accept=False)
    trt.Refitter = lambda engine, logger: refuse
    with pytest.raises(RuntimeError, match="refused the refit weight"):
        TensorRTBackend._refit(fake, object(), template, policy, b"")


def test_refit_sequence_with_the_onnx_parser_refitter(template: GraphTemplate, make_agent) -> None:
    """TensorRT >= 10: the ONNX bytes (the template with the new weights) go to refit_from_bytes."""
    from expo_policy.backends.tensorrt_engine import TensorRTBackend

    policy = make_agent(seed=9).policy
    model = template.with_weights(policy)
    refitter = _FakeRefitter([])
    seen: list[bytes] = []

    class Parser:
        def __init__(self, r, logger) -> None:
            assert r is refitter

        def refit_from_bytes(self, data: bytes) -> bool:
            seen.append(data)
            return True

    trt = SimpleNamespace(Refitter=lambda engine, logger: refitter, OnnxParserRefitter=Parser)
    TensorRTBackend._refit(SimpleNamespace(trt=trt, _logger=None), object(), template, policy, model)
    assert seen == [model] and refitter.refits == 1
