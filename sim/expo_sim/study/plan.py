"""What a study runs: tasks x algorithms x seeds, each one ``expo-sim train`` run in its own
directory ``<runs>/<task>/<algo>/s<seed>``, and which runs wait for which.

Every algorithm but rlpd starts from the pretrained base of its (task, seed), cached under
``pretrain_dir`` by the harness. So that one process trains it while the others wait (instead of
several training the same base at once), the (task, seed)'s ``bc`` run goes first: it pretrains
(or finds) the base and evaluates it once, and that evaluation is cached too, as every other
run's step 0. It is run even when ``bc`` is not among the study's algorithms (then it is left out
of learning.csv).

A run is finished when its summary.json says ``complete`` at the requested env steps; anything
else is (re)started with ``--resume``, which continues from the last evaluation point.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from expo_core.presets import check_preset
from expo_core.tasks import check_task, requires_mimicgen

from expo_sim.study.results import Point
from expo_sim.train.presets import check_algo
from expo_sim.train.run_log import read_metrics

# run.json settings that must match the study's for an existing run directory to be reused.
_SAME_SETTINGS = (
    "task",
    "algo",
    "seed",
    "preset",
    "dataset",
    "eval_every",
    "eval_episodes",
    "horizon",
    "pretrain_steps",
    "warmup_steps",
    "initial_eval",
)


@dataclass(frozen=True)
class StudySpec:
    """A study. ``datasets`` maps a task to its demonstrations (default :meth:`dataset`);
    ``pretrain_steps``/``warmup_steps`` None take the preset's defaults."""

    tasks: tuple[str, ...] = ("lift",)
    algos: tuple[str, ...] = ("expo", "rlpd", "bc", "expo-no-edit", "expo-sarsa-backup")
    seeds: tuple[int, ...] = (0, 1, 2)
    env_steps: int = 8_000
    eval_every: int = 1_000
    eval_episodes: int = 100
    preset: str = "cpu"
    pretrain_steps: int | None = None
    warmup_steps: int | None = None
    horizon: int = 400
    runs_dir: Path = Path("runs/study")
    pretrain_dir: Path = Path("data/pretrain")
    datasets: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tasks", "algos", "seeds"):
            v = getattr(self, name)
            if not v or len(set(v)) != len(v):
                raise ValueError(f"{name}={v!r} is invalid; allowed: a non-empty list without repeats")
        for t in self.tasks:
            check_task(t)
        for a in self.algos:
            check_algo(a)
        check_preset(self.preset)
        for name, low in (("env_steps", 1), ("eval_every", 1), ("eval_episodes", 1), ("horizon", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < low:
                raise ValueError(f"{name}={v!r} is invalid; allowed: integer >= {low}")
        if any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds={self.seeds!r} is invalid; allowed: integers >= 0")
        unknown = sorted(set(self.datasets) - set(self.tasks))
        if unknown:
            raise ValueError(f"datasets given for tasks {unknown} that are not in tasks={list(self.tasks)}")

    def dataset(self, task: str) -> Path:
        """The given dataset of ``task``, else its default: ``data/<task>_mixed.hdf5`` (scripted),
        for MimicGen tasks ``data/<task>_mimicgen.hdf5`` (the file ``make sim TASK=`` uses)."""
        if task in self.datasets:
            return Path(self.datasets[task])
        if requires_mimicgen(task):
            return Path("data") / f"{task}_mimicgen.hdf5"
        return Path("data") / f"{task}_mixed.hdf5"


@dataclass(frozen=True)
class Run:
    task: str
    algo: str
    seed: int
    out: Path
    env_steps: int  # 0 for bc (evaluated once)
    needs: tuple[str, str, int] | None  # the (task, "bc", seed) run that must finish first
    in_results: bool  # False for a bc run only there to pretrain the base

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.task, self.algo, self.seed)

    @property
    def name(self) -> str:
        return f"{self.task} {self.algo} s{self.seed}"

    def finished(self) -> bool:
        try:
            summary = json.loads((self.out / "summary.json").read_text())
        except (FileNotFoundError, ValueError):
            return False
        return summary.get("status") == "complete" and (
            self.algo == "bc" or summary.get("env_steps") == self.env_steps
        )

    def points(self) -> list[Point]:
        """The run's evaluation points so far (learning.csv rows)."""
        path = self.out / "metrics.csv"
        if not path.is_file():
            return []
        return [
            Point(
                self.task,
                self.algo,
                self.seed,
                int(r["env_steps"]),
                r["success_rate"],
                int(r["eval_episodes"]),
            )
            for r in read_metrics(path)
        ]

    def command(self, spec: StudySpec) -> list[str]:
        """The ``expo-sim train`` command of this run (always ``--resume``: a fresh directory starts
        fresh, an interrupted run continues from its last evaluation point)."""
        cmd = [
            sys.executable, "-m", "expo_sim.cli", "train",
            "--task", self.task, "--dataset", str(spec.dataset(self.task)), "--algo", self.algo,
            "--seed", str(self.seed), "--out", str(self.out), "--preset", spec.preset,
            "--env-steps", str(self.env_steps), "--eval-every", str(spec.eval_every),
            "--eval-episodes", str(spec.eval_episodes), "--horizon", str(spec.horizon),
            "--pretrain-dir", str(spec.pretrain_dir), "--threads", "1", "--no-progress", "--resume",
        ]  # fmt: skip
        if spec.pretrain_steps is not None:
            cmd += ["--pretrain-steps", str(spec.pretrain_steps)]
        if spec.warmup_steps is not None:
            cmd += ["--warmup-steps", str(spec.warmup_steps)]
        return cmd

    def check_settings(self, spec: StudySpec) -> None:
        """Raise ValueError if the run directory holds a run made with other settings."""
        path = self.out / "run.json"
        if not path.is_file():
            return
        prev = json.loads(path.read_text())
        want = {
            "task": self.task,
            "algo": self.algo,
            "seed": self.seed,
            "preset": spec.preset,
            "dataset": str(spec.dataset(self.task).resolve()),
            "eval_every": spec.eval_every,
            "eval_episodes": spec.eval_episodes,
            "horizon": spec.horizon,
            "pretrain_steps": spec.pretrain_steps,
            "warmup_steps": spec.warmup_steps,
            "initial_eval": "base",
        }
        if self.algo == "bc":
            want.pop("eval_every")
        diff = {
            k: (prev.get(k), v)
            for k, v in want.items()
            if k in _SAME_SETTINGS and v is not None and prev.get(k) != v
        }
        if diff:
            raise ValueError(
                f"{self.out} holds a run with other settings {diff} (was, now); "
                "choose another --runs directory or delete that run"
            )


def plan(spec: StudySpec) -> list[Run]:
    """The runs in start order: per seed, per task, the base (bc) run first, then the others."""
    runs: list[Run] = []
    for seed in spec.seeds:
        for task in spec.tasks:
            needs_base = any(a != "rlpd" for a in spec.algos)
            base_key = (task, "bc", seed)
            if needs_base:
                runs.append(Run(task, "bc", seed, _out(spec, task, "bc", seed), 0, None, "bc" in spec.algos))
            for algo in spec.algos:
                if algo == "bc":
                    continue
                needs = None if algo == "rlpd" else base_key
                runs.append(Run(task, algo, seed, _out(spec, task, algo, seed), spec.env_steps, needs, True))
    return runs


def _out(spec: StudySpec, task: str, algo: str, seed: int) -> Path:
    return Path(spec.runs_dir) / task / algo / f"s{seed}"
