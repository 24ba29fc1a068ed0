"""Reading small synthetic robomimic HDF5 files written in the official layout."""

import json
import logging

import h5py
import numpy as np
import pytest
from expo_core.replay import ReplayBuffer
from expo_core.robomimic_io import load_robomimic_hdf5, load_robomimic_images, read_env_meta
from expo_core.spec import ObsKey, ObsSpec, RgbKey, task_obs_spec

# Deliberately not alphabetical: the flat order must follow the spec, not the file.
SPEC = ObsSpec((ObsKey("zeta", 2), ObsKey("alpha", 3)))
ENV_ARGS = {
    "env_name": "Lift",
    "env_version": "1.4.1",
    "type": 1,
    "env_kwargs": {"controller_configs": {"type": "OSC_POSE"}},
}


def demo(T: int, base: float, rewards=True, dones="last", next_obs=False) -> dict:
    """A T-step demo: zeta[t] = base + t, alpha[t] = -(base + t); success reward on the last step."""
    t = base + np.arange(T, dtype=np.float32)
    d = {
        "obs": {"zeta": np.stack([t, t], 1), "alpha": -np.stack([t, t, t], 1)},
        "actions": np.tile(np.linspace(-1, 1, 7, dtype=np.float32), (T, 1)),
    }
    if next_obs:
        d["next_obs"] = {k: v + 0.5 for k, v in d["obs"].items()}
    last = np.zeros(T, dtype=np.float32)
    last[-1] = 1.0
    if rewards:
        d["rewards"] = last
    if dones == "last":
        d["dones"] = last
    elif dones == "zeros":
        d["dones"] = np.zeros(T, dtype=np.float32)
    return d


def write(path, demos: dict, masks: dict | None = None, env_args: dict | None = ENV_ARGS):
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        if env_args is not None:
            data.attrs["env_args"] = json.dumps(env_args)
        for name, d in demos.items():
            g = data.create_group(name)
            T = len(next(iter(d["obs"].values())))
            g.attrs["num_samples"] = T
            for key, value in d.items():
                if isinstance(value, dict):
                    for obs_key, arr in value.items():
                        g.create_dataset(f"{key}/{obs_key}", data=arr)
                else:
                    g.create_dataset(key, data=value)
            g.create_dataset("states", data=np.zeros((T, 5)))
        for mask, names in (masks or {}).items():
            f.create_dataset(f"mask/{mask}", data=np.array([n.encode() for n in names], dtype="S"))
    return path


def test_flatten_order_derived_next_obs_and_terminal_flags(tmp_path):
    path = write(tmp_path / "a.hdf5", {"demo_0": demo(4, 0.0)})
    data = load_robomimic_hdf5(path, SPEC)
    assert data.obs.shape == (4, 5) and data.action.shape == (4, 7) and len(data) == 4
    np.testing.assert_array_equal(data.obs[:, :2], [[0, 0], [1, 1], [2, 2], [3, 3]])  # zeta first
    np.testing.assert_array_equal(data.obs[:, 2:], -np.repeat(np.arange(4.0)[:, None], 3, 1))
    np.testing.assert_array_equal(data.next_obs[:3], data.obs[1:])  # shifted
    np.testing.assert_array_equal(data.next_obs[3], data.obs[3])  # last repeats itself
    np.testing.assert_array_equal(data.terminated, [0, 0, 0, 1])
    np.testing.assert_array_equal(data.truncated, [0, 0, 0, 0])
    np.testing.assert_array_equal(data.reward, [0, 0, 0, 1])
    assert data.obs.dtype == np.float32 and data.episode.dtype == np.int64
    assert data.env_meta == ENV_ARGS and data.num_episodes == 1


def test_stored_next_obs_is_read(tmp_path):
    path = write(tmp_path / "a.hdf5", {"demo_0": demo(3, 0.0, next_obs=True)})
    data = load_robomimic_hdf5(path, SPEC)
    np.testing.assert_array_equal(data.next_obs, data.obs + 0.5)


@pytest.mark.parametrize(
    ("dones", "terminated", "truncated"),
    [
        ("zeros", [0, 0, 0], [0, 0, 1]),  # dones never 1: the recording just ended -> truncated
        (None, [0, 0, 1], [0, 0, 0]),  # no dones: the success reward on the last step terminates
    ],
)
def test_terminated_truncated_semantics(tmp_path, dones, terminated, truncated):
    path = write(tmp_path / "a.hdf5", {"demo_0": demo(3, 0.0, dones=dones)})
    data = load_robomimic_hdf5(path, SPEC)
    np.testing.assert_array_equal(data.terminated, terminated)
    np.testing.assert_array_equal(data.truncated, truncated)


