"""The pixel agent (issue 13, modes (a) and (b)): encoder + EXPO on its features, imitation
pretraining end to end then frozen, cached features for replay, checkpoints and bundles that
carry the encoder, its config and the spec, and refuse the wrong kind of spec."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from expo_core.agent import EVAL_SEED, ExpoAgent
from expo_core.batch import Batch
from expo_core.checkpoint import (
    FORMAT,
    PIXELS_FORMAT,
    WeightsError,
    acting_policy_from_weights,
    decode_policy_weights,
    load_any_checkpoint,
    load_checkpoint,
    load_pixel_checkpoint,
    load_policy_weights,
    pixel_policy_from_weights,
    policy_from_weights,
    policy_weights_bytes,
    save_checkpoint,
)
from expo_core.encoder import EncoderConfig
from expo_core.pixel_agent import (
    MODE_FROZEN_WEIGHTS,
    MODE_PRETRAIN,
    PixelAgent,
    PixelPolicy,
    camera_frames,
    encoder_preset,
    feature_dim,
    pack_observation,
    pixel_expo_config,
    unpack_observation,
)
from expo_core.pixel_pretrain import (
    ImageBatchSampler,
    feature_transitions,
    frame_features,
    pretrain_pixels,
)
from expo_core.policy import ExpoPolicy
from expo_core.presets import preset_config
from expo_core.replay import ReplayBuffer
from expo_core.resnet import ResNet18
from expo_core.robomimic_io import ImageTransitionArrays, TransitionArrays
from expo_core.spec import task_obs_spec

SIZE = 32
SPEC = task_obs_spec("lift", "pixels", image_size=SIZE)
CAMS = SPEC.cameras


def _enc(**changes) -> EncoderConfig:
    base = dict(
        camera_names=CAMS, image_size=SIZE, kind="spatial_softmax", num_filters=8, num_layers=2, feature_dim=8
    )
    return EncoderConfig(**(base | changes))


def _agent(enc: EncoderConfig | None = None, seed: int = 0) -> PixelAgent:
    enc = enc or _enc()
    return PixelAgent(pixel_expo_config(preset_config("tiny", 1, 7), enc, SPEC), enc, SPEC, seed=seed)


def _frames(rng: np.random.Generator, *lead: int) -> dict[str, np.ndarray]:
    return {c: rng.integers(0, 256, (*lead, SIZE, SIZE, 3), dtype=np.uint8) for c in CAMS}


def _dataset(rng: np.random.Generator, demos: int = 3, steps: int = 6) -> ImageTransitionArrays:
    """A tiny image dataset in load_robomimic_images' layout: per demo T frames + 1 final frame."""
    n = demos * steps
    episode = np.repeat(np.arange(demos), steps)
    obs = rng.standard_normal((n, SPEC.dim)).astype(np.float32)
    low = TransitionArrays(
        obs=obs,
        action=rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        reward=np.zeros(n, np.float32),
        next_obs=obs + 0.1,
        terminated=np.zeros(n, np.float32),
        truncated=np.zeros(n, np.float32),
        episode=episode,
        num_episodes=demos,
    )
    frames = {f"{c}_image": v for c, v in _frames(rng, n + demos).items()}
    obs_frame = np.concatenate([np.arange(d * (steps + 1), d * (steps + 1) + steps) for d in range(demos)])
    return ImageTransitionArrays(low, frames, obs_frame, obs_frame + 1, demos)


def _pretrained(rng: np.random.Generator, enc: EncoderConfig | None = None) -> PixelAgent:
    agent = _agent(enc)
    pretrain_pixels(agent, _dataset(rng), encoder_steps=2, base_steps=2, image_batch_size=4, seed=0)
    return agent


def test_feature_vector_is_cameras_then_proprio() -> None:
    enc = _enc()
    assert feature_dim(enc, SPEC) == 2 * 8 + 16
    agent = _agent(enc).eval()
    rng = np.random.default_rng(0)
    imgs, p = _frames(rng, 3), rng.standard_normal((3, 16)).astype(np.float32)
    z = agent.features(imgs, p).detach()
    assert z.shape == (3, 32)
    np.testing.assert_array_equal(z[:, 16:].numpy(), p)  # proprio passed through, last
    z0 = agent.encoder.encoder_for(CAMS[0])(torch.from_numpy(imgs[CAMS[0]]))
    torch.testing.assert_close(z[:, :8], z0.detach())


