"""Runs a study's plan as separate single-thread processes, ``jobs`` at a time.

Each run is ``python -m expo_sim.cli train ... --threads 1 --resume`` with one thread for every
math library, its output appended to ``<run>/train.log``. The scheduler polls the runs'
metrics.csv files; every new evaluation point becomes one progress line and an update of
learning.csv and the task's plot, so a kill loses at most the points in progress. Children die
with the scheduler (Linux parent-death signal, and SIGTERM from its own SIGINT/SIGTERM handler);
the harness's lock on each run directory keeps a stray process and a restarted study from
writing one run at once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from expo_sim.study.plan import Run, StudySpec
from expo_sim.study.results import Point, plot_task, write_learning_csv
from expo_sim.train.run_log import read_metrics

log = logging.getLogger(__name__)

SINGLE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class _Job:
    run: Run
    proc: subprocess.Popen
    started: float
    log_file: object
    seen: int = 0  # evaluation points already reported


@dataclass
class StudyOutcome:
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # waited on a run that failed
    wall_s: float = 0.0
    load: list[float] = field(default_factory=list)  # 1-min load average at every poll
    run_wall_s: dict[str, float] = field(default_factory=dict)  # wall time of each process

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


class Scheduler:
    """``run()`` executes the plan; ``report`` gets one line per event (a finished point, a run
    started, finished or failed)."""

    def __init__(
        self,
        spec: StudySpec,
        runs: list[Run],
        jobs: int,
        csv_path: Path,
        plots_dir: Path,
        report: Callable[[str], None] = print,
        poll_s: float = 2.0,
    ) -> None:
        if jobs < 1:
            raise ValueError(f"jobs={jobs} is invalid; allowed: integer >= 1")
        self.spec, self.runs, self.jobs = spec, runs, jobs
        self.csv_path, self.plots_dir = Path(csv_path), Path(plots_dir)
        self.report, self.poll_s = report, poll_s
        self.running: list[_Job] = []
        self.outcome = StudyOutcome()
        self._t0 = time.monotonic()
        self._points = {r.key: r.points() for r in runs if r.in_results}

    # --- results ----------------------------------------------------------------------
    def _write_results(self, task: str) -> None:
        points = [p for pts in self._points.values() for p in pts]
        # the plot shows every run of the task in the CSV (earlier studies' algorithms too, after
        # this study's), so a study of one variant does not drop the others from the figure
        merged = write_learning_csv(self.csv_path, points, self._points.keys())
        others = sorted({p.algo for p in merged if p.task == task} - set(self.spec.algos))
        plot_task(merged, task, self.plots_dir / f"learning_{task}.png", (*self.spec.algos, *others))

    def _line(self, text: str) -> None:
        load = os.getloadavg()[0]
        elapsed = (time.monotonic() - self._t0) / 60
        self.report(f"[{time.strftime('%H:%M:%S')} +{elapsed:5.1f} min load {load:4.1f}] {text}")

    def _poll_points(self, job: _Job) -> None:
        run = job.run
        pts = run.points()
        for p in pts[job.seen :]:
            self._line(
                f"{run.name} @ {p.env_steps} env steps: success {p.success:.2f} "
                f"({round(p.success * p.episodes)}/{p.episodes}) {_diagnostics(run.out, p)}"
            )
        if len(pts) != job.seen and run.in_results:
            self._points[run.key] = pts
            self._write_results(run.task)
        job.seen = len(pts)

    # --- processes --------------------------------------------------------------------
    def _start(self, run: Run) -> None:
        run.out.mkdir(parents=True, exist_ok=True)
        log_file = open(run.out / "train.log", "a")  # noqa: SIM115 - closed when the job ends
        log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(run.command(self.spec))}\n")
        log_file.flush()
        proc = subprocess.Popen(
            run.command(self.spec),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **SINGLE_THREAD_ENV},
            preexec_fn=_die_with_parent,
        )
        job = _Job(run, proc, time.monotonic(), log_file, seen=len(run.points()))
        self.running.append(job)
        self._line(f"{run.name}: started (pid {proc.pid}, {job.seen} points already done) -> {run.out}")

    def _reap(self, job: _Job) -> None:
        rc = job.proc.returncode
        job.log_file.close()
        self.running.remove(job)
        self._poll_points(job)
        wall = time.monotonic() - job.started
        self.outcome.run_wall_s[job.run.name] = self.outcome.run_wall_s.get(job.run.name, 0.0) + wall
        if rc == 0 and job.run.finished():
            self.outcome.finished.append(job.run.name)
            self._line(f"{job.run.name}: finished in {wall / 60:.1f} min")
        else:
            self.outcome.failed.append(job.run.name)
            self._line(f"{job.run.name}: FAILED (exit code {rc}); see {job.run.out / 'train.log'}")

    def terminate(self) -> None:
        for job in self.running:
            if job.proc.poll() is None:
                job.proc.terminate()
        for job in self.running:
            try:
                job.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.proc.kill()
                job.proc.wait()
            job.log_file.close()
        self.running.clear()

    def run(self) -> StudyOutcome:
        pending = [r for r in self.runs if not r.finished()]
        done = {r.key for r in self.runs if r.finished()}
        for r in self.runs:
            if r.key in done:
                self.outcome.finished.append(r.name)
        if done:
            self._line(f"{len(done)} of {len(self.runs)} runs already finished; {len(pending)} to go")
        for task in self.spec.tasks:
            if any(self._points.get(k) for k in self._points if k[0] == task):
                self._write_results(task)
        failed: set[tuple[str, str, int]] = set()
        try:
            while pending or self.running:
                for job in list(self.running):
                    if job.proc.poll() is not None:
                        self._reap(job)
                        (done if job.run.name in self.outcome.finished else failed).add(job.run.key)
                    else:
                        self._poll_points(job)
                for r in list(pending):
                    if r.needs in failed:
                        pending.remove(r)
                        self.outcome.skipped.append(r.name)
                        failed.add(r.key)
                        self._line(f"{r.name}: skipped ({' '.join(map(str, r.needs))} failed)")
                while len(self.running) < self.jobs:
                    ready = next((r for r in pending if r.needs is None or r.needs in done), None)
                    if ready is None:
                        break
                    pending.remove(ready)
                    self._start(ready)
                self.outcome.load.append(os.getloadavg()[0])
                if pending or self.running:
                    time.sleep(self.poll_s)
        finally:
            self.terminate()
            self.outcome.wall_s = time.monotonic() - self._t0
        return self.outcome


def _diagnostics(out: Path, p: Point) -> str:
    """The row's overestimation and learner diagnostics, as far as the run has them."""
    rows = [r for r in read_metrics(out / "metrics.csv") if int(r["env_steps"]) == p.env_steps]
    if not rows:
        return ""
    r = rows[-1]
    parts = []
    for key, label in (
        ("eval_q", "Q"),
        ("eval_mc_return", "MC"),
        ("alpha", "alpha"),
        ("eval_edited_fraction", "edited"),
        ("bc_loss_online", "bc_online"),
    ):
        v = r.get(key)
        if v is not None and v == v:
            parts.append(f"{label} {v:.3g}")
    wall = r.get("wall_time_s")
    if wall is not None and wall == wall:
        parts.append(f"run wall {wall / 60:.1f} min")
    return "| " + ", ".join(parts) if parts else ""
