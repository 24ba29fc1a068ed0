"""``expo-study``: tasks x algorithms x seeds of ``expo-sim train``, as separate single-thread
processes, into ``docs/results/learning.csv`` and one plot per task.

    expo-study --tasks lift can --algos expo rlpd bc expo-no-edit expo-sarsa-backup --seeds 0 1 2 \\
        --env-steps 8000 --eval-every 1000 --eval-episodes 100 --jobs 2

Restarting a killed study with the same command continues every run where it stopped (its last
evaluation point). Missing demonstrations (``data/<task>_mixed.hdf5``) are generated first with
the scripted demonstrator (``expo-sim demos --quality mixed --episodes 50 --seed 0``); for stack
and threading ``data/<task>_mimicgen.hdf5`` the MimicGen way (``expo-sim demos --generator
mimicgen --episodes 100 --seed 0``, the file ``make sim TASK=`` uses).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got '{text}'") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {v}")
        return v

    return parse


def _dataset(text: str) -> tuple[str, Path]:
    task, sep, path = text.partition("=")
    if not sep or not task or not path:
        raise argparse.ArgumentTypeError(f"expected TASK=PATH, got '{text}'")
    return task, Path(path)


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    from expo_core.presets import PRESETS
    from expo_core.tasks import SUPPORTED_TASKS

    from expo_sim.train.presets import ALGOS

    p = argparse.ArgumentParser(
        prog="expo-study",
        description="Tasks x algorithms x seeds of expo-sim train as separate single-thread processes, "
        "into learning.csv and one plot per task; rerun the same command to continue a killed study.",
    )
    p.add_argument("--tasks", nargs="+", default=["lift"], choices=SUPPORTED_TASKS, help="default: lift")
    p.add_argument(
        "--algos",
        nargs="+",
        default=["expo", "rlpd", "bc", "expo-no-edit", "expo-sarsa-backup"],
        choices=ALGOS,
        metavar="ALGO",
        help=f"from {', '.join(ALGOS)} (default: expo rlpd bc expo-no-edit expo-sarsa-backup)",
    )
    p.add_argument("--seeds", nargs="+", type=_int_at_least(0), default=[0, 1, 2], help="default: 0 1 2")
    p.add_argument("--env-steps", type=_int_at_least(1), default=8000, help="online env steps per run")
    p.add_argument("--eval-every", type=_int_at_least(1), default=1000, help="env steps between evaluations")
    p.add_argument(
        "--eval-episodes",
        type=_int_at_least(1),
        default=100,
        help="deterministic evaluation episodes per point, fixed reset seeds (default 100)",
    )
    p.add_argument("--preset", default="cpu", choices=PRESETS, help="network/learner preset (default cpu)")
    p.add_argument(
        "--pretrain-steps", type=_int_at_least(0), help="base imitation steps (default: the preset's)"
    )
    p.add_argument(
        "--warmup-steps", type=_int_at_least(0), help="env steps before updates (default: preset's)"
    )
    p.add_argument("--horizon", type=_int_at_least(1), default=400, help="episode step limit (default 400)")
    p.add_argument(
        "--dataset",
        action="append",
        type=_dataset,
        default=[],
        metavar="TASK=PATH",
        help="demonstrations of a task (default data/<task>_mixed.hdf5, stack/threading "
        "data/<task>_mimicgen.hdf5; generated when missing)",
    )
    p.add_argument(
        "--runs", type=Path, default=Path("runs/study"), help="run directories (default runs/study)"
    )
    p.add_argument(
        "--pretrain-dir",
        type=Path,
        default=Path("data/pretrain"),
        help="pretrained-base cache (default data/pretrain)",
    )
    p.add_argument(
        "--csv",
        type=Path,
        default=Path("docs/results/learning.csv"),
        help="default docs/results/learning.csv",
    )
    p.add_argument(
        "--plots",
        type=Path,
        default=Path("docs/results"),
        help="plot directory: learning_<task>.png (default docs/results)",
    )
    p.add_argument(
        "--jobs",
        type=_int_at_least(1),
        default=default_jobs(),
        help=f"processes at once (default: cores, {default_jobs()})",
    )
    p.add_argument("--poll", type=float, default=2.0, help="seconds between progress polls (default 2)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their commands, run nothing")
    return p


def _ensure_demos(spec) -> None:
    """Generate the default demonstrations of tasks that have none: mixed-quality scripted ones,
    or for MimicGen tasks the MimicGen way (:mod:`expo_sim.mimicgen.demo_cache`)."""
    from expo_core.tasks import requires_mimicgen

    from expo_sim.envs.scripted import SCRIPTED_TASKS
    from expo_sim.mimicgen.available import require_mimicgen
    from expo_sim.mimicgen.demo_cache import demo_command

    for task in spec.tasks:
        path = spec.dataset(task)
        if path.is_file():
            continue
        if task in spec.datasets:
            raise FileNotFoundError(f"dataset of task '{task}' not found: {path}")
        if requires_mimicgen(task):
            require_mimicgen(f"expo-study --tasks {task} (its demonstrations are made by MimicGen)")
            args = demo_command(task, path)[2:]
        elif task in SCRIPTED_TASKS:
            args = ["--task", task, "--episodes", "50", "--quality", "mixed", "--seed", "0"]
            args += ["--out", str(path)]
        else:
            raise FileNotFoundError(f"dataset of task '{task}' not found: {path}")
        cmd = [sys.executable, "-m", "expo_sim.cli", "demos", *args]
        print(f"generating demonstrations: {' '.join(cmd[2:])}", flush=True)
        subprocess.run(cmd, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    from expo_sim.study.plan import StudySpec, plan
    from expo_sim.study.results import markdown_summary, read_learning_csv
    from expo_sim.study.scheduler import Scheduler

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        spec = StudySpec(
            tasks=tuple(args.tasks),
            algos=tuple(args.algos),
            seeds=tuple(args.seeds),
            env_steps=args.env_steps,
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            preset=args.preset,
            pretrain_steps=args.pretrain_steps,
            warmup_steps=args.warmup_steps,
            horizon=args.horizon,
            runs_dir=args.runs,
            pretrain_dir=args.pretrain_dir,
            datasets=dict(args.dataset),
        )
        runs = plan(spec)
        for r in runs:
            r.check_settings(spec)
    except ValueError as e:
        print(f"expo-study: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for r in runs:
            state = "finished" if r.finished() else f"{len(r.points())} points"
            wait = f" (after {' '.join(map(str, r.needs))})" if r.needs else ""
            print(f"{r.name}{wait} [{state}]: {' '.join(r.command(spec)[2:])}")
        return 0
    from expo_sim.mimicgen.available import MimicGenMissing

    try:
        _ensure_demos(spec)
    except (FileNotFoundError, subprocess.CalledProcessError, MimicGenMissing) as e:
        print(f"expo-study: error: {e}", file=sys.stderr)
        return 2
    grid = f"{len(spec.tasks)} tasks x {len(spec.algos)} algos x {len(spec.seeds)} seeds"
    base_only = sum(not r.in_results for r in runs)
    print(
        f"expo-study: {len(runs)} runs ({grid}{f', + {base_only} base runs' if base_only else ''}), "
        f"{args.jobs} at a time, "
        f"{spec.eval_episodes} eval episodes every {spec.eval_every} env steps up to {spec.env_steps}",
        flush=True,
    )
    sched = Scheduler(spec, runs, args.jobs, args.csv, args.plots, lambda s: print(s, flush=True), args.poll)
    try:
        outcome = sched.run()
    except KeyboardInterrupt:
        print("expo-study: interrupted; the same command continues every run", file=sys.stderr)
        return 130
    points = read_learning_csv(args.csv)
    for task in spec.tasks:
        print(
            f"\n{task} (mean success over seeds [95 % band]):\n{markdown_summary(points, task, spec.algos)}"
        )
    load = outcome.load  # no samples when nothing ran: null in study.json (valid JSON, unlike NaN)
    record = {
        "command": ["expo-study", *argv],
        "finished": outcome.finished,
        "failed": outcome.failed,
        "skipped": outcome.skipped,
        "wall_s": outcome.wall_s,
        "run_wall_s": outcome.run_wall_s,
        "load_1min": {"mean": statistics.fmean(load), "max": max(load)} if load else None,
        "jobs": args.jobs,
        "cores": os.cpu_count(),
        "host": platform.node(),
        "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "study.json").write_text(json.dumps(record, indent=2) + "\n")
    lm = record["load_1min"]
    load_text = f"load average mean {lm['mean']:.1f}, max {lm['max']:.1f}" if lm else "nothing ran"
    print(
        f"\nexpo-study: {len(outcome.finished)} runs finished, {len(outcome.failed)} failed, "
        f"{len(outcome.skipped)} skipped in {outcome.wall_s / 60:.1f} min ({load_text}); "
        f"{args.csv}, {args.plots}/learning_<task>.png, {args.runs / 'study.json'}"
    )
    return 0 if outcome.ok else 1


def _signal_exit(signum, frame) -> None:  # pragma: no cover - signal path
    raise KeyboardInterrupt


def entry() -> int:
    """Console script: SIGTERM ends the study like Ctrl-C (children terminated, resumable)."""
    import signal

    signal.signal(signal.SIGTERM, _signal_exit)
    return main()


if __name__ == "__main__":
    sys.exit(entry())
