"""The study's committed results: ``learning.csv`` and one plot per task.

learning.csv has exactly the columns :data:`LEARNING_COLUMNS`, one row per evaluation point of
every run (``success`` is the success rate over ``episodes`` deterministic evaluation episodes;
``env_steps`` 0 is the starting point: the pretrained base for every algorithm but rlpd, whose
row 0 is its initial actor). Rows of runs that the current study does not hold are kept, so
studies of different tasks or algorithms can share one file.

Plots: per task, each algorithm's mean success over seeds against env steps with a 95 % band for
that mean across seeds (Student t, n - 1 degrees of freedom; no band for one seed); an algorithm
evaluated at step 0 only (``bc``) is drawn as a dashed line across the plot.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from expo_sim.train.run_log import new_figure

LEARNING_COLUMNS: tuple[str, ...] = ("task", "algo", "seed", "env_steps", "success", "episodes")

# Two-sided 95 % Student t quantiles for 1..30 degrees of freedom (beyond: the normal 1.96).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042)  # fmt: skip


@dataclass(frozen=True)
class Point:
    """One evaluation point of one run."""

    task: str
    algo: str
    seed: int
    env_steps: int
    success: float
    episodes: int

    @property
    def run(self) -> tuple[str, str, int]:
        return (self.task, self.algo, self.seed)


def read_learning_csv(path: Path) -> list[Point]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != LEARNING_COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}; expected {list(LEARNING_COLUMNS)}")
        return [
            Point(
                r["task"],
                r["algo"],
                int(r["seed"]),
                int(r["env_steps"]),
                float(r["success"]),
                int(r["episodes"]),
            )
            for r in reader
        ]


def write_learning_csv(
    path: Path, points: Iterable[Point], replace_runs: Iterable[tuple[str, str, int]]
) -> list[Point]:
    """Atomically write ``path``: its current rows minus those of ``replace_runs``, plus
    ``points``, sorted by task, algo, seed and env steps. Returns the rows written."""
    path = Path(path)
    replace = set(replace_runs)
    kept = [p for p in read_learning_csv(path) if p.run not in replace]
    rows = sorted([*kept, *points], key=lambda p: (p.task, p.algo, p.seed, p.env_steps))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(LEARNING_COLUMNS)
        for p in rows:
            w.writerow([p.task, p.algo, p.seed, p.env_steps, f"{p.success:.4f}", p.episodes])
    os.replace(tmp, path)
    return rows


def t95(dof: int) -> float:
    if dof < 1:
        raise ValueError(f"dof={dof} must be >= 1")
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


@dataclass(frozen=True)
class SeedStats:
    env_steps: int
    n: int  # seeds with a point at this step
    mean: float
    low: float  # 95 % band of the mean across seeds, clipped to [0, 1]; = mean for one seed
    high: float


def across_seeds(points: Sequence[Point]) -> list[SeedStats]:
    """Mean success over seeds at every env step where any seed has a point, with its t band."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for p in points:
        by_step[p.env_steps].append(p.success)
    out = []
    for step in sorted(by_step):
        xs = by_step[step]
        n, mean = len(xs), sum(xs) / len(xs)
        if n > 1:
            sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
            half = t95(n - 1) * sd / math.sqrt(n)
            low, high = max(0.0, mean - half), min(1.0, mean + half)
        else:
            low = high = mean
        out.append(SeedStats(step, n, mean, low, high))
    return out


def plot_task(points: Sequence[Point], task: str, out: Path, algos: Sequence[str] | None = None) -> None:
    """Mean success over seeds with its 95 % band, one line per algorithm, for ``task``."""
    pts = [p for p in points if p.task == task]
    order = list(algos) if algos else sorted({p.algo for p in pts})
    order = [a for a in order if any(p.algo == a for p in pts)]
    fig, (ax,) = new_figure(1, width=8.0, height=4.5)
    x_max = max((p.env_steps for p in pts), default=0) or 1
    for i, algo in enumerate(order):
        mine = [p for p in pts if p.algo == algo]
        stats = across_seeds(mine)
        seeds = len({p.seed for p in mine})
        label = f"{algo} ({seeds} seed{'s' if seeds != 1 else ''})"
        xs = [s.env_steps for s in stats]
        ys, lo, hi = [s.mean for s in stats], [s.low for s in stats], [s.high for s in stats]
        style = "o-"
        if len(stats) == 1:
            xs, ys, lo, hi, style = [xs[0], x_max], ys * 2, lo * 2, hi * 2, "--"
        (line,) = ax.plot(xs, ys, style, ms=3, label=label, color=f"C{i % 10}")
        ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate (mean over seeds)")
    episodes = sorted({p.episodes for p in pts})
    ax.set_title(
        f"{task}: mean over seeds, 95 % band across seeds ({'/'.join(map(str, episodes))} eval episodes)"
    )
    ax.grid(alpha=0.3)
    if order:
        ax.legend(fontsize=8, loc="best")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)


def markdown_summary(points: Sequence[Point], task: str, algos: Sequence[str] | None = None) -> str:
    """A table of mean success [95 % band] (seeds) per algorithm and env step for ``task``."""
    pts = [p for p in points if p.task == task]
    order = list(algos) if algos else sorted({p.algo for p in pts})
    steps = sorted({p.env_steps for p in pts})
    lines = ["| env steps | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
    stats = {a: {s.env_steps: s for s in across_seeds([p for p in pts if p.algo == a])} for a in order}
    for step in steps:
        cells = []
        for a in order:
            s = stats[a].get(step)
            cells.append(f"{s.mean:.2f} [{s.low:.2f}, {s.high:.2f}] (n={s.n})" if s else "")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
