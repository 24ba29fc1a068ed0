"""expo-study's default demonstrations for the MimicGen tasks: the file ``make sim TASK=`` uses,
and the one-line missing path without MimicGen."""

from __future__ import annotations

from pathlib import Path

import pytest
from expo_sim.mimicgen import available
from expo_sim.study.cli import main as study_main
from expo_sim.study.plan import StudySpec


def test_default_dataset_of_mimicgen_tasks_is_make_sims() -> None:
    spec = StudySpec(tasks=("stack", "threading", "lift"), algos=("bc",), seeds=(0,))
    assert spec.dataset("stack") == Path("data/stack_mimicgen.hdf5")
    assert spec.dataset("threading") == Path("data/threading_mimicgen.hdf5")
    assert spec.dataset("lift") == Path("data/lift_mixed.hdf5")
    given = StudySpec(tasks=("stack",), algos=("bc",), seeds=(0,), datasets={"stack": Path("x.hdf5")})
    assert given.dataset("stack") == Path("x.hdf5")


def test_study_of_stack_without_mimicgen_says_to_run_make_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no data/stack_mimicgen.hdf5 here
    monkeypatch.setattr(available, "mimicgen_installed", lambda: False)
    args = ["--tasks", "stack", "--algos", "bc", "--seeds", "0", "--runs", str(tmp_path / "runs")]
    assert study_main([*args, "--csv", str(tmp_path / "l.csv"), "--plots", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("expo-study: error:") and "make setup" in err[-1], err
    assert not (tmp_path / "data").exists() and not (tmp_path / "l.csv").exists()
