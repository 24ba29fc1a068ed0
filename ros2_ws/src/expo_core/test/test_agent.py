import itertools
import json

import numpy as np
import pytest
import torch
from divergent import diverge
from expo_core.agent import EVAL_SEED, ExpoAgent
from expo_core.batch import Batch
from expo_core.checkpoint import (
    WeightsError,
    load_checkpoint,
    load_policy_weights,
    policy_from_weights,
    policy_weights_bytes,
    save_checkpoint,
)


def batches(cfg, seed=0, nan_reward_at=None):
    g = torch.Generator().manual_seed(seed)
    for i in itertools.count():
        B = cfg.batch_size
        r = torch.rand(B, generator=g)
        if nan_reward_at is not None and i == nan_reward_at:
            r[0] = float("nan")
        yield Batch(
            torch.randn(B, cfg.obs_dim, generator=g),
            torch.rand(B, cfg.act_dim, generator=g) * 2 - 1,
            r,
            torch.randn(B, cfg.obs_dim, generator=g),
            (torch.rand(B, generator=g) < 0.2).float(),
            (torch.rand(B, generator=g) < 0.1).float(),
        )


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_update_returns_finite_flat_stats_and_changes_every_part(tiny_cfg):
    agent = ExpoAgent(tiny_cfg, seed=0)
    before = {
        n: params(m)
        for n, m in [
            ("critic", agent.policy.critic),
            ("editor", agent.policy.editor),
            ("base", agent.base),
            ("ema", agent.policy.base),
        ]
    }
    stats = agent.update(batches(tiny_cfg))
    assert all(isinstance(v, float) and np.isfinite(v) for v in stats.values())
    for key in ("critic_loss", "bc_loss", "editor_loss", "alpha", "q_mean", "td_edited_fraction"):
        assert key in stats
    for key in ("editor_entropy", "target_mean", "target_next_q"):  # diagnostics of issue 14
        assert key in stats
    assert 0.0 <= stats["td_edited_fraction"] <= 1.0
    assert "otf_entropy" not in stats and "backup_log_prob" not in stats  # no entropy backup by default
    for name, module in [
        ("critic", agent.policy.critic),
        ("editor", agent.policy.editor),
        ("base", agent.base),
        ("ema", agent.policy.base),
    ]:
        assert any(not torch.equal(a, b) for a, b in zip(before[name], params(module))), name


@pytest.mark.parametrize("td_steps, chunk_rows", [(0, 0), (2, 0), (0, 130)])
def test_fast_batched_td_equals_faithful_path_when_targets_are_frozen(make_cfg, td_steps, chunk_rows):
    # chunk_rows=130: two minibatches of 16 states x 4 samples per chunk, the sampler in 32-state chunks
    cfg = make_cfg(tau=0.0, utd=4, td_sampling_steps=td_steps, td_chunk_rows=chunk_rows)
    fast = diverge(ExpoAgent(cfg.replace(batched_td=True), seed=1))
    slow = diverge(ExpoAgent(cfg.replace(batched_td=False), seed=1))
    sf, ss = fast.update(batches(cfg, seed=5)), slow.update(batches(cfg, seed=5))
    assert sf == pytest.approx(ss, rel=1e-5)
    for a, b in zip(params(fast), params(slow)):
        assert torch.allclose(a, b, atol=1e-5)


def test_fast_path_with_moving_targets_stays_close(make_cfg):
    cfg = make_cfg(tau=0.005, utd=4)
    fast = diverge(ExpoAgent(cfg.replace(batched_td=True), seed=1))
    slow = diverge(ExpoAgent(cfg.replace(batched_td=False), seed=1))
    sf, ss = fast.update(batches(cfg, seed=5)), slow.update(batches(cfg, seed=5))
    assert sf["target_mean"] == pytest.approx(ss["target_mean"], rel=0.05, abs=1e-3)


def test_temperature_moves_toward_its_target(make_cfg):
    for target, direction in ((50.0, +1), (-50.0, -1)):  # far above / below the editor's entropy
        agent = ExpoAgent(
            make_cfg(target_entropy=target, reachable_target_entropy=False, temperature_lr=1e-2), seed=0
        )
        a0 = agent.alpha.item()
        it = batches(agent.cfg)
        for _ in range(5):
            agent.update(it)
        assert (agent.alpha.item() - a0) * direction > 0


