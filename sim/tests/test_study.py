"""expo-study: the plan (runs, their order and dependencies, resumable commands), learning.csv
(exact columns, merged by run), the across-seed band, the plots, and end to end a small study
that is killed and continued by the same command."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from expo_sim.study.plan import StudySpec, plan
from expo_sim.study.results import (
    LEARNING_COLUMNS,
    Point,
    across_seeds,
    markdown_summary,
    plot_task,
    read_learning_csv,
    write_learning_csv,
)
from expo_sim.train.run_log import read_metrics


def test_plan_runs_the_base_first_and_rlpd_without_it(tmp_path):
    spec = StudySpec(tasks=("lift",), algos=("expo", "rlpd"), seeds=(0, 1), runs_dir=tmp_path)
    runs = plan(spec)
    assert [r.name for r in runs] == [
        "lift bc s0", "lift expo s0", "lift rlpd s0", "lift bc s1", "lift expo s1", "lift rlpd s1",
    ]  # fmt: skip
    by = {r.name: r for r in runs}
    assert by["lift expo s1"].needs == ("lift", "bc", 1) and by["lift rlpd s0"].needs is None
    assert not by["lift bc s0"].in_results  # bc only pretrains the base here: not in learning.csv
    assert by["lift bc s0"].env_steps == 0 and by["lift expo s0"].out == tmp_path / "lift" / "expo" / "s0"
    cmd = by["lift expo s0"].command(spec)
    assert cmd[1:4] == ["-m", "expo_sim.cli", "train"]
    assert {"--resume", "--no-progress"} <= set(cmd) and cmd[cmd.index("--threads") + 1] == "1"
    assert cmd[cmd.index("--eval-episodes") + 1] == "100"  # the study's default
    only_rlpd = plan(StudySpec(algos=("rlpd",), seeds=(0,), runs_dir=tmp_path))
    assert [r.name for r in only_rlpd] == ["lift rlpd s0"]


def test_spec_validates():
    with pytest.raises(ValueError, match="unknown algo 'sac'"):
        StudySpec(algos=("sac",))
    with pytest.raises(ValueError, match="seeds="):
        StudySpec(seeds=(0, 0))
    with pytest.raises(ValueError, match="eval_episodes=0"):
        StudySpec(eval_episodes=0)
    with pytest.raises(ValueError, match="not in tasks"):
        StudySpec(tasks=("lift",), datasets={"can": "x.hdf5"})


def test_an_existing_run_with_other_settings_is_refused(tmp_path):
    spec = StudySpec(algos=("expo",), seeds=(0,), runs_dir=tmp_path, eval_episodes=30)
    run = plan(spec)[1]
    run.out.mkdir(parents=True)
    settings = {"task": "lift", "algo": "expo", "seed": 0, "eval_every": 1000, "eval_episodes": 100}
    (run.out / "run.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="other settings.*eval_episodes"):
        run.check_settings(spec)
    assert not run.finished()
    (run.out / "summary.json").write_text(json.dumps({"status": "complete", "env_steps": 8000}))
    assert run.finished()
    (run.out / "summary.json").write_text(json.dumps({"status": "complete", "env_steps": 4000}))
    assert not run.finished()  # a longer study continues it


def test_learning_csv_has_exactly_its_columns_and_merges_by_run(tmp_path):
    path = tmp_path / "learning.csv"
    a = [Point("lift", "expo", 0, 0, 0.3, 100), Point("lift", "expo", 0, 1000, 1 / 3, 100)]
    write_learning_csv(path, a, [p.run for p in a])
    b = [Point("can", "bc", 1, 0, 0.25, 100)]
    write_learning_csv(path, b, [p.run for p in b])  # another study: lift's rows stay
    a2 = [Point("lift", "expo", 0, 0, 0.3, 100)]  # a run restarted: its rows replaced
    write_learning_csv(path, a2, [p.run for p in a2])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == LEARNING_COLUMNS == ("task", "algo", "seed", "env_steps", "success", "episodes")
    assert rows[1:] == [["can", "bc", "1", "0", "0.2500", "100"], ["lift", "expo", "0", "0", "0.3000", "100"]]
    assert read_learning_csv(path)[1] == a2[0]


def test_across_seed_band_is_the_t_interval_of_the_mean():
    pts = [Point("lift", "expo", s, 1000, x, 100) for s, x in enumerate((0.2, 0.4, 0.6))]
    pts.append(Point("lift", "expo", 0, 2000, 0.9, 100))
    s1, s2 = across_seeds(pts)
    half = 4.303 * 0.2 / 3**0.5  # t(0.975, 2) * sd / sqrt(n)
    assert (s1.n, s1.mean) == (3, pytest.approx(0.4))
    assert s1.low == 0.0 and s1.high == pytest.approx(0.4 + half)  # clipped at 0
    assert (s2.n, s2.mean, s2.low, s2.high) == (1, 0.9, 0.9, 0.9)  # one seed: no band


def test_plot_and_summary_of_a_task(tmp_path):
    pts = [Point("lift", "bc", s, 0, 0.3, 30) for s in (0, 1)]
    pts += [Point("lift", "expo", s, step, 0.3 + step / 4000, 30) for s in (0, 1) for step in (0, 1000, 2000)]
    plot_task(pts, "lift", tmp_path / "learning_lift.png", ("expo", "bc"))
    assert (tmp_path / "learning_lift.png").stat().st_size > 10_000
    table = markdown_summary(pts, "lift", ("expo", "bc"))
    assert "| 2000 | 0.80 [0.80, 0.80] (n=2) |  |" in table


def _study_cmd(tmp_path, dataset):
    return [
        sys.executable, "-m", "expo_sim.study.cli", "--tasks", "lift", "--algos", "expo", "bc",
        "--seeds", "0", "1", "--env-steps", "40", "--eval-every", "20", "--eval-episodes", "2",
        "--horizon", "30", "--preset", "tiny", "--dataset", f"lift={dataset}",
        "--runs", str(tmp_path / "runs"), "--pretrain-dir", str(tmp_path / "pre"),
        "--csv", str(tmp_path / "learning.csv"), "--plots", str(tmp_path), "--jobs", "2", "--poll", "0.3",
    ]  # fmt: skip


def _metric_steps(run_dir):
    """The env_steps of the evaluation points a run's metrics.csv holds (none if not written)."""
    return {int(r["env_steps"]) for r in read_metrics(run_dir / "metrics.csv")}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not alive
        return f.read().split()[2] != "Z"


