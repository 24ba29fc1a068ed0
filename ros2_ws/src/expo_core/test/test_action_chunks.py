"""Action chunks (DiffusionConfig.chunk_len, issue 19): k = 1 is the base as before chunks; the
plan is the chosen candidate's own base-sample tail; chunk targets and masks; checkpoints."""

import json
from pathlib import Path

import pytest
import torch
from divergent import diverge
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.checkpoint import load_checkpoint, save_checkpoint
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig
from expo_core.otf import plan_of

REFERENCE = Path(__file__).parent / "data" / "chunk1_reference.json"


def _ref_cfg() -> ExpoConfig:
    return ExpoConfig(
        obs_dim=5,
        act_dim=3,
        diffusion=DiffusionConfig(hidden_dim=32, num_blocks=1, block_dim=64, time_embed_dim=8, num_steps=5),
        editor=EditorConfig(hidden_dims=(32,)),
        critic=CriticConfig(hidden_dims=(32,), num_critics=4, num_min=2),
        batch_size=8,
        utd=2,
        num_samples=4,
    )


def _reference_run() -> dict:
    """The computation whose results chunk1_reference.json recorded with the code before action
    chunks existed (same order of random draws)."""
    torch.manual_seed(0)
    agent = diverge(ExpoAgent(_ref_cfg(), seed=3))
    g = torch.Generator().manual_seed(7)
    obs = torch.randn(4, 5, generator=g)
    r = agent.policy.decide(obs, torch.Generator().manual_seed(11))
    rd = agent.decide(obs, deterministic=True)

    def batch() -> Batch:
        return Batch(
            torch.randn(8, 5, generator=g),
            torch.rand(8, 3, generator=g) * 2 - 1,
            torch.rand(8, generator=g),
            torch.randn(8, 5, generator=g),
            torch.zeros(8),
            torch.zeros(8),
        )

    stats = agent.update(iter([batch() for _ in range(2)]))
    pre = agent.pretrain_step(batch())
    after = agent.policy.decide(obs, torch.Generator().manual_seed(11))
    return dict(
        shapes={k: list(v.shape) for k, v in agent.state_dict().items()},
        r=r,
        det_action=rd.action,
        update=stats,
        pretrain=pre,
        after_action=after.action,
    )