def test_min_temperature_is_a_floor_the_falling_temperature_stops_at(make_cfg):
    kw = dict(target_entropy=-50.0, reachable_target_entropy=False, temperature_lr=0.3)  # alpha falls
    free = ExpoAgent(make_cfg(**kw), seed=0)
    floored = ExpoAgent(make_cfg(min_temperature=0.5, **kw), seed=0)
    it_free, it_floored = batches(free.cfg), batches(floored.cfg)
    for _ in range(6):
        free.update(it_free)
        stats = floored.update(it_floored)
    assert free.alpha.item() < 0.4  # without the floor it falls well below 0.5
    assert floored.alpha.item() == pytest.approx(0.5) and stats["alpha"] == pytest.approx(0.5)
    assert floored.log_alpha.item() == pytest.approx(np.log(0.5))  # projected, not only read clamped
    assert "min_temperature" not in make_cfg().to_dict()  # configs without it hash as before
    with pytest.raises(ValueError, match="min_temperature"):
        make_cfg(min_temperature=2.0)  # above init_temperature


def test_non_finite_losses_never_reach_the_weights(make_cfg):
    cfg = make_cfg(utd=2)
    agent = ExpoAgent(cfg, seed=0)
    critic_before = params(agent.policy.critic)
    stats = agent.update(batches(cfg, nan_reward_at=0))  # first critic minibatch has a NaN reward
    assert stats["rejected_steps"] >= 1
    for p in agent.parameters():
        assert torch.isfinite(p).all()
    assert any(
        not torch.equal(a, b) for a, b in zip(critic_before, params(agent.policy.critic))
    )  # 2nd step ran


def test_editor_trains_on_fresh_base_samples_or_buffer_actions(make_cfg):
    """The two settings feed the editor different actions, so one update differs."""
    cfg = make_cfg(utd=1)
    a = ExpoAgent(cfg, seed=0)
    b = ExpoAgent(cfg.replace(editor_on_base_samples=False), seed=0)
    a.update(batches(cfg)), b.update(batches(cfg))
    assert any(not torch.equal(x, y) for x, y in zip(params(a.policy.editor), params(b.policy.editor)))


