"""Compare training runs: one plot of their success curves and a markdown table.

    expo-compare runs/lift_expo_s0 runs/lift_rlpd_s0 runs/lift_bc_s0 --out runs/lift_compare.png

Each run directory must hold the metrics.csv and summary.json that ``expo-train`` writes. Runs of
one algorithm share a colour; a run with a single evaluation (``bc``) is drawn as a dashed line
across the plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expo_sim.train.run_log import new_figure, plot_success, read_metrics


@dataclass(frozen=True)
class RunResult:
    path: Path
    summary: dict[str, Any]
    rows: list[dict[str, float]]

    @property
    def algo(self) -> str:
        return str(self.summary.get("algo", "?"))

    @property
    def label(self) -> str:
        return f"{self.algo} s{self.summary.get('seed', '?')} ({self.path.name})"


def load_run(path: Path) -> RunResult:
    path = Path(path)
    summary_path, metrics_path = path / "summary.json", path / "metrics.csv"
    for p in (summary_path, metrics_path):
        if not p.is_file():
            raise FileNotFoundError(f"{path} is not a training run: {p.name} is missing")
    rows = read_metrics(metrics_path)
    if not rows:
        raise ValueError(f"{metrics_path} has no evaluation rows")
    return RunResult(path, json.loads(summary_path.read_text()), rows)


def plot_runs(runs: list[RunResult], out: Path, title: str = "") -> None:
    fig, (ax,) = new_figure(1, width=8.0, height=4.5)
    x_max = max(r.rows[-1]["env_steps"] for r in runs) or 1.0
    colors: dict[str, str] = {}
    cycle = [f"C{i}" for i in range(10)]
    for run in runs:
        color = colors.setdefault(run.algo, cycle[len(colors) % len(cycle)])
        plot_success(ax, run.rows, run.label, color=color, x_max=x_max)
    ax.set_xlabel("env steps")
    ax.set_title(title or "success rate vs env steps")
    ax.legend(fontsize=8, loc="best")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def markdown_table(runs: list[RunResult]) -> str:
    """One line per run: algo, seed, final success with its Wilson interval, best success and
    where, env steps, wall time."""
    lines = [
        "| run | algo | seed | final success [95% CI] | best success (env steps) | env steps | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        final, best = r.rows[-1], max(r.rows, key=lambda x: (x["success_rate"], -x["env_steps"]))
        wall = r.summary.get("timing", {}).get("wall_time_s") or final.get("wall_time_s", math.nan)
        ci = f"[{_pct(final['success_ci_low'])}, {_pct(final['success_ci_high'])}]"
        lines.append(
            f"| {r.path.name} | {r.algo} | {r.summary.get('seed', '?')} "
            f"| {_pct(final['success_rate'])} {ci} "
            f"| {_pct(best['success_rate'])} ({int(best['env_steps'])}) | {int(final['env_steps'])} "
            f"| {wall / 60:.1f} min |"
        )
    return "\n".join(lines)
