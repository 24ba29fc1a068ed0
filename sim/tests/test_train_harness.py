"""End to end: expo-train on Lift from a few scripted demos writes every output and resumes;
bc and rlpd run through the same harness; expo-compare reads them all. Tiny networks and short
episodes keep it well under a minute on 2 cores."""

import csv
import json

import numpy as np
import pytest
import torch
from expo_sim.cli import compare_main, main, train_main
from expo_sim.train.run_log import COLUMNS


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _train(dataset, out, algo, env_steps, *extra):
    argv = [
        "--task", "lift", "--dataset", str(dataset), "--algo", algo, "--out", str(out),
        "--preset", "tiny", "--env-steps", str(env_steps), "--eval-every", "30", "--eval-episodes", "2",
        "--horizon", "30", "--pretrain-steps", "20", "--warmup-steps", "10", "--seed", "3",
        "--pretrain-dir", str(out.parent / "pretrain"), "--no-progress", *extra,
    ]  # fmt: skip
    return train_main(argv)


def _rows(run):
    with open(run / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


@pytest.mark.slow
def test_expo_train_writes_everything_resumes_and_compares(tmp_path, capsys):
    demos = tmp_path / "lift_demos.hdf5"
    assert (
        main(["demos", "--task", "lift", "--episodes", "4", "--quality", "mixed", "--out", str(demos)]) == 0
    )

    run = tmp_path / "expo"
    assert _train(demos, run, "expo", 60) == 0
    rows = _rows(run)
    assert [int(r["env_steps"]) for r in rows] == [0, 30, 60]
    for r in rows:
        s, lo, hi = (float(r[k]) for k in ("success_rate", "success_ci_low", "success_ci_high"))
        assert 0 <= lo <= s <= hi <= 1 and r["eval_episodes"] == "2"
        assert 1 <= float(r["mean_length"]) <= 30
    assert rows[0]["critic_loss"] == ""  # no update before the first evaluation
    assert all(
        np.isfinite(float(rows[-1][k])) for k in ("critic_loss", "bc_loss", "editor_loss", "alpha", "q_mean")
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["algo"] == "expo"
    assert (summary["env_steps"], summary["updates"]) == (60, 50)  # 10 warm-up steps without updates
    assert summary["config"]["editor"]["beta"] == 0.3 and "--algo" in summary["command"]
    assert summary["timing"]["pretrain_time_s"] > 0
    for name in ("checkpoint.safetensors", "checkpoint.json", "learning_curve.png", "replay.npz", "run.json"):
        assert (run / name).stat().st_size > 0, name
    with np.load(run / "replay.npz") as z:
        assert z["obs"].shape == (60, 19) and z["action"].shape == (60, 7)
        # every finished episode ends with exactly one flag: terminated (success) or truncated (horizon)
        ends = z["terminated"] + z["truncated"]
        assert ends.max() <= 1 and ends.sum() == summary["episodes"] >= 1
    assert "expo on lift: final success" in capsys.readouterr().out

    # resume to 90 steps: replay, counters and metrics continue
    assert _train(demos, run, "expo", 90, "--resume") == 0
    assert [int(r["env_steps"]) for r in _rows(run)] == [0, 30, 60, 90]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["env_steps"], summary["updates"]) == (90, 80)
    with np.load(run / "replay.npz") as z:
        assert z["obs"].shape == (90, 19)
    assert _train(demos, run, "expo", 90) == 2  # an existing run is never overwritten silently
    assert _train(demos, run, "rlpd", 90, "--resume") == 2  # nor resumed with another algorithm

    # bc: the cached base, evaluated once; rlpd: from scratch through the same loop
    assert _train(demos, tmp_path / "bc", "bc", 60) == 0
    bc = json.loads((tmp_path / "bc" / "summary.json").read_text())
    assert bc["env_steps"] == 0 and len(_rows(tmp_path / "bc")) == 1
    assert bc["timing"]["pretrain_time_s"] < summary["timing"]["pretrain_time_s"]  # cache hit
    assert _train(demos, tmp_path / "rlpd", "rlpd", 30) == 0
    rl_rows = _rows(tmp_path / "rlpd")
    assert [int(r["env_steps"]) for r in rl_rows] == [0, 30]
    assert rl_rows[-1]["actor_loss"] != "" and rl_rows[-1]["editor_loss"] == ""
    assert (
        json.loads((tmp_path / "rlpd" / "checkpoint.json").read_text())["format"]
        == "expo-rlpd-safetensors-v1"
    )

    capsys.readouterr()
    plot = tmp_path / "compare.png"
    assert compare_main([str(run), str(tmp_path / "bc"), str(tmp_path / "rlpd"), "--out", str(plot)]) == 0
    table = capsys.readouterr().out
    assert "| expo | expo | 3 |" in table and "| bc | bc | 3 |" in table and "| rlpd | rlpd | 3 |" in table
    assert plot.stat().st_size > 1000
