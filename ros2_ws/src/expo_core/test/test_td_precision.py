"""`td_precision="bfloat16"`: the TD targets under bfloat16 autocast, against the float32 ones on
the same batches and random stream, with online, EMA and target networks that differ."""

import itertools
import json

import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.bench.learner_throughput import random_batches
from expo_core.config import ExpoConfig
from expo_core.td import draw_td_noise, td_targets


def _batches(cfg: ExpoConfig, count: int, seed: int = 0) -> list[Batch]:
    return list(itertools.islice(random_batches(cfg, seed), count))


def _targets(agent: ExpoAgent, cfg: ExpoConfig, batches: list[Batch]):
    g = torch.Generator().manual_seed(7)
    batches = [agent._normalized(b) for b in batches]
    noises = [draw_td_noise(cfg, agent.base, len(b), g, torch.device("cpu")) for b in batches]
    return td_targets(cfg, agent.base, agent.policy.editor, agent.critic_target, batches, noises, agent.alpha)


@pytest.mark.parametrize("steps", [0, 2], ids=["ddpm", "ddim-2"])
def test_bfloat16_targets_stay_close_to_float32_and_are_not_the_same_computation(make_cfg, steps):
    cfg = make_cfg(td_sampling_steps=steps, batch_size=64)
    agent = diverge(ExpoAgent(cfg, seed=0))
    batches = _batches(cfg, 3)
    ref = _targets(agent, cfg, batches)
    low = _targets(agent, cfg.replace(td_precision="bfloat16"), batches)
    for name in ("target", "next_q"):
        a, b = getattr(ref, name), getattr(low, name)
        assert b.dtype == torch.float32 and b.shape == a.shape
        diff = (a - b).abs()
        spread = a.std().item()
        # bfloat16 keeps ~3 significant digits: typical differences are a few % of the spread;
        # a sampler or critic computed wrong (or with other networks) is off by the spread itself
        assert diff.mean().item() < 0.05 * spread, (name, diff.mean().item(), spread)
        assert torch.quantile(diff, 0.9).item() < 0.15 * spread, (name, spread)
    # the switch is wired: bfloat16 rounding shows (identical results would mean float32 ran)
    assert not torch.equal(ref.target, low.target)
    # most next actions are the same kind of candidate (edited or base sample)
    assert (ref.edited == low.edited).float().mean().item() > 0.7


def test_float32_is_the_default_and_runs_without_autocast(make_cfg):
    cfg = make_cfg(batch_size=32)
    assert cfg.td_precision == "float32"
    agent = diverge(ExpoAgent(cfg, seed=1))
    batches = _batches(cfg, 2, seed=3)
    a = _targets(agent, cfg, batches)
    b = _targets(agent, cfg.replace(td_precision="float32"), batches)
    assert torch.equal(a.target, b.target)
    assert not torch.is_autocast_enabled("cpu")  # the context does not leak


def test_td_precision_serializes_only_when_not_float32(make_cfg):
    cfg = make_cfg()
    assert "td_precision" not in cfg.to_dict()  # pretrain cache names stay as before the field
    low = cfg.replace(td_precision="bfloat16")
    d = json.loads(low.to_json())
    assert d["td_precision"] == "bfloat16"
    assert ExpoConfig.from_dict(d) == low
    assert ExpoConfig.from_dict(cfg.to_dict()).td_precision == "float32"
    with pytest.raises(ValueError, match="td_precision"):
        cfg.replace(td_precision="float16")


def _critic_step(cfg: ExpoConfig, batches: list[Batch]) -> tuple[dict, dict]:
    agent = diverge(ExpoAgent(cfg, seed=2))
    stats = agent._critic_steps([agent._normalized(b) for b in batches], agent.alpha)
    return stats, {k: v.clone() for k, v in agent.policy.critic.state_dict().items()}


def test_bfloat16_critic_steps_stay_close_to_float32_and_are_not_the_same_computation(make_cfg):
    cfg = make_cfg(batch_size=64)
    batches = _batches(cfg, 2, seed=5)
    ref_stats, ref = _critic_step(cfg, batches)
    low_stats, low = _critic_step(cfg.replace(critic_precision="bfloat16"), batches)
    start = diverge(ExpoAgent(cfg, seed=2)).policy.critic.state_dict()
    moved = sum((ref[k] - start[k]).abs().sum().item() for k in ref)  # what float32 steps changed
    off = sum((ref[k] - low[k]).abs().sum().item() for k in ref)  # where bfloat16 steps differ
    # the same updates up to bfloat16 rounding of the forward pass: a step with the wrong target
    # or the wrong network would move the weights elsewhere by about as much as they moved
    assert 0 < off < 0.2 * moved, (off, moved)
    assert abs(ref_stats["critic_loss"] - low_stats["critic_loss"]) < 0.05 * ref_stats["critic_loss"]
    assert all(v.dtype == torch.float32 for v in low.values())  # float32 weights
    assert not torch.is_autocast_enabled("cpu")  # the context does not leak


def test_critic_precision_serializes_only_when_not_float32(make_cfg):
    cfg = make_cfg()
    assert "critic_precision" not in cfg.to_dict()
    low = cfg.replace(critic_precision="bfloat16")
    assert ExpoConfig.from_dict(json.loads(low.to_json())) == low
    with pytest.raises(ValueError, match="critic_precision"):
        cfg.replace(critic_precision="float16")
