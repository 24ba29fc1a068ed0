"""MimicGen's own tools, run as subprocesses: ``prepare_src_dataset`` (adds ``datagen_info`` to the
source demos by replaying them) and ``generate_dataset`` (multiplies them), with a progress bar
fed by ``generate_dataset``'s per-trial lines.

Subprocesses, not in-process calls: ``generate_dataset`` replaces ``sys.stdout`` with a logger
for the rest of the process, prompts when its output folder exists, and reports failures by
printing them and exiting 0. Here its whole output goes to a log file, its stats file is the
proof that it finished, and a failure raises with the end of the log.

The generation config is MimicGen's packaged template for the task
(``mimicgen/exps/templates/robosuite/<task>.json``: the subtasks, their object references and
term signals, selection strategy, action noise 0.05, 5 interpolation steps) with our paths, the
attempt count (``num_trials``, ``guarantee`` off, so the count bounds the time), the seed, and
no videos or failed-demo files. Observations stay collected (robosuite's low-dim keys, no
cameras): MimicGen's writer cannot store a demo without them; the validation pass recomputes ours
from the states and compares.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Our task -> MimicGen's environment interface (mimicgen.env_interfaces.robosuite) and config template.
MIMICGEN_TASKS: dict[str, tuple[str, str]] = {
    "stack": ("MG_Stack", "stack.json"),
    "threading": ("MG_Threading", "threading.json"),
}
_TRIAL = re.compile(r"have (\d+) successes out of (\d+) trials so far")


class MimicGenFailed(RuntimeError):
    """A MimicGen tool failed; the message holds the end of its log."""


@dataclass(frozen=True)
class GenerationResult:
    """``generate_dataset``'s outcome: its demo file, successes (its own check: the task succeeded
    at some step), attempts, and wall time."""

    demo_path: Path
    successes: int
    attempts: int
    wall_s: float
    stats: dict


def check_task(task: str) -> tuple[str, str]:
    """MimicGen's interface name and template file for ``task``; ValueError for other tasks."""
    if task not in MIMICGEN_TASKS:
        raise ValueError(f"MimicGen generation is set up for tasks {sorted(MIMICGEN_TASKS)}, not '{task}'")
    return MIMICGEN_TASKS[task]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(args: list[str], log_path: Path, cwd: Path, on_line=None) -> int:
    """Run ``python -m ...`` with output to ``log_path`` (and each line to ``on_line``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()  # the log is readable while the tool runs
            if on_line is not None:
                on_line(line)
        return proc.wait()


def prepare_source(task: str, src: Path, work: Path) -> float:
    """``mimicgen.scripts.prepare_src_dataset`` on ``src`` in place; returns its wall time."""
    interface, _ = check_task(task)
    src, work = Path(src).resolve(), Path(work).resolve()
    t0 = time.perf_counter()
    log_path = work / "prepare_src_dataset.log"
    log.info("MimicGen prepare_src_dataset: replaying the source demos for datagen_info (log: %s)", log_path)
    rc = _run(
        ["-m", "mimicgen.scripts.prepare_src_dataset", "--dataset", str(src), "--env_interface", interface,
         "--env_interface_type", "robosuite"],
        log_path,
        work,
    )  # fmt: skip
    if rc != 0:
        raise MimicGenFailed(f"prepare_src_dataset failed (exit {rc}; {log_path}):\n{_tail(log_path)}")
    return time.perf_counter() - t0


def generation_config(task: str, src: Path, work: Path, attempts: int, seed: int) -> dict:
    """MimicGen's template for ``task`` with our paths, ``attempts`` trials and ``seed``."""
    import mimicgen

    _, template = check_task(task)
    path = Path(mimicgen.__file__).parent / "exps" / "templates" / "robosuite" / template
    cfg = json.loads(path.read_text())
    exp = cfg["experiment"]
    exp["name"] = "generated"
    exp["source"]["dataset_path"] = str(src)
    exp["generation"].update(path=str(work), num_trials=int(attempts), guarantee=False, keep_failed=False)
    exp.update(render_video=False, seed=int(seed), log_every_n_attempts=max(1, int(attempts)))
    cfg["obs"].update(collect_obs=True, camera_names=[])
    return cfg


def generate(
    task: str, src: Path, work: Path, attempts: int, seed: int, *, progress: bool = True
) -> GenerationResult:
    """``mimicgen.scripts.generate_dataset`` from the prepared ``src``: ``attempts`` trials into
    ``work/generated/demo.hdf5``, a progress bar of successes per trial."""
    from tqdm import tqdm

    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    src, work = Path(src).resolve(), Path(work).resolve()
    cfg_path = work / "mimicgen_config.json"
    cfg_path.write_text(json.dumps(generation_config(task, src, work, attempts, seed), indent=2))
    log_path = work / "generate_dataset.log"
    log.info("MimicGen generate_dataset: %d trials (log: %s)", attempts, log_path)
    bar = tqdm(total=attempts, unit="trial", desc=f"{task} MimicGen", disable=not progress)

    def on_line(line: str) -> None:
        m = _TRIAL.search(line)
        if m:
            successes, trials = int(m.group(1)), int(m.group(2))
            bar.update(trials - bar.n)
            bar.set_postfix(success=f"{successes}/{trials}")

    t0 = time.perf_counter()
    try:
        rc = _run(
            ["-m", "mimicgen.scripts.generate_dataset", "--config", str(cfg_path), "--auto-remove-exp"],
            log_path,
            work,
            on_line,
        )
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    folder = work / "generated"
    stats_path = folder / "important_stats.json"
    if rc != 0 or not stats_path.is_file():
        raise MimicGenFailed(f"generate_dataset failed (exit {rc}; {log_path}):\n{_tail(log_path)}")
    stats = json.loads(stats_path.read_text())
    return GenerationResult(
        demo_path=folder / "demo.hdf5",
        successes=int(stats["num_success"]),
        attempts=int(stats["num_attempts"]),
        wall_s=wall,
        stats=stats,
    )
