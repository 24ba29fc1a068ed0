"""Writer output has robomimic's official layout, replays from its states, rebuilds its env, and
loads through the stack's own robomimic reader; plus the ``expo-sim demos`` entry point."""

import json

import h5py
import numpy as np
import pytest
import robosuite
from expo_core.robomimic_io import load_robomimic_hdf5
from expo_core.spec import task_obs_spec
from expo_sim.cli import main
from expo_sim.envs.episodes import episode_seeds, generate_demos, record_episode
from expo_sim.envs.robomimic_writer import RobomimicWriter, train_valid_split
from expo_sim.envs.robosuite_env import make_env_from_hdf5, read_env_args
from expo_sim.envs.scripted import DemoStyle

OBS_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")


@pytest.fixture(scope="module")
def lift_file(lift_env, tmp_path_factory):
    """Three proficient Lift demos and one missed grasp (demo_3)."""
    path = tmp_path_factory.mktemp("demos") / "nested" / "lift.hdf5"
    episodes = list(generate_demos(lift_env, 3, "proficient", seed=2))
    env_seed, rng = episode_seeds(2, 3)
    failed = DemoStyle("missed_grasp", noise_std=0.1, grasp_height_offset=0.06)
    episodes.append(record_episode(lift_env, failed, env_seed, rng))
    with RobomimicWriter(path, lift_env.env_args, model_xml=lift_env.model_xml()) as writer:
        for ep in episodes:
            writer.add(ep)
        writer.close(valid_fraction=0.25, split_seed=0)
    return path, episodes


def test_official_layout(lift_file):
    path, episodes = lift_file
    spec = task_obs_spec("lift")
    with h5py.File(path, "r") as f:
        data = f["data"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "Lift" and env_args["type"] == 1
        assert env_args["env_version"] == robosuite.__version__
        assert env_args["env_kwargs"]["controller_configs"]["type"] == "OSC_POSE"
        assert env_args["env_kwargs"]["control_freq"] == 20
        assert sorted(data.keys()) == ["demo_0", "demo_1", "demo_2", "demo_3"]
        assert data.attrs["total"] == sum(len(ep) for ep in episodes)
        for i, ep in enumerate(episodes):
            demo = data[f"demo_{i}"]
            T = len(ep)
            assert demo.attrs["num_samples"] == T
            assert "<mujoco" in demo.attrs["model_file"]
            assert demo["states"].shape == (T, 32)
            assert demo["actions"].shape == (T, 7)
            assert demo["rewards"].shape == (T,) and demo["dones"].shape == (T,)
            for key in OBS_KEYS:
                dim = spec.unflatten(np.zeros(spec.dim))[key].shape[-1]
                assert demo[f"obs/{key}"].shape == (T, dim)
                assert demo[f"next_obs/{key}"].shape == (T, dim)
                np.testing.assert_array_equal(demo[f"obs/{key}"][1:], demo[f"next_obs/{key}"][:-1])
            expect_done = 1 if ep.success else 0
            assert demo["dones"][-1] == expect_done and demo["dones"][:].sum() == expect_done
            assert demo["rewards"][:].sum() == float(expect_done)
        assert not data["demo_3"].attrs["success"]
        train = [n.decode() for n in f["mask/train"][:]]
        valid = [n.decode() for n in f["mask/valid"][:]]
        assert f["mask/train"].dtype.kind == "S"
        assert len(valid) == 1 and sorted(train + valid) == sorted(data.keys())


def test_states_replay_to_success(lift_file):
    path, _ = lift_file
    env = make_env_from_hdf5(path)
    try:
        with h5py.File(path, "r") as f:
            demo = f["data/demo_0"]
            states, actions = demo["states"][:], demo["actions"][:]
            next_eef = demo["next_obs/robot0_eef_pos"][:]
            env.reset_to(states[0], model_xml=demo.attrs["model_file"])
        for t, action in enumerate(actions):
            _, reward, terminated, _, info = env.step(action)
            assert terminated == (t == len(actions) - 1)
        assert reward == 1.0 and info["success"]
        np.testing.assert_allclose(info["obs_dict"]["robot0_eef_pos"], next_eef[-1], atol=1e-5)
    finally:
        env.close()


def test_env_round_trip_from_file(lift_file, lift_env):
    path, _ = lift_file
    env_args = read_env_args(path)
    env = make_env_from_hdf5(path, horizon=50)
    try:
        assert env.task == "lift" and env.horizon == 50
        assert env.env_args == json.loads(json.dumps(lift_env.env_args))
        assert env.model_xml() == lift_env.model_xml()  # same model: nothing was reloaded
        assert env.env_kwargs == env_args["env_kwargs"]
    finally:
        env.close()


def test_loads_through_the_stack_reader(lift_file):
    path, episodes = lift_file
    arrays = load_robomimic_hdf5(path, task_obs_spec("lift"))
    assert len(arrays) == sum(len(ep) for ep in episodes)
    assert arrays.terminated.sum() == 3  # the missed grasp is not terminal...
    assert arrays.truncated.sum() == 1  # ...but cut off, so the critic bootstraps there


def test_writer_refuses_to_clobber_and_cleans_up(tmp_path, lift_env):
    path = tmp_path / "x.hdf5"
    path.write_bytes(b"")
    with pytest.raises(FileExistsError):
        RobomimicWriter(path, lift_env.env_args)
    other = tmp_path / "y.hdf5"
    with pytest.raises(ValueError, match="no episodes"):
        RobomimicWriter(other, lift_env.env_args).close()
    assert list(tmp_path.iterdir()) == [path]


def test_split_follows_robomimic():
    names = [f"demo_{i}" for i in range(20)]
    train, valid = train_valid_split(names, 0.1, seed=0)
    assert len(valid) == 2 and len(train) == 18 and set(train) | set(valid) == set(names)
    assert train_valid_split(names, 0.1, seed=0) == (train, valid)


def test_cli_demos(tmp_path, capsys):
    out = tmp_path / "sub" / "lift.hdf5"
    assert main(["demos", "--task", "lift", "--episodes", "2", "--seed", "1", "--out", str(out)]) == 0
    assert "2/2 successful" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        assert f["data"].attrs["total"] > 0 and len(f["data"]) == 2
    assert main(["demos", "--task", "lift", "--episodes", "2", "--out", str(out)]) == 2  # exists
    with pytest.raises(SystemExit) as exc:
        main(["demos", "--task", "stack", "--out", str(out)])
    assert exc.value.code == 2
