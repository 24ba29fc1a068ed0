"""The default demonstrations of a MimicGen task, made on first use and cached: what ``make sim
TASK=stack`` and ``expo-study --tasks stack`` pretrain on when given no dataset.

``<data>/<task>_mimicgen.hdf5``: :data:`DEFAULT_TRIALS` MimicGen trials (seed 0, 10 scripted
source demos), validated (:func:`expo_sim.mimicgen.pipeline.generate_mimicgen_demos`), the same
file as ``expo-sim demos --task <task> --generator mimicgen --episodes 100 --seed 0 --out
data/<task>_mimicgen.hdf5``. At the yields measured (stack 60 %, threading 40 %, docs/mimicgen.md)
that is ~60 stack or ~40 threading demos, ~2-7 s a trial on 2 cores depending on their load.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: MimicGen trials of the default demonstrations of a task.
DEFAULT_TRIALS = 100


def default_demo_path(task: str, data_dir: Path) -> Path:
    """Where the default MimicGen demonstrations of ``task`` live under ``data_dir``."""
    return Path(data_dir) / f"{task}_mimicgen.hdf5"


def demo_command(task: str, out: Path, trials: int = DEFAULT_TRIALS, seed: int = 0) -> list[str]:
    """The ``expo-sim demos`` arguments that make the same file (for logs and docs)."""
    return [
        "expo-sim", "demos", "--task", task, "--generator", "mimicgen",
        "--episodes", str(trials), "--seed", str(seed), "--out", str(out),
    ]  # fmt: skip


def ensure_mimicgen_demos(
    task: str, out: Path, trials: int = DEFAULT_TRIALS, seed: int = 0, progress: bool = True
) -> Path:
    """``out`` if it exists; else generate it (MimicGen, ``trials`` trials, validated) and return it.

    Raises :class:`~expo_sim.mimicgen.available.MimicGenMissing` (one line naming ``make setup``)
    without MimicGen/robomimic, ValueError for a task MimicGen generation is not set up for or
    ``trials`` < 1, RuntimeError (:class:`~expo_sim.mimicgen.generate.MimicGenFailed` among them)
    when a MimicGen tool fails or no trial holds on replay (no file is left under ``out``)."""
    from expo_sim.mimicgen.generate import check_task
    from expo_sim.mimicgen.pipeline import generate_mimicgen_demos

    check_task(task)
    if trials < 1:
        raise ValueError(f"MimicGen trials must be >= 1, got {trials}")
    out = Path(out)
    if out.is_file():
        return out
    log.info(
        "no demonstrations at %s: generating them the MimicGen way (%d trials; as `%s`)",
        out,
        trials,
        " ".join(demo_command(task, out, trials, seed)),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = generate_mimicgen_demos(task, trials, seed, out, progress=progress)
    log.info("%s", summary.line())
    return out