def test_spec_and_config_mismatches_are_refused() -> None:
    enc = _enc()
    with pytest.raises(ValueError, match="state spec"):
        pixel_expo_config(preset_config("tiny", 1, 7), enc, task_obs_spec("lift"))
    with pytest.raises(ValueError, match="cameras"):
        pixel_expo_config(preset_config("tiny", 1, 7), _enc(camera_names=("agentview",)), SPEC)
    with pytest.raises(ValueError, match="image_size"):
        pixel_expo_config(preset_config("tiny", 1, 7), _enc(image_size=48), SPEC)
    with pytest.raises(ValueError, match="obs_dim"):
        PixelAgent(preset_config("tiny", 31, 7), enc, SPEC)


def test_act_single_and_batched_and_camera_key_forms() -> None:
    agent = _agent().eval()
    rng = np.random.default_rng(1)
    imgs, p = _frames(rng, 2), rng.standard_normal((2, 16)).astype(np.float32)
    batched = agent.act(imgs, p, deterministic=True)
    assert batched.shape == (2, 7) and np.all(np.abs(batched) <= 1)
    one = agent.act({c: v[0] for c, v in imgs.items()}, p[0], deterministic=True)
    first = agent.act({c: v[:1] for c, v in imgs.items()}, p[:1], deterministic=True)
    np.testing.assert_array_equal(one, first[0])  # (the noise of a batch of 2 is another draw)
    robomimic_keys = {f"{c}_image": v[0] for c, v in imgs.items()}
    np.testing.assert_array_equal(agent.act(robomimic_keys, p[0], deterministic=True), one)
    packed = pack_observation({c: v[0] for c, v in imgs.items()}, p[0])
    assert sorted(packed) == ["agentview_image", "low_dim", "robot0_eye_in_hand_image"]
    images, proprio = unpack_observation(packed, CAMS)
    np.testing.assert_array_equal(agent.act(images, proprio, deterministic=True), one)
    with pytest.raises(KeyError, match="robot0_eye_in_hand"):
        agent.act({CAMS[0]: imgs[CAMS[0]][0]}, p[0])
    with pytest.raises(TypeError, match="uint8"):
        camera_frames({c: v.astype(np.float32) for c, v in imgs.items()}, CAMS)
    with pytest.raises(KeyError, match="low_dim"):
        unpack_observation({k: v for k, v in packed.items() if k != "low_dim"}, CAMS)


def test_pretrain_step_trains_encoder_and_base_until_frozen() -> None:
    agent = _agent()
    rng = np.random.default_rng(2)
    imgs = {c: torch.from_numpy(v) for c, v in _frames(rng, 4).items()}
    p, a = torch.randn(4, 16), torch.rand(4, 7) * 2 - 1
    enc0 = {k: v.clone() for k, v in agent.encoder.state_dict().items()}
    base0 = {k: v.clone() for k, v in agent.agent.base.state_dict().items()}
    agent.pretrain_step(imgs, p, a, torch.Generator().manual_seed(0))
    moved = [k for k, v in agent.encoder.state_dict().items() if not torch.equal(v, enc0[k])]
    assert any("trunk" in k for k in moved) and any("head" in k for k in moved)
    assert any(not torch.equal(v, base0[k]) for k, v in agent.agent.base.state_dict().items())
    with pytest.raises(RuntimeError, match="frozen"):
        agent.update(iter([]))
    agent.freeze_encoder()
    enc1 = {k: v.clone() for k, v in agent.encoder.state_dict().items()}
    base1 = {k: v.clone() for k, v in agent.agent.base.state_dict().items()}
    agent.pretrain_step(imgs, p, a)
    assert all(torch.equal(v, enc1[k]) for k, v in agent.encoder.state_dict().items())
    assert any(not torch.equal(v, base1[k]) for k, v in agent.agent.base.state_dict().items())