def test_deterministic_act_is_a_function_of_the_observation(tiny_cfg):
    agent = ExpoAgent(tiny_cfg, seed=0)
    obs = np.random.default_rng(0).standard_normal((3, tiny_cfg.obs_dim)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    assert agent.act(obs[0]).shape == (tiny_cfg.act_dim,)
    assert not np.array_equal(agent.act(obs), agent.act(obs))  # the training policy explores


def test_checkpoint_round_trip_reproduces_actions_and_training(tmp_path, tiny_cfg):
    agent = diverge(ExpoAgent(tiny_cfg, seed=0))  # online/EMA/target copies all differ
    agent.set_obs_normalization(np.arange(tiny_cfg.obs_dim), np.full(tiny_cfg.obs_dim, 2.0))
    it = batches(tiny_cfg, seed=2)
    agent.update(it)
    save_checkpoint(tmp_path / "ckpt", agent, metadata={"env_steps": 7})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta == {"env_steps": 7}
    for name in ("base", "policy.base", "policy.critic", "critic_target"):
        mine, theirs = agent.get_submodule(name), loaded.get_submodule(name)
        assert all(torch.equal(a, b) for a, b in zip(params(mine), params(theirs))), name
    obs = torch.randn(4, tiny_cfg.obs_dim)
    np.testing.assert_array_equal(agent.act(obs.numpy(), True), loaded.act(obs.numpy(), True))
    # identical noise -> identical actions, and training continues identically (RNG + optimizers)
    s1, s2 = agent.update(batches(tiny_cfg, seed=9)), loaded.update(batches(tiny_cfg, seed=9))
    assert s1 == pytest.approx(s2, rel=1e-6)
    for a, b in zip(params(agent), params(loaded)):
        assert torch.equal(a, b)


def test_policy_weights_bundle_round_trip_and_rejections(tiny_cfg, make_cfg):
    agent = ExpoAgent(tiny_cfg, seed=0)
    agent.update(batches(tiny_cfg))
    data, sha = policy_weights_bytes(agent, version=3)
    fresh = policy_from_weights(data, sha)
    obs = torch.randn(2, tiny_cfg.obs_dim)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(fresh.decide(obs, g1).action, agent.policy.decide(obs, g2).action)

    target = ExpoAgent(tiny_cfg, seed=5).policy
    kept = {k: v.clone() for k, v in target.state_dict().items()}
    corrupted = bytearray(data)
    corrupted[-10] ^= 0xFF
    with pytest.raises(WeightsError, match="sha256"):
        load_policy_weights(target, bytes(corrupted), sha)
    with pytest.raises(WeightsError):
        load_policy_weights(target, data[:100])
    with pytest.raises(WeightsError, match="undecodable"):  # header intact, tensor bytes cut off
        load_policy_weights(target, data[: len(data) - 64])
    other = ExpoAgent(make_cfg(obs_dim=9), seed=0)
    with pytest.raises(WeightsError, match="shape"):
        load_policy_weights(target, policy_weights_bytes(other)[0])
    for k, v in target.state_dict().items():
        assert torch.equal(v, kept[k])  # nothing replaced on failure


def test_base_act_samples_the_ema_base_alone(tiny_cfg):
    agent = diverge(ExpoAgent(tiny_cfg, seed=0))
    obs = np.random.default_rng(1).standard_normal((5, tiny_cfg.obs_dim)).astype(np.float32)
    det = agent.base_act(obs, deterministic=True)
    np.testing.assert_array_equal(det, agent.base_act(obs, deterministic=True))
    assert det.shape == (5, tiny_cfg.act_dim) and np.abs(det).max() <= 1.0
    assert agent.base_act(obs[0]).shape == (tiny_cfg.act_dim,)
    # exactly one EMA-base sample per state, with the eval seed
    g = torch.Generator().manual_seed(EVAL_SEED)
    nobs = agent.policy.normalizer(torch.as_tensor(obs))
    ref = agent.policy.base.sample(nobs, 1, g)[:, 0]
    np.testing.assert_allclose(det, ref.detach().numpy(), atol=1e-6)
    online = agent.base.sample(nobs, 1, torch.Generator().manual_seed(EVAL_SEED))[:, 0]
    assert not np.allclose(det, online.detach().numpy(), atol=1e-3)  # not the online base


def test_checkpoints_with_the_old_boolean_entropy_backup_still_load(tmp_path, tiny_cfg):
    """Checkpoints and weights bundles written before the OTF switches existed store
    entropy_backup as a boolean and lack the new fields."""
    agent = ExpoAgent(tiny_cfg.replace(entropy_backup="softmax_entropy"), seed=0)
    save_checkpoint(tmp_path / "ckpt", agent)
    info = json.loads((tmp_path / "ckpt.json").read_text())
    new_fields = (
        "act_score target_score target_eval_subset backup_temperature backup_alpha target_sampler target_base"
    )
    for key in new_fields.split():
        del info["config"][key]
    for old, new in ((True, "softmax_entropy"), (False, "none")):
        info["config"]["entropy_backup"] = old
        (tmp_path / "ckpt.json").write_text(json.dumps(info))
        loaded, _ = load_checkpoint(tmp_path / "ckpt")
        assert loaded.cfg.entropy_backup == new
        assert loaded.cfg == agent.cfg.replace(entropy_backup=new)  # the rest at today's defaults


def test_evaluate_bc_loss_scores_the_online_or_ema_base_without_training(tiny_cfg):
    agent = diverge(ExpoAgent(tiny_cfg, seed=0))
    b = next(batches(tiny_cfg, seed=3))
    before, gen_state = params(agent), agent.generator.get_state()
    online, ema = agent.evaluate_bc_loss(b), agent.evaluate_bc_loss(b, ema=True)
    assert online == agent.evaluate_bc_loss(b)  # fixed-seed noise: comparable across calls
    nobs = agent.policy.normalizer(b.obs)
    with torch.no_grad():
        ref = agent.base.loss(nobs, b.action, torch.Generator().manual_seed(EVAL_SEED)).item()
        ref_ema = agent.policy.base.loss(nobs, b.action, torch.Generator().manual_seed(EVAL_SEED)).item()
    assert online == pytest.approx(ref, rel=1e-6) and ema == pytest.approx(ref_ema, rel=1e-6)
    assert online != pytest.approx(ema, rel=1e-3)
    assert all(torch.equal(x, y) for x, y in zip(before, params(agent)))
    assert torch.equal(gen_state, agent.generator.get_state())  # the training stream is untouched