def test_chunk_len_1_matches_the_recorded_reference():
    ref = json.loads(REFERENCE.read_text())
    out = _reference_run()
    assert out["shapes"] == ref["shapes"]
    r = out["r"]
    assert r.plan is None
    assert r.index.tolist() == ref["index"]
    torch.testing.assert_close(r.action, torch.tensor(ref["action"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(r.q, torch.tensor(ref["q"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["det_action"], torch.tensor(ref["det_action"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["after_action"], torch.tensor(ref["after_action"]), atol=1e-5, rtol=0)
    for k, v in ref["update"].items():
        assert out["update"][k] == pytest.approx(v, abs=1e-5), k
    assert out["pretrain"]["bc_loss"] == pytest.approx(ref["pretrain"]["bc_loss"], abs=1e-5)


def test_chunk_len_widens_only_the_denoiser_action_layers(make_cfg):
    k1 = ExpoAgent(make_cfg(), seed=0).state_dict()
    cfg4 = make_cfg(
        diffusion=DiffusionConfig(
            hidden_dim=32, num_blocks=1, block_dim=64, time_embed_dim=8, num_steps=5, chunk_len=4
        )
    )
    k4 = ExpoAgent(cfg4, seed=0).state_dict()
    assert k1.keys() == k4.keys()
    differ = sorted(n for n in k1 if k1[n].shape != k4[n].shape)
    assert differ and all("base.denoiser" in n for n in differ)
    out = [n for n in differ if n.endswith("out.weight") or n.endswith("out.bias")]
    for n in out:
        assert k4[n].shape[0] == 4 * k1[n].shape[0]


def _cfg4(make_cfg, **changes) -> ExpoConfig:
    d = DiffusionConfig(hidden_dim=32, num_blocks=1, block_dim=64, time_embed_dim=8, num_steps=5, chunk_len=4)
    return make_cfg(diffusion=d, **changes)


@pytest.mark.parametrize("steps", [0, 2])
def test_plan_is_the_chosen_candidates_own_tail(make_cfg, steps):
    cfg = _cfg4(make_cfg, act_sampling_steps=steps, num_samples=6)
    agent = diverge(ExpoAgent(cfg, seed=1))
    policy = agent.policy
    B, N, d = 64, cfg.num_samples, cfg.act_dim
    g = torch.Generator().manual_seed(5)
    obs = torch.randn(B, cfg.obs_dim, generator=g)
    noise = torch.randn(policy.base.noise_shape(B, N, steps), generator=g)
    assert noise.shape[-1] == 4 * d
    edit_noise = torch.randn(B, N, d, generator=g)
    r = policy.decide(obs, base_noise=noise, edit_noise=edit_noise)
    chunks = policy.base.sample_chunks(policy.normalizer(obs), N, noise=noise, steps=steps)  # (B, N, 4, d)
    assert chunks.shape == (B, N, 4, d)
    # the candidates are the chunks' first actions; the tails of different samples differ
    torch.testing.assert_close(r.candidates[:, :N], chunks[:, :, 0])
    assert (chunks[:, 0, 1:] - chunks[:, 1, 1:]).abs().amax() > 1e-3
    assert r.plan.shape == (B, 3, d)
    assert r.plan.abs().max() <= 1.0
    base_won, edit_won = r.index < N, r.index >= N
    assert base_won.any() and edit_won.any()  # both kinds of winners are checked
    for b in range(B):
        torch.testing.assert_close(r.plan[b], chunks[b, int(r.index[b]) % N, 1:])
        # and not any other sample's tail
        others = [i for i in range(N) if i != int(r.index[b]) % N]
        assert all((r.plan[b] - chunks[b, i, 1:]).abs().amax() > 1e-6 for i in others)


def test_plan_of_clips_and_handles_no_chunks():
    assert plan_of(None, torch.tensor([0])) is None
    tails = torch.tensor([[[[2.0]], [[-0.5]]]])  # (B=1, N=2, k-1=1, d=1)
    assert plan_of(tails, torch.tensor([0])).tolist() == [[[1.0]]]
    assert plan_of(tails, torch.tensor([3])).tolist() == [[[-0.5]]]  # edit of sample 1


def test_k1_decision_has_no_plan(make_cfg):
    r = ExpoAgent(make_cfg(), seed=0).decide(torch.zeros(2, 4), deterministic=True)
    assert r.plan is None


def test_checkpoint_round_trip_with_chunks(make_cfg, tmp_path):
    agent = diverge(ExpoAgent(_cfg4(make_cfg), seed=2))
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, agent)
    loaded, _ = load_checkpoint(path)
    assert loaded.cfg.diffusion.chunk_len == 4
    obs = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    a, b = agent.decide(obs, deterministic=True), loaded.decide(obs, deterministic=True)
    torch.testing.assert_close(a.action, b.action)
    torch.testing.assert_close(a.plan, b.plan)


def test_old_config_json_loads_as_chunk_len_1(make_cfg):
    old = json.loads(make_cfg().to_json())  # k = 1 serializes as before the field existed
    assert "chunk_len" not in old["diffusion"]
    assert set(old["diffusion"]) == {f for f in DiffusionConfig.__dataclass_fields__ if f != "chunk_len"}
    assert ExpoConfig.from_dict(old).diffusion.chunk_len == 1
    cfg4 = _cfg4(make_cfg)
    assert json.loads(cfg4.to_json())["diffusion"]["chunk_len"] == 4
    assert ExpoConfig.from_json(cfg4.to_json()) == cfg4


@pytest.mark.parametrize("bad", [0, 33, -1, 2.0, True])
def test_chunk_len_validated(bad):
    with pytest.raises(ValueError, match="diffusion.chunk_len"):
        DiffusionConfig(chunk_len=bad)


def test_export_refuses_chunks(make_cfg):
    from expo_core.export import OTFGraph, noise_shapes

    policy = ExpoAgent(_cfg4(make_cfg), seed=0).policy
    with pytest.raises(ValueError, match="action chunks need the torch backend"):
        OTFGraph(policy)
    with pytest.raises(ValueError, match="action chunks need the torch backend"):
        noise_shapes(policy.cfg)
    assert "base_noise" in noise_shapes(make_cfg())  # k = 1 exports as before


def test_pixel_policy_refuses_chunks():
    from expo_core.encoder import EncoderConfig
    from expo_core.pixel_agent import PixelAgent, feature_dim, pixel_expo_config
    from expo_core.presets import preset_config
    from expo_core.spec import task_obs_spec

    spec = task_obs_spec("lift", "pixels", image_size=32)
    enc = EncoderConfig(
        camera_names=spec.cameras,
        image_size=32,
        kind="spatial_softmax",
        num_filters=8,
        num_layers=2,
        feature_dim=8,
    )
    cfg = preset_config("tiny", 1, 7)
    cfg = cfg.replace(diffusion=DiffusionConfig(**(cfg.diffusion.__dict__ | {"chunk_len": 4})))
    with pytest.raises(ValueError, match="chunk_len=4 is invalid for a pixel policy.*--chunk-len"):
        pixel_expo_config(cfg, enc, spec)
    with pytest.raises(ValueError, match="pixel policy"):
        PixelAgent(cfg.replace(obs_dim=feature_dim(enc, spec)), enc, spec)


# --- chunk targets ------------------------------------------------------------------------------


def test_action_chunks_stop_at_episode_ends():
    import numpy as np
    from expo_core.replay import action_chunks

    action = np.arange(7, dtype=np.float32)[:, None] * np.array([[1.0, -1.0]], np.float32) / 10
    episode = np.array([0, 0, 0, 1, 1, 2, 2])  # ends after rows 2, 4, 6
    out = action_chunks(action, episode, 3)
    chunk, mask = out["action_chunk"], out["chunk_mask"]
    assert chunk.shape == (7, 3, 2) and mask.shape == (7, 3)
    assert mask.tolist() == [
        [1, 1, 1],
        [1, 1, 0],
        [1, 0, 0],
        [1, 1, 0],
        [1, 0, 0],
        [1, 1, 0],
        [1, 0, 0],
    ]
    np.testing.assert_array_equal(chunk[0], action[0:3])
    np.testing.assert_array_equal(chunk[3, :2], action[3:5])
    assert not chunk[4, 1:].any()  # past the end of episode 1: zeros, not episode 2's actions
    np.testing.assert_array_equal(chunk[:, 0], action)
    with pytest.raises(ValueError, match="consecutive"):
        action_chunks(action, np.array([0, 0, 1, 1, 0, 2, 2]), 2)


def test_chunk_buffer_round_trip_and_mixed_batches():
    import numpy as np
    from expo_core.replay import MixedSampler, ReplayBuffer, action_chunks

    n, o, d, k = 12, 3, 2, 4
    rng = np.random.default_rng(0)
    arrays = dict(
        obs=rng.normal(size=(n, o)),
        action=rng.uniform(-1, 1, (n, d)),
        reward=np.zeros(n),
        next_obs=rng.normal(size=(n, o)),
        terminated=np.zeros(n),
        truncated=np.zeros(n),
    )
    arrays["action"] = arrays["action"].astype(np.float32)
    arrays |= action_chunks(arrays["action"], np.repeat([0, 1, 2], 4), k)
    offline = ReplayBuffer.from_arrays(arrays)
    assert offline.chunk_len == k
    online = ReplayBuffer(o, d, 10)
    online.add(arrays["obs"][0], arrays["action"][0], 0.0, arrays["obs"][1], 0.0, 0.0)
    with pytest.raises(ValueError, match="without chunks"):
        online.add(
            arrays["obs"][0],
            arrays["action"][0],
            0.0,
            arrays["obs"][1],
            0.0,
            0.0,
            arrays["action_chunk"][0],
            arrays["chunk_mask"][0],
        )
    b = MixedSampler(online, offline, 0.5).sample(8, torch.Generator().manual_seed(0))
    assert b.action_chunk.shape == (8, k, d) and b.chunk_mask.shape == (8, k)
    torch.testing.assert_close(b.action_chunk[:, 0], b.action)
    assert b.chunk_mask[4:].tolist() == [[1, 0, 0, 0]] * 4  # online rows: first slot only
    assert not b.action_chunk[4:, 1:].any()
    assert b.to("cpu").action_chunk is not None
    bad = arrays | {"action_chunk": arrays["action_chunk"] + 0.5}
    with pytest.raises(ValueError, match="first slot"):
        ReplayBuffer.from_arrays(bad)


def test_masked_slots_do_not_change_the_loss_unmasked_ones_do(make_cfg):
    cfg = _cfg4(make_cfg)
    agent = ExpoAgent(cfg, seed=0)
    B, d = 16, cfg.act_dim
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(B, cfg.obs_dim, generator=g)
    chunk = torch.rand(B, 4, d, generator=g) * 2 - 1
    mask = torch.ones(B, 4)
    mask[: B // 2, 2:] = 0.0  # half the rows end after two steps
    batch = Batch(obs, chunk[:, 0], torch.zeros(B), obs, torch.zeros(B), torch.zeros(B), chunk, mask)
    loss = agent.evaluate_bc_loss(batch)
    masked = chunk.clone()
    masked[: B // 2, 2:] = 5.0  # another value in the masked slots
    same = agent.evaluate_bc_loss(batch.replace(action_chunk=masked))
    assert same == loss
    unmasked = chunk.clone()
    unmasked[B // 2 :, 2:] *= -1  # another value in unmasked slots
    assert agent.evaluate_bc_loss(batch.replace(action_chunk=unmasked)) != pytest.approx(loss, abs=1e-6)
    # online rows (no chunks) learn the first slot only: = an explicit [a, 0, 0, 0] / [1, 0, 0, 0]
    online = Batch(obs, chunk[:, 0], torch.zeros(B), obs, torch.zeros(B), torch.zeros(B))
    first = torch.zeros_like(chunk)
    first[:, 0] = chunk[:, 0]
    m1 = torch.zeros(B, 4)
    m1[:, 0] = 1
    assert agent.evaluate_bc_loss(online) == agent.evaluate_bc_loss(
        online.replace(action_chunk=first, chunk_mask=m1)
    )
    with pytest.raises(ValueError, match="mask has shape"):
        agent.base.loss(obs, chunk.reshape(B, -1), None, torch.ones(B, 3))


def test_update_runs_with_chunks_and_online_batches(make_cfg):
    agent = ExpoAgent(_cfg4(make_cfg), seed=0)
    g = torch.Generator().manual_seed(0)
    B = agent.cfg.batch_size

    def online() -> Batch:
        return Batch(
            torch.randn(B, 4, generator=g),
            torch.rand(B, 3, generator=g) * 2 - 1,
            torch.rand(B, generator=g),
            torch.randn(B, 4, generator=g),
            torch.zeros(B),
            torch.zeros(B),
        )

    stats = agent.update(iter([online() for _ in range(agent.cfg.utd)]))
    assert all(map(torch.isfinite, map(torch.tensor, stats.values())))


@pytest.mark.slow
def test_a_chunk_base_learns_a_predictable_future():
    """Toy episodes where the future is a function of the observation: x_t = obs, actions
    a_t+j = 0.8 * (-1)^j * x (alternating sign, so repeating the current action is wrong).
    After training, the base's sampled tails reproduce the future far better than chance
    (uniform actions) or holding the first action."""
    import numpy as np
    from expo_core.replay import ReplayBuffer, action_chunks

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    episodes, length = 200, 6
    x = rng.uniform(-1, 1, (episodes, 1)).repeat(length, 0).astype(np.float32)  # constant per episode
    t = np.tile(np.arange(length), episodes)
    action = (0.8 * x * (-1.0) ** t[:, None]).astype(np.float32)
    obs = np.concatenate([x, (-1.0) ** t[:, None]], 1).astype(np.float32)  # the phase is observed
    n = len(obs)
    arrays = dict(
        obs=obs,
        action=action,
        reward=np.zeros(n),
        next_obs=obs,
        terminated=np.zeros(n),
        truncated=np.zeros(n),
    )
    arrays |= action_chunks(action, np.repeat(np.arange(episodes), length), 4)
    buf = ReplayBuffer.from_arrays(arrays)
    cfg = ExpoConfig(
        obs_dim=2,
        act_dim=1,
        diffusion=DiffusionConfig(
            hidden_dim=64,
            num_blocks=2,
            block_dim=128,
            time_embed_dim=16,
            num_steps=10,
            lr=1e-3,
            ema_tau=0.05,
            chunk_len=4,
        ),
        editor=EditorConfig(hidden_dims=(16,)),
        critic=CriticConfig(hidden_dims=(16,), num_critics=2, num_min=2),
        batch_size=128,
    )
    agent = ExpoAgent(cfg, seed=0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(1500):
        agent.pretrain_step(buf.sample(cfg.batch_size, gen))
    test_x = np.linspace(-0.9, 0.9, 40, dtype=np.float32)[:, None]
    test_obs = np.concatenate([test_x, np.ones_like(test_x)], 1)  # phase +1: a_t = 0.8 x
    chunks = agent.base_act_chunk(test_obs, deterministic=True)  # (40, 4, 1)
    future = 0.8 * test_x[:, None, :] * np.array([1.0, -1.0, 1.0, -1.0])[None, :, None]
    err = np.abs(chunks - future)[:, 1:].mean()
    hold_err = np.abs(chunks[:, :1] - future)[:, 1:].mean()  # repeating the first action
    chance_err = np.abs(rng.uniform(-1, 1, future.shape) - future)[:, 1:].mean()
    assert err < 0.1, err
    assert err < 0.25 * min(hold_err, chance_err), (err, hold_err, chance_err)
