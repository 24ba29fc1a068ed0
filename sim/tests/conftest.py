"""Shared fixtures for the simulation tests.

Headless rendering must be chosen before robosuite (and through it mujoco) is imported.
Environments take ~1-2 s to build, so each task's env is built once per session and reused;
every test starts its own episode with reset()/reset_to().
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def sim_launch():
    """The installed ``expo_bringup`` ``sim.launch.py`` (what ``ros2 launch expo_bringup
    sim.launch.py`` runs) as a module; its name has dots, so it is loaded by path."""
    import importlib.util
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory

    path = Path(get_package_share_directory("expo_bringup")) / "launch" / "sim.launch.py"
    spec = importlib.util.spec_from_file_location("expo_bringup_sim_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def env_cache():
    """``get(task)`` returns this session's default env of ``task`` (built on first use)."""
    from expo_sim.envs.robosuite_env import make_env

    envs = {}

    def get(task: str):
        if task not in envs:
            envs[task] = make_env(task)
        return envs[task]

    yield get
    for env in envs.values():
        env.close()


@pytest.fixture(scope="session")
def lift_env(env_cache):
    return env_cache("lift")


@pytest.fixture(scope="session")
def can_env(env_cache):
    return env_cache("can")


@pytest.fixture
def synthetic_lift_hdf5(tmp_path):
    """``make(path=None, drop_key=None, demos=3, steps=12)``: a small robomimic-layout Lift file
    of random transitions (no simulator), optionally without one observation key."""
    import json

    import h5py
    import numpy as np

    def make(path=None, drop_key=None, demos=3, steps=12):
        path = path or tmp_path / "synthetic_lift.hdf5"
        rng = np.random.default_rng(0)
        dims = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}
        with h5py.File(path, "w") as f:
            data = f.create_group("data")
            data.attrs["env_args"] = json.dumps(
                {"env_name": "Lift", "env_version": "1.4.1", "type": 1, "env_kwargs": {}}
            )
            for i in range(demos):
                demo = data.create_group(f"demo_{i}")
                demo.attrs["num_samples"] = steps
                for key, d in dims.items():
                    if key != drop_key:
                        demo.create_dataset(f"obs/{key}", data=rng.standard_normal((steps, d)))
                demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
                rewards = np.zeros(steps)
                rewards[-1] = float(i % 2 == 0)
                demo.create_dataset("rewards", data=rewards)
                demo.create_dataset("dones", data=rewards.astype(np.int64))
        return path

    return make
