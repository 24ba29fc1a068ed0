"""expo-train rejects bad inputs with a clear message and exit status 2, before any training."""

import pytest
from expo_sim.cli import compare_main, main, train_main
from expo_sim.train.harness import TrainConfig


def _args(dataset, out, *extra):
    return ["--task", "lift", "--dataset", str(dataset), "--out", str(out), "--preset", "tiny", *extra]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--task", "lfit", "invalid choice: 'lfit'"),
        ("--algo", "sac", "invalid choice: 'sac'"),
        ("--preset", "gpu", "invalid choice: 'gpu'"),
        ("--env-steps", "-5", "expected an integer >= 0"),
        ("--eval-episodes", "0", "expected a positive integer"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, capsys, flag, value, message):
    argv = _args(tmp_path / "d.hdf5", tmp_path / "run") + [flag, value]
    with pytest.raises(SystemExit) as e:
        train_main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_library_config_names_the_bad_value():
    with pytest.raises(ValueError, match="unknown task 'lfit'; supported tasks"):
        TrainConfig(task="lfit", dataset="d.hdf5", out="run")
    with pytest.raises(ValueError, match="unknown algo 'sac'; available algorithms"):
        TrainConfig(task="lift", dataset="d.hdf5", out="run", algo="sac")
    with pytest.raises(ValueError, match="eval_every=0 is invalid"):
        TrainConfig(task="lift", dataset="d.hdf5", out="run", eval_every=0)
    cfg = TrainConfig(task="lift", dataset="d.hdf5", out="run", preset="cpu")
    assert (cfg.pretrain_steps, cfg.warmup_steps) == (20_000, 1_000)  # the preset's defaults


def test_missing_dataset(tmp_path, capsys):
    assert train_main(_args(tmp_path / "nope.hdf5", tmp_path / "run")) == 2
    assert "expo-train: error: dataset not found:" in capsys.readouterr().err
    assert main(["train", *_args(tmp_path / "nope.hdf5", tmp_path / "run")]) == 2
    assert "expo-sim train: error: dataset not found" in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_dataset_missing_an_observation_key(tmp_path, capsys, synthetic_lift_hdf5):
    bad = synthetic_lift_hdf5(drop_key="robot0_eef_quat")
    assert train_main(_args(bad, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "missing observation key 'obs/robot0_eef_quat'" in err and "available keys" in err


def test_existing_run_needs_resume(tmp_path, capsys, synthetic_lift_hdf5):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("env_steps\n0\n")
    assert train_main(_args(synthetic_lift_hdf5(), tmp_path / "run")) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


def test_compare_rejects_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert compare_main([str(tmp_path), "--out", str(tmp_path / "p.png")]) == 2
    assert "is not a training run" in capsys.readouterr().err