def test_augmentation_only_in_training(monkeypatch) -> None:
    """Acting, caching and the acting policy never random-shift; pretraining does."""
    import expo_core.encoder as encoder_module

    calls = []
    real = encoder_module.random_shift
    monkeypatch.setattr(encoder_module, "random_shift", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(3)
    agent = _pretrained(rng)
    assert calls, "pretraining must random-shift"
    calls.clear()
    agent.encoder.train()
    imgs, p = _frames(rng, 2), rng.standard_normal((2, 16)).astype(np.float32)
    agent.act(imgs, p)
    agent.base_act(imgs, p)
    agent.acting_policy().decide(imgs, p, torch.Generator().manual_seed(0))
    feature_transitions(agent.encoder, _dataset(rng))
    assert not calls


def test_cached_feature_transitions_equal_encoding_each_observation() -> None:
    rng = np.random.default_rng(4)
    agent = _pretrained(rng)
    data = _dataset(rng)
    per_frame = frame_features(agent.encoder, data)
    assert per_frame.shape == (len(data) + data.low_dim.num_episodes, 16)  # each frame once
    tr = feature_transitions(agent.encoder, data)
    direct = agent.features(data.obs_images(slice(None)), data.low_dim.obs).numpy()
    direct_next = agent.features(data.next_obs_images(slice(None)), data.low_dim.next_obs).numpy()
    np.testing.assert_allclose(tr["obs"], direct, atol=1e-5)
    np.testing.assert_allclose(tr["next_obs"], direct_next, atol=1e-5)
    np.testing.assert_allclose(tr["obs"][1:6, :16], tr["next_obs"][0:5, :16])  # next = the following frame
    ReplayBuffer.from_arrays(tr)  # replay-ready


def test_image_sampler_gathers_obs_frames() -> None:
    rng = np.random.default_rng(5)
    data = _dataset(rng)
    b = ImageBatchSampler(data, CAMS).sample(7, torch.Generator().manual_seed(0))
    idx = torch.randint(0, len(data), (7,), generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(
        b.images[CAMS[1]].numpy(), data.frames[f"{CAMS[1]}_image"][data.obs_frame[idx]]
    )
    np.testing.assert_array_equal(b.action.numpy(), data.low_dim.action[idx])
    with pytest.raises(KeyError, match="frontview"):
        ImageBatchSampler(data, ("frontview",))


def test_pretrain_pixels_freezes_and_sets_proprio_normalization() -> None:
    rng = np.random.default_rng(6)
    data = _dataset(rng)
    agent = _agent()
    result, offline = pretrain_pixels(agent, data, 3, 2, 4, seed=0)
    assert agent.is_frozen and agent.encoder_opt is None
    assert result.encoder_steps == 3 and np.isfinite(result.base_bc_loss)
    assert result.frames_encoded == 2 * (len(data) + 3) and len(offline) == len(data)
    norm = agent.agent.policy.normalizer
    np.testing.assert_allclose(norm.mean[16:].numpy(), data.low_dim.obs.mean(0), atol=1e-5)
    assert torch.equal(norm.mean[:16], torch.zeros(16)) and torch.equal(norm.std[:16], torch.ones(16))


def test_online_update_on_cached_features() -> None:
    rng = np.random.default_rng(7)
    agent = _pretrained(rng)
    tr = feature_transitions(agent.encoder, _dataset(rng))
    buf = ReplayBuffer.from_arrays(tr)
    gen = torch.Generator().manual_seed(0)
    stats = agent.update(iter(lambda: buf.sample(8, gen), None))
    assert np.isfinite(stats["critic_loss"]) and agent.agent.num_updates.item() == 1


def test_checkpoint_round_trip_acts_identically(tmp_path) -> None:
    rng = np.random.default_rng(8)
    agent = _pretrained(rng)
    save_checkpoint(tmp_path / "px", agent, {"note": 1})
    info = json.loads((tmp_path / "px.json").read_text())
    assert info["format"] == PIXELS_FORMAT and info["encoder_frozen"] is True
    assert EncoderConfig.from_dict(info["encoder_config"]) == agent.encoder_cfg
    back, meta = load_pixel_checkpoint(tmp_path / "px")
    assert meta == {"note": 1} and back.obs_spec == SPEC and back.is_frozen
    imgs, p = _frames(rng, 2), rng.standard_normal((2, 16)).astype(np.float32)
    np.testing.assert_array_equal(back.act(imgs, p, True), agent.act(imgs, p, True))
    any_agent, _ = load_any_checkpoint(tmp_path / "px", spec=SPEC)
    assert isinstance(any_agent, PixelAgent)


def test_checkpoint_while_encoder_trains_resumes_its_optimizer(tmp_path) -> None:
    agent = _agent()
    rng = np.random.default_rng(9)
    imgs = {c: torch.from_numpy(v) for c, v in _frames(rng, 4).items()}
    p, a = torch.randn(4, 16), torch.rand(4, 7) * 2 - 1
    agent.pretrain_step(imgs, p, a, torch.Generator().manual_seed(0))
    save_checkpoint(tmp_path / "px", agent)
    back, _ = load_pixel_checkpoint(tmp_path / "px")
    assert not back.is_frozen and back.encoder_opt is not None
    agent.pretrain_step(imgs, p, a, torch.Generator().manual_seed(1))
    back.pretrain_step(imgs, p, a, torch.Generator().manual_seed(1))
    for k, v in agent.encoder.state_dict().items():
        torch.testing.assert_close(back.encoder.state_dict()[k], v)


def test_pixel_and_state_files_refuse_each_other(tmp_path) -> None:
    px = _pretrained(np.random.default_rng(10))
    save_checkpoint(tmp_path / "px", px)
    state = ExpoAgent(preset_config("tiny", 19, 7))
    save_checkpoint(tmp_path / "st", state)
    with pytest.raises(WeightsError, match="pixel checkpoint"):
        load_checkpoint(tmp_path / "px")
    with pytest.raises(WeightsError, match="state checkpoint"):
        load_pixel_checkpoint(tmp_path / "st")
    with pytest.raises(WeightsError, match="cannot act on the state spec"):
        load_pixel_checkpoint(tmp_path / "px", spec=task_obs_spec("lift"))
    with pytest.raises(WeightsError, match="trained on spec"):
        load_pixel_checkpoint(tmp_path / "px", spec=task_obs_spec("lift", "pixels", cameras=("agentview",)))
    with pytest.raises(WeightsError, match="cannot act on the\\s+pixel spec"):
        load_checkpoint(tmp_path / "st", spec=SPEC)
    with pytest.raises(WeightsError, match="cannot act on the\\s+pixel spec"):
        load_any_checkpoint(tmp_path / "st", spec=SPEC)
    load_checkpoint(tmp_path / "st", spec=task_obs_spec("lift"))  # the right spec passes
    data, sha = policy_weights_bytes(px)
    with pytest.raises(WeightsError, match="pixel policy weights"):
        policy_from_weights(data, sha)
    with pytest.raises(WeightsError, match="pixel policy weights"):
        decode_policy_weights(data)
    sdata, ssha = policy_weights_bytes(state)
    with pytest.raises(WeightsError, match="state policy weights"):
        pixel_policy_from_weights(sdata, ssha)
    with pytest.raises(WeightsError, match="state policy weights"):
        load_policy_weights(px.acting_policy(), sdata, ssha)


def test_old_state_checkpoints_still_load(tmp_path) -> None:
    """A state checkpoint as every earlier version wrote it (no obs_spec key, same tensors) loads
    unchanged, and save_checkpoint without a spec still writes exactly that."""
    agent = ExpoAgent(preset_config("tiny", 19, 7), seed=3)
    save_checkpoint(tmp_path / "old", agent, {"k": 2})
    info = json.loads((tmp_path / "old.json").read_text())
    assert info["format"] == FORMAT and "obs_spec" not in info
    assert set(info) == {"format", "config", "optimizer_groups", "base_sched_step", "metadata"}
    back, meta = load_checkpoint(tmp_path / "old")
    assert meta == {"k": 2}
    obs = np.random.default_rng(0).standard_normal((2, 19)).astype(np.float32)
    np.testing.assert_array_equal(back.act(obs, True), agent.act(obs, True))
    save_checkpoint(tmp_path / "new", agent, spec=task_obs_spec("lift"))
    assert json.loads((tmp_path / "new.json").read_text())["obs_spec"] == task_obs_spec("lift").to_json()
    with pytest.raises(WeightsError, match="trained on spec"):
        load_checkpoint(
            tmp_path / "new", spec=task_obs_spec("lift").__class__(task_obs_spec("lift").keys[::-1])
        )
    with pytest.raises(WeightsError, match="dim"):
        save_checkpoint(tmp_path / "bad", agent, spec=task_obs_spec("can"))


def test_pixel_bundle_round_trip_and_integrity() -> None:
    rng = np.random.default_rng(11)
    agent = _pretrained(rng)
    data, sha = policy_weights_bytes(agent, version=4)
    pol = acting_policy_from_weights(data, sha)
    assert isinstance(pol, PixelPolicy) and pol.obs_spec == SPEC
    state = acting_policy_from_weights(*policy_weights_bytes(ExpoAgent(preset_config("tiny", 19, 7))))
    assert isinstance(state, ExpoPolicy) and not isinstance(state, PixelPolicy)
    imgs, p = _frames(rng, 2), rng.standard_normal((2, 16)).astype(np.float32)
    gen = lambda: torch.Generator().manual_seed(EVAL_SEED)  # noqa: E731
    ref = agent.acting_policy().decide(imgs, p, gen(), deterministic=True)
    got = pol.decide(imgs, p, gen(), deterministic=True)
    torch.testing.assert_close(got.action, ref.action)
    # The acting result is the agent's own deterministic decision.
    np.testing.assert_allclose(agent.act(imgs, p, True), ref.action.numpy(), atol=1e-6)
    with pytest.raises(WeightsError, match="sha256"):
        acting_policy_from_weights(data, "0" * 64)
    other = _pretrained(np.random.default_rng(12), _enc(feature_dim=4))
    with pytest.raises(WeightsError, match="another encoder"):
        load_policy_weights(pol, *policy_weights_bytes(other))
    unfrozen = _agent()
    with pytest.raises(ValueError, match="frozen"):
        policy_weights_bytes(unfrozen)


def test_mode_b_frozen_resnet_trunk_from_a_local_file(tmp_path) -> None:
    """Mode (b): the trunk comes from the user's file and never trains; the head does; the
    checkpoint carries the trunk, so it loads where the file is gone."""
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pt"
    torch.save(ResNet18().state_dict(), weights)
    enc = encoder_preset("cpu", image_size=SIZE, weights_path=str(weights))
    agent = _agent(enc)
    assert agent.mode == MODE_FROZEN_WEIGHTS and _agent().mode == MODE_PRETRAIN
    trunk0 = {k: v.clone() for k, v in agent.encoder.state_dict().items() if ".trunk." in k}
    rng = np.random.default_rng(13)
    data = _dataset(rng, demos=2, steps=3)
    head0 = {k: v.clone() for k, v in agent.encoder.state_dict().items() if ".trunk." not in k}
    pretrain_pixels(agent, data, 2, 1, 2, seed=0)
    state = agent.encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trunk0.items())  # BatchNorm stats included
    assert any(not torch.equal(state[k], v) for k, v in head0.items())
    save_checkpoint(tmp_path / "b", agent)
    weights.unlink()
    back, _ = load_pixel_checkpoint(tmp_path / "b")
    assert back.encoder_cfg.weights_path == str(weights)  # provenance kept
    imgs, p = _frames(rng, 1), rng.standard_normal((1, 16)).astype(np.float32)
    np.testing.assert_array_equal(back.act(imgs, p, True), agent.act(imgs, p, True))
    pol = pixel_policy_from_weights(*policy_weights_bytes(agent))
    np.testing.assert_allclose(
        pol.decide(imgs, p, torch.Generator().manual_seed(EVAL_SEED), True).action.numpy(),
        agent.act(imgs, p, True),
    )


def test_feature_batches_for_bc_ignore_reward_fields() -> None:
    """pretrain_step on a frozen encoder is the agent's plain BC step on features."""
    rng = np.random.default_rng(14)
    a1, a2 = _pretrained(rng), None
    a2 = _agent()
    a2.load_state_dict(a1.state_dict())
    a2.freeze_encoder()
    a2.agent.generator.set_state(a1.agent.generator.get_state())
    imgs = {c: torch.from_numpy(v) for c, v in _frames(rng, 4).items()}
    p, a = torch.randn(4, 16), torch.rand(4, 7) * 2 - 1
    l1 = a1.pretrain_step(imgs, p, a)["bc_loss"]
    z = a2.features(imgs, p).detach()
    zeros = torch.zeros(4)
    l2 = a2.agent.pretrain_step(Batch(z, a, zeros, z, zeros, zeros))["bc_loss"]
    assert l1 == pytest.approx(l2, abs=1e-6)
