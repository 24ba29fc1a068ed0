"""Image demonstrations: ``expo-sim demos --cameras`` writes robomimic's image layout, the stack's
loader reads it back (frames once), and ``expo-sim add-images`` turns a low-dim file into the same
file by replaying its states. Kept to a 12-step demo (~50 rendered frames in all)."""

import json

import h5py
import numpy as np
import pytest
from expo_core.robomimic_io import load_robomimic_hdf5, load_robomimic_images
from expo_core.spec import task_obs_spec
from expo_sim.cli import main
from expo_sim.envs.add_images import _replay
from expo_sim.envs.episodes import Episode
from expo_sim.envs.robomimic_writer import RobomimicWriter

CAMERAS = ("agentview_image", "robot0_eye_in_hand_image")
STEPS = 12
# An "old" low-dim file: written before the base-frame keys existed.
NEW_LOW_DIM = ("robot0_base_to_eef_pos", "robot0_base_to_eef_quat", "robot0_joint_pos")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same demo (seed 3, truncated at 12 steps) rendered live, and converted from low-dim."""
    d = tmp_path_factory.mktemp("image_demos")
    common = ["--task", "lift", "--episodes", "1", "--horizon", str(STEPS), "--seed", "3"]
    assert main(["demos", *common, "--out", str(d / "low.hdf5")]) == 0
    with h5py.File(d / "low.hdf5", "r+") as f:
        for group in ("obs", "next_obs"):
            for key in NEW_LOW_DIM:
                del f[f"data/demo_0/{group}/{key}"]
    cams = ["--cameras", "agentview,robot0_eye_in_hand", "--image-size", "84"]
    assert main(["demos", *common, *cams, "--compression", "gzip", "--out", str(d / "live.hdf5")]) == 0
    assert main(["add-images", str(d / "low.hdf5"), str(d / "converted.hdf5"), "--no-progress"]) == 0
    return d


def test_image_file_has_robomimics_layout(files):
    with h5py.File(files / "live.hdf5", "r") as f:
        data = f["data"]
        kwargs = json.loads(data.attrs["env_args"])["env_kwargs"]
        assert kwargs["camera_names"] == ["agentview", "robot0_eye_in_hand"]
        assert kwargs["use_camera_obs"] and kwargs["camera_heights"] == kwargs["camera_widths"] == 84
        demo = data["demo_0"]
        assert demo["actions"].shape == (STEPS, 7) and demo["states"].shape[0] == STEPS
        for key in CAMERAS:
            frames = demo[f"obs/{key}"]
            assert frames.shape == (STEPS, 84, 84, 3) and frames.dtype == np.uint8
            assert frames.compression == "gzip" and frames.chunks == (1, 84, 84, 3)
            np.testing.assert_array_equal(demo[f"next_obs/{key}"][:-1], frames[1:])
            assert frames[()].std() > 10.0
        for key in (*NEW_LOW_DIM, "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"):
            assert demo[f"obs/{key}"].dtype == np.float64 and demo[f"obs/{key}"].shape[0] == STEPS
        assert demo["obs/robot0_joint_pos"].shape == (STEPS, 7)


def test_image_file_round_trips_through_the_loader(files):
    path = files / "live.hdf5"
    spec = task_obs_spec("lift", "pixels")
    data = load_robomimic_images(path, spec)
    assert len(data) == STEPS and data.final_frames_stored == 1
    with h5py.File(path, "r") as f:
        demo = f["data/demo_0"]
        np.testing.assert_array_equal(
            data.low_dim.obs, spec.flatten({k: demo[f"obs/{k}"][()] for k in spec.names})
        )
        for key in CAMERAS:
            assert data.frames[key].shape == (STEPS + 1, 84, 84, 3)  # T frames + the final one, once
            rows = np.arange(STEPS)
            np.testing.assert_array_equal(data.obs_images(rows)[key], demo[f"obs/{key}"][()])
            np.testing.assert_array_equal(data.next_obs_images(rows)[key], demo[f"next_obs/{key}"][()])
    assert 42_336 < data.bytes_per_transition < 42_336 * (STEPS + 1) / STEPS + 400
    # The same file still serves the state spec (world-frame keys and object).
    state = load_robomimic_hdf5(path, task_obs_spec("lift"))
    assert state.obs.shape == (STEPS, 19)
    assert data.low_dim.truncated[-1] == 1.0  # cut at the horizon: the final next frame matters


def test_add_images_reproduces_live_generation(files):
    with h5py.File(files / "live.hdf5", "r") as f, h5py.File(files / "converted.hdf5", "r") as g:
        live, conv = f["data/demo_0"], g["data/demo_0"]
        np.testing.assert_array_equal(live["states"][()], conv["states"][()])
        np.testing.assert_array_equal(live["actions"][()], conv["actions"][()])
        assert sorted(live["obs"]) == sorted(conv["obs"])
        assert sorted(live["next_obs"]) == sorted(conv["next_obs"])
        joints = "robot0_joint_pos"
        np.testing.assert_array_equal(live[f"obs/{joints}"], conv[f"obs/{joints}"])  # from the states
        np.testing.assert_array_equal(live[f"next_obs/{joints}"][:-1], conv[f"next_obs/{joints}"][:-1])
        # The last next obs comes from a replayed step (the solver's warm start is not in the state).
        np.testing.assert_allclose(live[f"next_obs/{joints}"][-1], conv[f"next_obs/{joints}"][-1], atol=1e-5)
        for group in ("obs", "next_obs"):
            for key in ("robot0_base_to_eef_pos", "robot0_base_to_eef_quat"):  # state vs live sub-step
                np.testing.assert_allclose(live[f"{group}/{key}"], conv[f"{group}/{key}"], atol=5e-3)
            for key in CAMERAS:
                a, b = live[f"{group}/{key}"][()].astype(int), conv[f"{group}/{key}"][()].astype(int)
                assert b.shape == (STEPS, 84, 84, 3) and conv[f"{group}/{key}"].dtype == np.uint8
                aligned, shifted = np.abs(a - b).mean(), np.abs(a[1:] - b[:-1]).mean()
                assert aligned < 3.0 and aligned < shifted  # the same instants, not one step off
        meta = json.loads(g["data"].attrs["expo_add_images"])
        assert meta["cameras"] == ["agentview", "robot0_eye_in_hand"] and meta["camera_size"] == 84
        live_kwargs = json.loads(f["data"].attrs["env_args"])["env_kwargs"]
        assert json.loads(g["data"].attrs["env_args"])["env_kwargs"] == live_kwargs
        assert sorted(g["mask"]) == ["train", "valid"]


def test_add_images_refuses_bad_inputs(files, capsys):
    conv = files / "converted.hdf5"
    assert main(["add-images", str(files / "low.hdf5"), str(conv)]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert main(["add-images", str(conv), str(files / "again.hdf5")]) == 2  # before building any env
    assert "already holds" in capsys.readouterr().err
    assert main(["add-images", str(files / "missing.hdf5"), str(files / "x.hdf5")]) == 2
    with pytest.raises(SystemExit):
        main(["add-images", str(conv), str(files / "x.hdf5"), "--cameras", "frontview"])
    assert not (files / "again.hdf5").exists() and not (files / "x.hdf5").exists()


def test_replay_check_detects_actions_that_do_not_belong(files, lift_env):
    with h5py.File(files / "low.hdf5", "r") as f:
        demo = f["data/demo_0"]
        states, actions, model = demo["states"][()], demo["actions"][()], demo.attrs["model_file"]
    err, final = _replay(lift_env, states, actions, model)
    assert err < 1e-5 and final.shape == states[0].shape
    err, _ = _replay(lift_env, states, -actions, model)
    assert err > 1e-2


def _episode(T: int, size: int = 16) -> Episode:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (T + 1, size, size, 3), dtype=np.uint8)
    return Episode(
        states=np.zeros((T, 5)),
        actions=np.zeros((T, 7)),
        rewards=np.zeros(T),
        dones=np.zeros(T, dtype=np.int64),
        obs={"robot0_joint_pos": np.zeros((T, 7)), "agentview_image": frames[:-1]},
        next_obs={"robot0_joint_pos": np.zeros((T, 7)), "agentview_image": frames[1:]},
        success=False,
        style="clean",
        seed=0,
    )


ENV_ARGS = {"env_name": "Lift", "env_version": "1.4.1", "type": 1, "env_kwargs": {}}


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_writer_frame_options(tmp_path, compression):
    ep = _episode(4)
    path = tmp_path / "x.hdf5"
    with RobomimicWriter(path, ENV_ARGS, compression=compression, next_obs_images=False) as w:
        w.add(ep)
    with h5py.File(path, "r") as f:
        ds = f["data/demo_0/obs/agentview_image"]
        assert ds.compression == compression and ds.dtype == np.uint8
        assert ds.chunks == ((1, 16, 16, 3) if compression else None)
        np.testing.assert_array_equal(ds[()], ep.obs["agentview_image"])
        assert "agentview_image" not in f["data/demo_0/next_obs"]  # next_obs_images=False
        assert f["data/demo_0/next_obs/robot0_joint_pos"].shape == (4, 7)


def test_writer_rejects_bad_frames_and_options(tmp_path):
    with pytest.raises(ValueError, match="compression"):
        RobomimicWriter(tmp_path / "a.hdf5", ENV_ARGS, compression="zstd")
    ep = _episode(3)
    ep.obs["agentview_image"] = ep.obs["agentview_image"] / 255.0  # float frames
    with pytest.raises(ValueError, match=r"'obs/agentview_image': frames must be \(T, H, W, 3\) uint8"):
        with RobomimicWriter(tmp_path / "b.hdf5", ENV_ARGS) as w:
            w.add(ep)
    assert list(tmp_path.iterdir()) == []