def test_no_dones_and_failed_last_step_is_truncated(tmp_path):
    d = demo(3, 0.0, dones=None)
    d["rewards"] = np.zeros(3, dtype=np.float32)
    data = load_robomimic_hdf5(write(tmp_path / "a.hdf5", {"demo_0": d}), SPEC)
    np.testing.assert_array_equal(data.terminated, [0, 0, 0])
    np.testing.assert_array_equal(data.truncated, [0, 0, 1])


def test_reward_from_dones(tmp_path):
    path = write(tmp_path / "a.hdf5", {"demo_0": demo(3, 0.0, rewards=False)})
    with pytest.raises(KeyError, match=r"missing 'rewards'.*reward_from_dones"):
        load_robomimic_hdf5(path, SPEC)
    data = load_robomimic_hdf5(path, SPEC, reward_from_dones=True)
    np.testing.assert_array_equal(data.reward, [0, 0, 1])
    path = write(tmp_path / "b.hdf5", {"demo_0": demo(3, 0.0, rewards=False, dones=None)})
    with pytest.raises(KeyError, match="'dones' is missing too"):
        load_robomimic_hdf5(path, SPEC, reward_from_dones=True)


def test_demo_order_filter_key_and_max_demos(tmp_path):
    demos = {"demo_10": demo(2, 100.0), "demo_2": demo(3, 20.0), "demo_1": demo(1, 10.0)}
    path = write(tmp_path / "a.hdf5", demos, masks={"train": ["demo_10", "demo_1"], "valid": ["demo_2"]})
    data = load_robomimic_hdf5(path, SPEC)
    assert data.demo_names == ("demo_1", "demo_2", "demo_10")
    np.testing.assert_array_equal(data.obs[:, 0], [10, 20, 21, 22, 100, 101])
    np.testing.assert_array_equal(data.episode, [0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(data.terminated, [1, 0, 0, 1, 0, 1])  # one terminal per demo

    train = load_robomimic_hdf5(path, SPEC, filter_key="train")
    assert train.demo_names == ("demo_1", "demo_10") and train.num_episodes == 2
    np.testing.assert_array_equal(train.obs[:, 0], [10, 100, 101])
    assert load_robomimic_hdf5(path, SPEC, max_demos=2).demo_names == ("demo_1", "demo_2")
    with pytest.raises(KeyError, match=r"unknown filter_key 'test'.*\['train', 'valid'\]"):
        load_robomimic_hdf5(path, SPEC, filter_key="test")


def test_missing_data_group_and_env_args(tmp_path):
    path = tmp_path / "empty.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("other")
    with pytest.raises(KeyError, match=r"no 'data' group.*\['other'\]"):
        load_robomimic_hdf5(path, SPEC)
    with pytest.raises(KeyError, match="'data'"):
        read_env_meta(path)
    path = write(tmp_path / "noenv.hdf5", {"demo_0": demo(2, 0.0)}, env_args=None)
    with pytest.raises(KeyError, match="env_args"):
        read_env_meta(path)
    assert load_robomimic_hdf5(path, SPEC).env_meta == {}
    assert read_env_meta(write(tmp_path / "b.hdf5", {"demo_0": demo(2, 0.0)}))["env_name"] == "Lift"


def test_missing_obs_key_lists_available(tmp_path):
    d = demo(3, 0.0)
    del d["obs"]["alpha"]
    path = write(tmp_path / "a.hdf5", {"demo_5": d})
    with pytest.raises(KeyError, match=r"data/demo_5.*'obs/alpha'.*available keys: \['zeta'\]") as err:
        load_robomimic_hdf5(path, SPEC)
    assert str(path) in str(err.value)


def test_missing_actions_and_length_mismatch(tmp_path):
    d = demo(3, 0.0)
    del d["actions"]
    with pytest.raises(KeyError, match=r"data/demo_0: missing 'actions'; demo keys are \['dones', 'obs'"):
        load_robomimic_hdf5(write(tmp_path / "a.hdf5", {"demo_0": d}), SPEC)
    d = demo(3, 0.0)
    d["obs"]["zeta"] = d["obs"]["zeta"][:2]
    with pytest.raises(ValueError, match=r"'obs/zeta' has 2 steps but 'actions' has 3"):
        load_robomimic_hdf5(write(tmp_path / "b.hdf5", {"demo_0": d}), SPEC)
    d = demo(3, 0.0)
    d["obs"]["alpha"] = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"demo_0.*'alpha'.*expected last dim 3"):
        load_robomimic_hdf5(write(tmp_path / "c.hdf5", {"demo_0": d}), SPEC)


def test_action_range_checks(tmp_path, caplog):
    d = demo(3, 0.0)
    d["actions"][0, 0] = 1.01
    with caplog.at_level(logging.WARNING, logger="expo_core.robomimic_io"):
        data = load_robomimic_hdf5(write(tmp_path / "a.hdf5", {"demo_0": d}), SPEC)
    assert data.action.max() == 1.0 and "clipping" in caplog.text
    d["actions"][0, 0] = 3.0
    with pytest.raises(ValueError, match="beyond"):
        load_robomimic_hdf5(write(tmp_path / "b.hdf5", {"demo_0": d}), SPEC)
    d["actions"][0, 0] = np.nan
    with pytest.raises(ValueError, match="'actions' has non-finite"):
        load_robomimic_hdf5(write(tmp_path / "c.hdf5", {"demo_0": d}), SPEC)


def test_task_spec_and_fill_buffer(tmp_path):
    spec = task_obs_spec("lift")
    T = 5
    obs = {k.name: np.full((T, k.dim), i, dtype=np.float32) for i, k in enumerate(spec.keys)}
    obs["robot0_joint_pos"] = np.zeros((T, 7), dtype=np.float32)  # extra keys are ignored
    d = {
        "obs": obs,
        "actions": np.zeros((T, 7), dtype=np.float32),
        "rewards": np.zeros(T, np.float32),
        "dones": np.zeros(T, np.float32),
    }
    data = load_robomimic_hdf5(write(tmp_path / "lift.hdf5", {"demo_0": d, "demo_1": d}), spec)
    assert data.obs.shape == (2 * T, spec.dim)
    np.testing.assert_array_equal(data.obs[0], np.repeat(np.arange(4.0), [3, 4, 2, 10]))
    buf = ReplayBuffer.from_arrays(data.transitions())
    assert len(buf) == buf.capacity == 2 * T
    np.testing.assert_array_equal(buf.arrays()["truncated"], data.truncated)


# ------------------------------------------------------------------ image datasets
PIX = ObsSpec(
    (ObsKey("robot0_joint_pos", 7),), (RgbKey("agentview_image", 8, 8), RgbKey("wrist_image", 8, 8))
)


def image_demo(T: int, base: int, next_images: bool = True, size: int = 8) -> dict:
    """Frame t of camera c is filled with base + t (+100 for the second camera); next_obs frames
    are the obs frames shifted by one, the last one base + T."""
    d = demo(T, 0.0)
    d["obs"] = {"robot0_joint_pos": np.full((T, 7), base, dtype=np.float32)}
    d["next_obs"] = {"robot0_joint_pos": np.full((T, 7), base + 1, dtype=np.float32)}
    for cam, off in (("agentview_image", 0), ("wrist_image", 100)):
        frames = (base + off + np.arange(T + 1, dtype=np.uint8))[:, None, None, None]
        frames = np.broadcast_to(frames, (T + 1, size, size, 3)).copy()
        d["obs"][cam] = frames[:T]
        if next_images:
            d["next_obs"][cam] = frames[1:]
    return d


def test_image_frames_are_stored_once_and_indexed(tmp_path):
    path = write(tmp_path / "img.hdf5", {"demo_0": image_demo(3, 10), "demo_1": image_demo(2, 50)})
    data = load_robomimic_images(path, PIX)
    assert len(data) == 5 and data.final_frames_stored == 2
    assert data.low_dim.obs.shape == (5, 7) and data.low_dim.next_obs[0, 0] == 11  # stored next_obs
    for key, off in (("agentview_image", 0), ("wrist_image", 100)):
        frames = data.frames[key]
        assert frames.shape == (5 + 2, 8, 8, 3) and frames.dtype == np.uint8  # N + one final per demo
        np.testing.assert_array_equal(frames[:, 0, 0, 0], off + np.array([10, 11, 12, 13, 50, 51, 52]))
        np.testing.assert_array_equal(
            data.obs_images(np.arange(5))[key][:, 0, 0, 0], off + np.array([10, 11, 12, 50, 51])
        )
        np.testing.assert_array_equal(
            data.next_obs_images(np.arange(5))[key][:, 0, 0, 0], off + np.array([11, 12, 13, 51, 52])
        )
    np.testing.assert_array_equal(data.obs_frame, [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(data.next_obs_frame, data.obs_frame + 1)
    assert data.obs_images(slice(0, 2))["agentview_image"].shape == (2, 8, 8, 3)
    sizes = data.nbytes
    assert sizes["frames"] == 2 * 7 * 8 * 8 * 3 and sizes["index"] == 2 * 5 * 8
    assert data.bytes_per_transition == sum(sizes.values()) / 5
    assert "KB per transition" in data.memory_line()


def test_image_demo_without_next_obs_frames_repeats_the_last(tmp_path):
    path = write(tmp_path / "img.hdf5", {"demo_0": image_demo(3, 10, next_images=False)})
    data = load_robomimic_images(path, PIX)
    assert data.final_frames_stored == 0
    np.testing.assert_array_equal(data.next_obs_images([2])["agentview_image"][0, 0, 0], [12, 12, 12])


def test_image_loader_follows_filter_key_and_max_demos(tmp_path):
    demos = {"demo_0": image_demo(3, 10), "demo_1": image_demo(2, 50), "demo_2": image_demo(2, 80)}
    path = write(tmp_path / "img.hdf5", demos, masks={"valid": ["demo_2", "demo_0"]})
    data = load_robomimic_images(path, PIX, filter_key="valid")
    assert data.low_dim.demo_names == ("demo_0", "demo_2")
    np.testing.assert_array_equal(data.frames["agentview_image"][:, 0, 0, 0], [10, 11, 12, 13, 80, 81, 82])
    assert load_robomimic_images(path, PIX, max_demos=1).frames["wrist_image"].shape[0] == 4


def test_image_loader_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="no rgb keys"):
        load_robomimic_images(write(tmp_path / "a.hdf5", {"demo_0": image_demo(2, 0)}), SPEC)
    d = image_demo(2, 0)
    del d["obs"]["wrist_image"]
    with pytest.raises(KeyError, match=r"data/demo_0: missing camera key 'obs/wrist_image'.*add-images"):
        load_robomimic_images(write(tmp_path / "b.hdf5", {"demo_0": d}), PIX)
    d = image_demo(2, 0)
    d["obs"]["agentview_image"] = d["obs"]["agentview_image"].astype(np.float32)
    with pytest.raises(ValueError, match="'obs/agentview_image' has dtype float32, expected uint8"):
        load_robomimic_images(write(tmp_path / "c.hdf5", {"demo_0": d}), PIX)
    d = image_demo(2, 0, size=6)
    with pytest.raises(
        ValueError, match=r"'obs/agentview_image' has shape \(2, 6, 6, 3\), expected \(2, 8, 8, 3\)"
    ):
        load_robomimic_images(write(tmp_path / "d.hdf5", {"demo_0": d}), PIX)


def test_pixel_spec_memory_fits_the_budget(tmp_path):
    """Two 84x84 cameras + the pixel spec: measured bytes per transition on a small file, scaled to
    100k transitions, stay under 5 GB (the frames, 42,336 B per step, are almost all of it)."""
    spec = task_obs_spec("lift", "pixels")
    T = 50
    d = image_demo(T, 0, size=84)
    d["obs"] = {
        "agentview_image": d["obs"]["agentview_image"],
        "robot0_eye_in_hand_image": d["obs"]["wrist_image"],
    }
    d["next_obs"] = {
        "agentview_image": d["next_obs"]["agentview_image"],
        "robot0_eye_in_hand_image": d["next_obs"]["wrist_image"],
    }
    for k in spec.keys:
        d["obs"][k.name] = d["next_obs"][k.name] = np.zeros((T, k.dim), np.float32)
    data = load_robomimic_images(write(tmp_path / "big.hdf5", {"demo_0": d, "demo_1": d}), spec)
    per = data.bytes_per_transition
    frames_per_step = 2 * 84 * 84 * 3
    assert frames_per_step * (T + 1) / T <= per < frames_per_step * (T + 1) / T + 300
    assert per * 100_000 < 5e9
