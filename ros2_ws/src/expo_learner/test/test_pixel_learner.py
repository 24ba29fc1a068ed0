"""The learner from a pixel checkpoint (issue 13, mode a): frames encoded once with the frozen
encoder, features in replay, frames in the bags, image datasets as cached features, pixel weight
bundles, checkpoints that resume as pixel agents. A tiny pixel checkpoint (16x16 frames, the
``tiny`` encoder) is made by the tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from expo_core.checkpoint import PIXELS_FORMAT, pixel_policy_from_weights, save_checkpoint
from expo_core.pixel_agent import PixelAgent, encoder_preset, pixel_expo_config
from expo_core.pixel_pretrain import feature_transitions
from expo_core.presets import preset_config
from expo_core.robomimic_io import load_robomimic_images
from expo_core.spec import task_obs_spec
from expo_learner.checkpoints import CheckpointDir, load_start
from expo_learner.intake import TransitionIntake, load_offline, reload_online
from expo_learner.pixel_features import PixelFeaturizer
from expo_learner.replay_store import ReplayStore
from expo_learner.segments import SegmentWriter
from expo_learner.trainer import Trainer, TrainerConfig
from expo_learner.transition_codec import encode_transition
from expo_ros import conversions as cv
from expo_ros.transitions import TransitionData
from rosbags.highlevel import AnyReader

SIZE = 16
CAMS = ("agentview", "robot0_eye_in_hand")
SPEC = task_obs_spec("lift", "pixels", image_size=SIZE)


def _agent(seed: int = 0) -> PixelAgent:
    enc = encoder_preset("tiny", image_size=SIZE)
    cfg = pixel_expo_config(preset_config("tiny", 1, 7), enc, SPEC).replace(batch_size=8, utd=1)
    agent = PixelAgent(cfg, enc, SPEC, seed=seed)
    agent.freeze_encoder()
    return agent


@pytest.fixture
def pixel_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "pixbase"
    save_checkpoint(path, _agent())
    return path


def _frames(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {c: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for c in CAMS}


def _pixel_transition(i: int, rng: np.random.Generator, **changes) -> TransitionData:
    """Step ``i`` with random frames; ``changes`` override fields (e.g. images)."""
    now, nxt = _frames(rng), _frames(rng)
    t = TransitionData(
        obs=rng.standard_normal(SPEC.dim).astype(np.float32),
        action=rng.uniform(-1, 1, 7).astype(np.float32),
        reward=float(i % 5 == 4),
        next_obs=rng.standard_normal(SPEC.dim).astype(np.float32),
        terminated=i % 5 == 4,
        truncated=False,
        episode=i // 5,
        step=i % 5,
        policy_version=1,
        stamp_ns=(i + 1) * 50_000_000,
        images=tuple(cv.image_msg(now[c], i, c) for c in CAMS),
        next_images=tuple(cv.image_msg(nxt[c], i + 1, c) for c in CAMS),
    )
    return dataclasses.replace(t, **changes)


def _reference_z(agent: PixelAgent, t: TransitionData) -> tuple[np.ndarray, np.ndarray]:
    """obs and next-obs features computed directly by the agent, one at a time."""
    out = []
    for msgs, p in ((t.images, t.obs), (t.next_images, t.next_obs)):
        imgs = {c: cv.image_to_numpy(m)[None] for c, m in zip(CAMS, msgs, strict=True)}
        with torch.no_grad():
            out.append(agent.features(imgs, p[None]).numpy()[0])
    return out[0], out[1]


def test_featurize_single_and_batched_match_the_agent_features() -> None:
    agent, rng = _agent(), np.random.default_rng(0)
    f = PixelFeaturizer(agent, chunk_size=3)
    ts = [_pixel_transition(i, rng) for i in range(7)]
    rows, rejected = f.featurize_rows([(t, "a") for t in ts])
    assert not rejected and len(rows) == 7
    for t, (got, source) in zip(ts, rows, strict=True):
        z, z1 = _reference_z(agent, t)
        one = f.featurize(t)
        assert one.obs.shape == (agent.cfg.obs_dim,) and source == "a"
        np.testing.assert_allclose(one.obs, z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(one.next_obs, z1, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.obs, z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.next_obs, z1, rtol=1e-5, atol=1e-5)
        assert got.images == () and got.next_images == () and got.action is t.action
        np.testing.assert_array_equal(z[-SPEC.dim :], t.obs)  # the proprio part is passed through


def test_malformed_pixel_transitions_are_refused_with_the_reason() -> None:
    f, rng = PixelFeaturizer(_agent()), np.random.default_rng(1)
    good = _pixel_transition(0, rng)
    bgr = cv.image_msg(np.zeros((SIZE, SIZE, 3), np.uint8), 0, "agentview", "bgr8")
    big = cv.image_msg(np.zeros((SIZE + 2, SIZE + 2, 3), np.uint8), 0, "agentview")
    short = cv.image_msg(np.zeros((SIZE, SIZE, 3), np.uint8), 0, "agentview")
    short.data = bytes(10)
    cases = {
        "encoding 'bgr8'": dataclasses.replace(good, images=(bgr, good.images[1])),
        "18x18 image": dataclasses.replace(good, images=(big, good.images[1])),
        "10 bytes of data": dataclasses.replace(good, images=(short, good.images[1])),
        "0 next_images": dataclasses.replace(good, next_images=()),
        "1 images": dataclasses.replace(good, images=good.images[:1]),
        "proprio dims obs 19": dataclasses.replace(good, obs=np.zeros(19, np.float32)),
    }
    for reason, t in cases.items():
        with pytest.raises(ValueError, match=reason):
            f.featurize(t)
    rows, rejected = f.featurize_rows([(good, "s"), (cases["0 next_images"], "s")])
    assert len(rows) == 1 and sum(rejected.values()) == 1


def test_an_unfrozen_encoder_is_refused() -> None:
    enc = encoder_preset("tiny", image_size=SIZE)
    agent = PixelAgent(pixel_expo_config(preset_config("tiny", 1, 7), enc, SPEC), enc, SPEC)
    with pytest.raises(ValueError, match="frozen encoder"):
        PixelFeaturizer(agent)


def test_intake_stores_features_bags_keep_the_frames_and_reload_matches(tmp_path: Path) -> None:
    agent, rng = _agent(), np.random.default_rng(2)
    f = PixelFeaturizer(agent)
    store = ReplayStore(agent.cfg.obs_dim, 7, 100)
    writer = SegmentWriter(tmp_path / "bags")
    intake = TransitionIntake(store, writer, lambda n: None, f)
    ts = [_pixel_transition(i, rng) for i in range(6)]
    for t in ts:
        assert intake.on_cdr(encode_transition(t, "/sim"))
    assert not intake.on_cdr(encode_transition(dataclasses.replace(ts[0], next_images=()), "/sim"))
    assert sum(intake.rejected.values()) == 1 and next(iter(intake.rejected)).startswith(
        "pixels: 0 next_images"
    )
    assert len(store.online) == 6
    stored = store.online.arrays()["obs"]
    writer.close()
    # Third-party reader: the bag's own schema decodes the frames, byte for byte.
    with AnyReader([p for p in (tmp_path / "bags").iterdir()]) as reader:
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    assert len(msgs) == 6
    for t, m in zip(ts, msgs, strict=True):
        assert [x.encoding for x in m.images] == ["rgb8", "rgb8"] and len(m.next_images) == 2
        assert bytes(m.images[1].data) == bytes(t.images[1].data)
        assert bytes(m.next_images[0].data) == bytes(t.next_images[0].data)
    # A restart re-encodes the bags' frames into the same features.
    again = ReplayStore(agent.cfg.obs_dim, 7, 100)
    report = reload_online(again, tmp_path / "bags", f)
    assert report.total_messages == 6 and len(again.online) == 6
    reloaded = again.online.arrays()
    for i, t in enumerate(ts):
        z, z1 = _reference_z(agent, t)
        np.testing.assert_allclose(stored[i], z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reloaded["obs"][i], z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reloaded["next_obs"][i], z1, rtol=1e-5, atol=1e-5)


def _image_hdf5(path: Path, rng: np.random.Generator, demos: int = 2, steps: int = 5) -> None:
    """A tiny image dataset in robomimic's layout (obs/<camera>_image uint8, next_obs final frames)."""
    with h5py.File(path, "w") as fh:
        data = fh.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for d in range(demos):
            g = data.create_group(f"demo_{d}")
            g.attrs["num_samples"] = steps
            g.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
            g.create_dataset("rewards", data=np.eye(steps)[-1])
            g.create_dataset("dones", data=np.eye(steps)[-1])
            for grp in ("obs", "next_obs"):
                o = g.create_group(grp)
                for key in SPEC.keys:
                    o.create_dataset(key.name, data=rng.standard_normal((steps, key.dim)))
                for c in CAMS:
                    o.create_dataset(
                        f"{c}_image", data=rng.integers(0, 256, (steps, SIZE, SIZE, 3), np.uint8)
                    )


