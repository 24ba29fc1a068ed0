"""robomimic in real use: its own SequenceDataset reads our demonstration files and its EnvUtils
builds the environment from our ``env_args`` (low-dim, and images: ``expo-sim demos --cameras``),
and the demo replays in robomimic's env. Skipped, with the reason, where robomimic is not
installed (``make setup`` installs it; ``EXPO_SKIP_MIMICGEN=1`` leaves it out)."""

import h5py
import numpy as np
import pytest
from expo_core.spec import task_obs_spec
from expo_sim.envs.demo_set import write_demo_set
from expo_sim.mimicgen.available import SETUP_HINT, robomimic_installed

pytestmark = pytest.mark.skipif(not robomimic_installed(), reason=f"robomimic is not installed: {SETUP_HINT}")

DATASET_KEYS = ("actions", "rewards", "dones")


def sequence_dataset(path, obs_keys, *, load_next_obs=True, seq_length=1):
    """robomimic's SequenceDataset as its BC training configs build it (everything in memory)."""
    from robomimic.utils.dataset import SequenceDataset

    return SequenceDataset(
        hdf5_path=str(path),
        obs_keys=tuple(obs_keys),
        dataset_keys=DATASET_KEYS,
        load_next_obs=load_next_obs,
        frame_stack=1,
        seq_length=seq_length,
        pad_frame_stack=True,
        pad_seq_length=True,
        get_pad_mask=False,
        goal_mode=None,
        hdf5_cache_mode="all",
        hdf5_use_swmr=True,
        hdf5_normalize_obs=False,
        filter_by_attribute=None,
    )


@pytest.fixture(scope="module")
def lift_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("robomimic_real") / "lift.hdf5"
    write_demo_set("lift", 2, "proficient", 0, out, progress=False)
    return out


@pytest.fixture(scope="module")
def lift_image_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("robomimic_real_img") / "lift_image.hdf5"
    write_demo_set(
        "lift", 1, "proficient", 1, out, horizon=12, cameras=("agentview",), camera_size=32, progress=False
    )
    return out


def test_sequence_dataset_reads_our_low_dim_file(lift_file):
    import robomimic.utils.obs_utils as ObsUtils

    spec = task_obs_spec("lift")
    ObsUtils.initialize_obs_utils_with_obs_specs({"obs": spec.modalities()})
    ds = sequence_dataset(lift_file, spec.names)
    with h5py.File(lift_file, "r") as f:
        total = int(f["data"].attrs["total"])
        g = f["data/demo_0"]
        obs0 = {k: g[f"obs/{k}"][0] for k in spec.names}
        next0, action0, reward_last = g["next_obs/object"][0], g["actions"][0], g["rewards"][-1]
        n0 = int(g.attrs["num_samples"])
    assert len(ds) == total
    item = ds[0]
    for k in spec.names:
        np.testing.assert_allclose(item["obs"][k][0], obs0[k], rtol=0, atol=1e-6)
    np.testing.assert_allclose(item["next_obs"]["object"][0], next0, atol=1e-6)
    np.testing.assert_allclose(item["actions"][0], action0, atol=1e-6)
    last = ds[n0 - 1]  # the success step of demo_0
    assert last["rewards"][0] == reward_last == 1.0 and last["dones"][0] == 1


def test_env_utils_builds_our_env_and_the_demo_replays(lift_file):
    import robomimic.utils.env_utils as EnvUtils
    import robomimic.utils.file_utils as FileUtils

    env_meta = FileUtils.get_env_metadata_from_dataset(str(lift_file))
    env = EnvUtils.create_env_from_metadata(env_meta=env_meta, render=False, render_offscreen=False)
    assert env.name == "Lift"
    with h5py.File(lift_file, "r") as f:
        g = f["data/demo_0"]
        states, actions, model = g["states"][()], g["actions"][()], g.attrs["model_file"]
        object0 = g["obs/object"][0]
    obs = env.reset_to({"states": states[0], "model": model})
    np.testing.assert_allclose(obs["object"], object0, atol=1e-6)
    solved = False
    for a in actions:
        env.step(a)
        solved = solved or env.is_success()["task"]
    assert solved  # open-loop replay of our actions in robomimic's env solves the task


def test_sequence_dataset_and_env_utils_with_images(lift_image_file):
    import robomimic.utils.env_utils as EnvUtils
    import robomimic.utils.file_utils as FileUtils
    import robomimic.utils.obs_utils as ObsUtils

    low_dim = task_obs_spec("lift").names
    ObsUtils.initialize_obs_utils_with_obs_specs(
        {"obs": {"low_dim": list(low_dim), "rgb": ["agentview_image"]}}
    )
    ds = sequence_dataset(lift_image_file, (*low_dim, "agentview_image"))
    with h5py.File(lift_image_file, "r") as f:
        frame0 = f["data/demo_0/obs/agentview_image"][0]
        state0, model = f["data/demo_0/states"][0], f["data/demo_0"].attrs["model_file"]
    image = ds[0]["obs"]["agentview_image"][0]  # as stored: (H, W, 3) uint8, upright
    np.testing.assert_array_equal(image, frame0)
    # what robomimic's models see: its rgb processing, (3, H, W) float in [0, 1]
    processed = ObsUtils.process_obs(image, obs_modality="rgb")
    np.testing.assert_allclose(processed, frame0.transpose(2, 0, 1) / 255.0, atol=1e-6)

    env_meta = FileUtils.get_env_metadata_from_dataset(str(lift_image_file))
    assert env_meta["env_kwargs"]["camera_names"] == ["agentview"]
    env = EnvUtils.create_env_from_metadata(
        env_meta=env_meta, render=False, render_offscreen=True, use_image_obs=True
    )
    obs = env.reset_to({"states": state0, "model": model})
    rendered = obs["agentview_image"]
    assert rendered.shape == (3, 32, 32) and rendered.std() > 0.01  # a picture, not a blank
    # The same scene, upright in both: robomimic renders with its own quality settings (shadows,
    # multisampling), ours without, so only the broad picture is compared.
    assert np.abs(rendered - frame0.transpose(2, 0, 1) / 255.0).mean() < 0.1
