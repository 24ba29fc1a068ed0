"""What a training run writes for people: metrics.csv, the learning-curve PNG, summary.json.

metrics.csv has one row per evaluation with a fixed set of columns (:data:`COLUMNS`); a value an
algorithm does not have (e.g. ``editor_loss`` for rlpd) is left empty. Training statistics are
means over the updates since the previous row; ``eval_*`` columns describe the evaluation
episodes of the row (see :mod:`expo_sim.train.evaluation`). A file written before a column was
added is rewritten with the current header (the new columns empty) when it is opened. Plots use
matplotlib's Agg canvas directly (no pyplot, no global backend switch), so they work headless and
inside tests.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS: tuple[str, ...] = (
    "env_steps",
    "episodes",
    "updates",
    "success_rate",
    "success_ci_low",
    "success_ci_high",
    "eval_episodes",
    "mean_return",
    "mean_length",
    "train_success_rate",  # share of the training episodes since the previous row that succeeded
    "critic_loss",
    "bc_loss",  # the base's imitation loss on the training minibatches (offline + online)
    "bc_loss_online",  # ... on the most recent online transitions, fixed noise, no training step
    "editor_loss",
    "actor_loss",
    "temperature_loss",
    "alpha",
    "q_mean",  # mean Q of the critic ensemble on the training minibatches
    "target_mean",
    "target_next_q",  # Q of the chosen next actions in the TD targets
    "td_edited_fraction",  # share of TD-target next actions that are edited candidates
    "editor_q",
    "editor_entropy",
    "otf_entropy",  # entropy backups only: H of the candidates' softmax
    "backup_log_prob",  # entropy_backup "paper" only: log p(a*) of the drawn next action
    "actor_entropy",
    "rejected_steps",
    "eval_q",  # the learner's Q of its chosen actions, mean over every evaluated step
    "eval_mc_return",  # Monte-Carlo discounted return of the same steps
    "eval_q_bias",  # eval_q - eval_mc_return: > 0 overestimation
    "eval_edited_fraction",  # share of evaluated steps where EXPO acted with an edited candidate
    "updates_per_s",  # learner updates per second of the online loop since the previous row
    "env_steps_per_s",  # env steps per second of the online loop (evaluation time excluded)
    "eval_time_s",
    "wall_time_s",
)


class MetricsLog:
    """Append-only CSV of evaluation rows with the fixed :data:`COLUMNS` header."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            if header is not None and tuple(header) != COLUMNS:
                if not set(header) <= set(COLUMNS):
                    raise ValueError(f"{self.path}: unexpected columns {header}; expected {list(COLUMNS)}")
                self._rewrite(self.rows())  # an older file: the current header, new columns empty

    def rows(self) -> list[dict[str, float]]:
        """All rows as floats (empty cells -> NaN)."""
        return read_metrics(self.path)

    def append(self, row: Mapping[str, float]) -> None:
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise KeyError(f"metrics row has unknown columns {unknown}")
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k)) for k in COLUMNS})

    def truncate_after(self, env_steps: int) -> int:
        """Drop rows beyond ``env_steps`` (written after the checkpoint a resume starts from).
        Returns how many were dropped."""
        rows = self.rows()
        keep = [r for r in rows if r["env_steps"] <= env_steps]
        if len(keep) != len(rows):
            self._rewrite(keep)
        return len(rows) - len(keep)

    def _rewrite(self, rows: Sequence[Mapping[str, float]]) -> None:
        """Replace the file by ``rows`` under the current header (atomically)."""
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: _fmt(r.get(k)) for k in COLUMNS})
        os.replace(tmp, self.path)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv as floats (empty cells -> NaN), without checking or migrating
    its header: for readers beside the process that writes it (expo-study, expo-compare)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if v != "" else math.nan for k, v in r.items()} for r in csv.DictReader(f)]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic JSON write (tmp + rename) with NaN written as null."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_nan_to_none(data), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def new_figure(rows: int, width: float = 7.0, height: float = 3.0):
    """A Figure on an Agg canvas with ``rows`` stacked axes sharing the x axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def plot_success(ax, rows: Sequence[Mapping[str, float]], label: str, color=None, x_max: float | None = None):
    """Success rate with its Wilson band; a single row (a run that does not learn, e.g. bc) is
    drawn as a dashed horizontal line up to ``x_max``."""
    xs = [r["env_steps"] for r in rows]
    ys = [r["success_rate"] for r in rows]
    lo = [r["success_ci_low"] for r in rows]
    hi = [r["success_ci_high"] for r in rows]
    if len(rows) == 1 and x_max:
        xs, ys, lo, hi = [xs[0], x_max], ys * 2, lo * 2, hi * 2
        (line,) = ax.plot(xs, ys, "--", label=label, color=color)
    else:
        (line,) = ax.plot(xs, ys, "o-", ms=3, label=label, color=color)
    ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("success rate (Wilson 95%)")
    ax.grid(alpha=0.3)


def plot_learning_curve(rows: Sequence[Mapping[str, float]], path: Path, title: str) -> None:
    """Success rate, critic Q (training batches, and the chosen actions of the evaluation against
    their Monte-Carlo returns) and temperature against env steps, saved as a PNG."""
    fig, (ax_s, ax_q, ax_a) = new_figure(3, height=2.4)
    plot_success(ax_s, rows, "eval success")
    ax_s.set_title(title)
    xs = [r["env_steps"] for r in rows]
    q_lines = (
        ("q_mean", "Q on training batches"),
        ("eval_q", "Q of chosen actions (eval)"),
        ("eval_mc_return", "MC return (eval)"),
    )
    for key, label in q_lines:
        ax_q.plot(xs, [r.get(key, math.nan) for r in rows], "o-", ms=3, label=label)
    ax_q.set_ylabel("Q / return")
    ax_q.legend(fontsize=7)
    ax_a.plot(xs, [r.get("alpha", math.nan) for r in rows], "o-", ms=3)
    ax_a.set_ylabel("temperature alpha")
    for ax in (ax_q, ax_a):
        ax.grid(alpha=0.3)
    alphas = [v for v in (r.get("alpha", math.nan) for r in rows) if v > 0]
    if alphas and max(alphas) > 10 * min(alphas):
        ax_a.set_yscale("log")
    ax_a.set_xlabel("env steps")
    fig.savefig(path, dpi=100)