@pytest.mark.slow
def test_a_killed_study_continues_with_the_same_command(tmp_path, synthetic_lift_hdf5):
    cmd = _study_cmd(tmp_path, synthetic_lift_hdf5())
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115
    study = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    expo_metrics = tmp_path / "runs" / "lift" / "expo" / "s0" / "metrics.csv"
    while time.monotonic() < deadline:  # kill it once expo s0 has its first online point
        if expo_metrics.exists() and len(expo_metrics.read_text().splitlines()) >= 3:
            break
        assert study.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.2)
    children = [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(study.pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    assert children
    study.send_signal(signal.SIGKILL)
    study.wait()
    log.close()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in children)  # the runs died with the study
    unfinished = [s for s in (0, 1) if 40 not in _metric_steps(tmp_path / "runs" / "lift" / "expo" / f"s{s}")]
    assert unfinished  # expo s0 was killed before its last point (s1 may have finished: a race)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "points already done" in out.stdout
    for s in unfinished:  # each run killed short of its end goes on to it
        assert f"lift expo s{s} @ 40 env steps" in out.stdout, out.stdout
    rows = read_learning_csv(tmp_path / "learning.csv")
    got = sorted((p.algo, p.seed, p.env_steps) for p in rows)
    assert got == sorted(
        [("bc", s, 0) for s in (0, 1)] + [("expo", s, n) for s in (0, 1) for n in (0, 20, 40)]
    )
    for s in (0, 1):  # step 0 of expo is the pretrained base: bc's cached evaluation
        assert {p.success for p in rows if p.seed == s and p.env_steps == 0} == {
            p.success for p in rows if p.seed == s and p.algo == "bc"
        }
    assert (tmp_path / "learning_lift.png").is_file()
    record = json.loads((tmp_path / "runs" / "study.json").read_text())
    assert len(record["finished"]) == 4 and not record["failed"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # all done: nothing runs
    assert again.returncode == 0 and "(nothing ran)" in again.stdout, again.stdout + again.stderr

    def no_nan(value):
        raise ValueError(f"study.json holds {value}, which strict JSON readers refuse")

    record = json.loads((tmp_path / "runs" / "study.json").read_text(), parse_constant=no_nan)
    assert record["load_1min"] is None and len(record["finished"]) == 4


def test_a_study_of_one_variant_keeps_the_others_in_the_plot(tmp_path, monkeypatch):
    """learning_<task>.png shows every algorithm of the task in the merged CSV: this study's
    first, then the earlier studies' (before, a one-variant study redrew the figure with only
    itself while the CSV kept the rest)."""
    from expo_sim.study import scheduler as sched_mod

    csv_path = tmp_path / "learning.csv"
    earlier = [Point("lift", "expo", 0, 0, 0.3, 100), Point("can", "bc", 0, 0, 0.1, 100)]
    write_learning_csv(csv_path, earlier, [])
    drawn = {}
    monkeypatch.setattr(
        sched_mod, "plot_task", lambda pts, task, out, algos: drawn.update(pts=list(pts), algos=algos)
    )
    spec = StudySpec(tasks=("lift",), algos=("expo-sarsa-backup",), seeds=(0,), runs_dir=tmp_path)
    s = sched_mod.Scheduler(spec, [], 1, csv_path, tmp_path, lambda line: None)
    s._points = {("lift", "expo-sarsa-backup", 0): [Point("lift", "expo-sarsa-backup", 0, 0, 0.25, 100)]}
    s._write_results("lift")
    assert drawn["algos"] == ("expo-sarsa-backup", "expo")
    assert {(p.algo, p.success) for p in drawn["pts"] if p.task == "lift"} == {
        ("expo", 0.3),
        ("expo-sarsa-backup", 0.25),
    }
    assert {p.run for p in read_learning_csv(csv_path)} == {
        ("lift", "expo", 0),
        ("can", "bc", 0),
        ("lift", "expo-sarsa-backup", 0),
    }
