"""``expo-data``: robomimic HDF5 -> bag segments -> HDF5 round trip, and its errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from expo_core.robomimic_io import load_robomimic_hdf5
from expo_core.spec import task_obs_spec
from expo_learner.data_cli import main
from expo_learner.segment_reader import load_segments

pytestmark = pytest.mark.ros  # expo_ros.conversions and rclpy serialization (built messages)

ENV_ARGS = {"env_name": "Lift", "env_version": "1.4.1", "type": 1, "env_kwargs": {"control_freq": 20}}


@pytest.fixture
def lift_hdf5(tmp_path: Path) -> Path:
    """Three lift demos (6, 9, 4 steps) in robomimic's layout; demo_1 ends in success."""
    spec, rng = task_obs_spec("lift"), np.random.default_rng(0)
    path = tmp_path / "lift demos.hdf5"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        for i, T in enumerate((6, 9, 4)):
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = T
            g.create_dataset("states", data=rng.standard_normal((T, 32)))
            g.create_dataset("actions", data=rng.uniform(-1, 1, (T, 7)))
            success = np.zeros(T)
            success[-1] = float(i == 1)
            g.create_dataset("rewards", data=success)
            g.create_dataset("dones", data=success.astype(np.int64))
            for group in ("obs", "next_obs"):
                for key in spec.keys:
                    g.create_dataset(f"{group}/{key.name}", data=rng.standard_normal((T, key.dim)))
    return path


def test_round_trip_hdf5_bag_hdf5_keeps_every_array(tmp_path: Path, lift_hdf5: Path, capsys) -> None:
    bags, out = tmp_path / "bags", tmp_path / "back.hdf5"
    assert main(["hdf5-to-bag", str(lift_hdf5), str(bags), "--segment-mb", "0.002"]) == 0  # ~2 kB
    table, report = load_segments(bags)
    assert report.segments_read >= 3 and not report.damaged  # rotated by size
    assert set(table.source.tolist()) == {"hdf5:lift demos.hdf5"}
    assert table.episode.tolist() == [0] * 6 + [1] * 9 + [2] * 4
    assert table.step.tolist() == [*range(6), *range(9), *range(4)]
    assert main(["bag-to-hdf5", str(bags), str(out), "--task", "lift"]) == 0
    assert "wrote 3 demos, 19 transitions" in capsys.readouterr().out

    spec = task_obs_spec("lift")
    a, b = load_robomimic_hdf5(lift_hdf5, spec), load_robomimic_hdf5(out, spec)
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated", "episode"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert b.env_meta == ENV_ARGS and b.num_episodes == 3
    assert b.terminated.sum() == 1 and b.truncated.sum() == 2
    with h5py.File(out, "r") as f:
        assert "states" not in f["data/demo_0"]  # documented: bags carry no simulator states
        assert f["data/demo_2"].attrs["num_samples"] == 4


def test_errors_are_one_line_and_exit_2(tmp_path: Path, lift_hdf5: Path, capsys) -> None:
    bags, out = tmp_path / "bags", tmp_path / "out.hdf5"
    assert main(["hdf5-to-bag", str(tmp_path / "missing.hdf5"), str(bags)]) == 2
    assert "missing.hdf5: no such file" in capsys.readouterr().err
    assert main(["hdf5-to-bag", str(lift_hdf5), str(bags)]) == 0
    assert main(["hdf5-to-bag", str(lift_hdf5), str(bags)]) == 2
    assert "already holds segments" in capsys.readouterr().err
    assert main(["bag-to-hdf5", str(bags), str(out), "--task", "can"]) == 2
    assert "task 'can' expects" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["bag-to-hdf5", str(tmp_path / "empty"), str(out), "--task", "lift"]) == 2
    assert "empty bag" in capsys.readouterr().err
    assert main(["bag-to-hdf5", str(tmp_path / "nope"), str(out), "--task", "lift"]) == 2
    assert "no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse rejects unknown tasks itself
        main(["bag-to-hdf5", str(bags), str(out), "--task", "pour"])
    assert not out.exists()


def test_live_bags_without_env_args_and_an_existing_output(tmp_path: Path, lift_hdf5: Path) -> None:
    bags, out = tmp_path / "bags", tmp_path / "out.hdf5"
    assert main(["hdf5-to-bag", str(lift_hdf5), str(bags)]) == 0
    for seg in bags.iterdir():  # as if recorded live, or salvaged: no metadata custom_data
        (seg / "metadata.yaml").unlink()
    out.write_bytes(b"")
    assert main(["bag-to-hdf5", str(bags), str(out), "--task", "lift"]) == 2  # no --overwrite
    assert main(["bag-to-hdf5", str(bags), str(out), "--task", "lift", "--overwrite"]) == 0
    b = load_robomimic_hdf5(out, task_obs_spec("lift"))
    assert b.env_meta["env_name"] == "Lift" and b.env_meta["env_kwargs"] == {} and len(b) == 19
    ref = [str(lift_hdf5)]
    assert (
        main(["bag-to-hdf5", str(bags), str(out), "--task", "lift", "--overwrite", "--env-args-from", *ref])
        == 0
    )
    assert load_robomimic_hdf5(out, task_obs_spec("lift")).env_meta == ENV_ARGS


def test_console_script_is_installed(tmp_path: Path, lift_hdf5: Path) -> None:
    exe = shutil.which("expo-data")
    assert exe, "expo-data not on PATH: pip install -e ros2_ws/src/expo_learner"
    run = subprocess.run([exe, "report", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "0 segments, 0 transitions" in run.stdout