def test_offline_image_dataset_becomes_cached_features(tmp_path: Path) -> None:
    agent, rng = _agent(), np.random.default_rng(3)
    _image_hdf5(tmp_path / "img.hdf5", rng)
    buf, iv, lines = load_offline(str(tmp_path / "img.hdf5"), [], SPEC, 7, PixelFeaturizer(agent))
    want = feature_transitions(agent.encoder, load_robomimic_images(tmp_path / "img.hdf5", SPEC))
    assert len(buf) == 10 and iv is None and "frames encoded once" in lines[0]
    got = buf.arrays()
    np.testing.assert_allclose(got["obs"], want["obs"], rtol=1e-6)
    np.testing.assert_allclose(got["next_obs"], want["next_obs"], rtol=1e-6)
    assert got["obs"].shape == (10, agent.cfg.obs_dim)


def test_trainer_streams_pixel_bundles_and_checkpoints_resume_as_pixel_agents(
    tmp_path: Path, pixel_ckpt: Path
) -> None:
    ckpts = CheckpointDir(tmp_path / "ckpt")
    start = load_start(ckpts, str(pixel_ckpt), utd=2)
    assert isinstance(start.agent, PixelAgent) and start.agent.cfg.utd == 2 and not start.resumed
    f, rng = PixelFeaturizer(start.agent), np.random.default_rng(4)
    store = ReplayStore(start.agent.cfg.obs_dim, 7, 100)
    for i in range(12):
        store.add(f.featurize(_pixel_transition(i, rng)), "/sim")
    sent = []
    trainer = Trainer(start, store, ckpts, TrainerConfig(warmup_transitions=0), sent.append)
    snap = trainer.publish()
    assert snap.format == PIXELS_FORMAT and sent == [snap]
    policy = pixel_policy_from_weights(snap.data, snap.sha256)
    assert policy.cameras == CAMS
    before = {k: v.clone() for k, v in start.agent.agent.policy.critic.state_dict().items()}
    stats = trainer.update_once()
    assert np.isfinite(stats["critic_loss"]) and trainer.updates == 1
    after = start.agent.agent.policy.critic.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the critic trained"
    path = trainer.checkpoint()
    assert json.loads(path.with_suffix(".json").read_text())["format"] == PIXELS_FORMAT
    resumed = load_start(ckpts, str(pixel_ckpt))
    assert resumed.resumed and isinstance(resumed.agent, PixelAgent) and resumed.agent.is_frozen
    assert int(resumed.agent.agent.num_updates) == 1


def test_expo_data_round_trips_an_image_dataset_through_bags(tmp_path: Path) -> None:
    from expo_learner.data_cli import main

    rng = np.random.default_rng(5)
    _image_hdf5(tmp_path / "img.hdf5", rng)
    args = ["--task", "lift", "--obs", "pixels", "--image-size", str(SIZE)]
    assert main(["hdf5-to-bag", str(tmp_path / "img.hdf5"), str(tmp_path / "bags"), *args]) == 0
    with AnyReader([p for p in (tmp_path / "bags").iterdir()]) as reader:
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    assert len(msgs) == 10 and all(len(m.images) == len(m.next_images) == 2 for m in msgs)
    assert main(["bag-to-hdf5", str(tmp_path / "bags"), str(tmp_path / "back.hdf5"), *args]) == 0
    a = load_robomimic_images(tmp_path / "img.hdf5", SPEC)
    b = load_robomimic_images(tmp_path / "back.hdf5", SPEC)
    assert b.final_frames_stored == 2, "next_obs frames written back"
    for key in a.frames:
        np.testing.assert_array_equal(a.frames[key], b.frames[key])
    np.testing.assert_allclose(a.low_dim.obs, b.low_dim.obs, rtol=1e-6)
    np.testing.assert_allclose(a.low_dim.action, b.low_dim.action, rtol=1e-6)
    # robomimic's own reader layout: obs/<camera>_image (T, H, W, 3) uint8 per demo
    with h5py.File(tmp_path / "back.hdf5") as f:
        img = f["data/demo_0/obs/agentview_image"]
        assert img.dtype == np.uint8 and img.shape == (5, SIZE, SIZE, 3)
    # read as a state bag (no --obs pixels), the 16 proprio values do not fit lift's state spec
    assert main(["bag-to-hdf5", str(tmp_path / "bags"), str(tmp_path / "x.hdf5"), "--task", "lift"]) == 2


def test_bench_pixels_entry_point(pixel_ckpt: Path, capsys) -> None:
    from expo_learner.bench_pixels import main

    assert main([str(pixel_ckpt.with_suffix(".safetensors")), "--transitions", "12"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["image_size"] == SIZE and out["transitions"] == 12
    assert 0 < out["arriving_p50_ms"] <= out["arriving_p99_ms"] and out["reload_ms_per_transition"] > 0
