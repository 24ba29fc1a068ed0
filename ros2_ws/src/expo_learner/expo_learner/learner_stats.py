"""Learner statistics: one report per period, for the learner_stats topic, the log and TensorBoard.

No ROS. :class:`StatsWindow` averages the flat stats that ``ExpoAgent.update`` returns over a
reporting period and turns counters into rates; :class:`StatsReport` is one period's result;
:class:`TensorBoardLog` writes its scalars as TensorBoard events (``torch.utils.tensorboard``).

Units: ``training_step`` and ``updates_per_second`` count critic gradient steps (as the
LearnerStats message defines them: ``utd`` per agent update); ``updates`` counts agent updates
(``ExpoAgent.update`` calls, one per received transition at the target ratio).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StatsReport:
    """One reporting period.

    achieved_utd: critic steps per transition received since warm-up ended (this session; the
    target is ``utd``); achieved_utd_window: the same over this period only (None when no
    transition arrived in it; above ``utd`` while a backlog drains); updates_per_second:
    critic steps per wall-clock second over this period; losses: means over this period's
    updates of ``ExpoAgent.update``'s stats (critic_loss, q_mean, bc_loss, alpha, ...; empty
    while warming up); sources: transitions per ``Transition.source`` (reloaded + received);
    interventions: ``interventions/...`` counts and rates
    (:meth:`expo_learner.interventions.InterventionStats.scalars`).
    """

    training_step: int
    updates: int
    env_steps_received: int
    online_size: int
    offline_size: int
    achieved_utd: float
    achieved_utd_window: float | None
    updates_per_second: float
    weights_version: int
    backlog: int
    updates_skipped: int
    warmed_up: bool
    losses: dict[str, float] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    interventions: dict[str, float] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Everything as flat named floats (LearnerStats.names/values and TensorBoard tags)."""
        out = {
            "updates": float(self.updates),
            "online_size": float(self.online_size),
            "offline_size": float(self.offline_size),
            "backlog": float(self.backlog),
            "updates_skipped": float(self.updates_skipped),
            "warmed_up": float(self.warmed_up),
        }
        if self.achieved_utd_window is not None:
            out["achieved_utd_window"] = self.achieved_utd_window
        out.update(self.losses)
        out.update({f"transitions/{name}": float(n) for name, n in self.sources.items()})
        out.update(self.interventions)
        return out

    def line(self) -> str:
        """One log line."""
        loss = ", ".join(
            f"{k} {v:.4g}" for k, v in self.losses.items() if k in ("critic_loss", "q_mean", "alpha")
        )
        src = ", ".join(f"{k}: {v}" for k, v in self.sources.items())
        state = "" if self.warmed_up else "warming up, "
        iv = self.interventions
        rate = (
            f", interventions {100 * iv['interventions/step_fraction']:.0f}% of steps and "
            f"{iv['interventions/per_episode']:.2f} takeovers/episode (recent episodes)"
            if "interventions/step_fraction" in iv
            else ""
        )
        window = "-" if self.achieved_utd_window is None else f"{self.achieved_utd_window:.2f}"
        return (
            f"{state}{self.updates} updates ({self.training_step} critic steps), UTD {self.achieved_utd:.2f} "
            f"(period {window}), {self.updates_per_second:.1f} critic steps/s, "
            f"backlog {self.backlog}, skipped {self.updates_skipped}, online {self.online_size}, offline "
            f"{self.offline_size}, weights v{self.weights_version}"
            + (f", {loss}" if loss else "")
            + rate
            + f"; transitions by source {{{src}}}"
        )


class StatsWindow:
    """Accumulates update stats between reports; rates come from counter differences."""

    def __init__(self, now: float, critic_steps: int, owed: int) -> None:
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self._t0, self._steps0, self._owed0 = now, critic_steps, owed

    def add(self, stats: dict[str, float]) -> None:
        """One ``ExpoAgent.update`` result (non-finite values are skipped, not averaged in)."""
        for k, v in stats.items():
            if math.isfinite(v):
                self._sums[k] += float(v)
                self._counts[k] += 1

    def elapsed(self, now: float) -> float:
        return now - self._t0

    def close(self, now: float, critic_steps: int, owed: int) -> tuple[dict[str, float], float, float | None]:
        """``(mean stats, critic steps/s, critic steps per owed transition)`` of the period, then
        start a new one. The ratio is None when nothing was owed in the period."""
        dt = max(now - self._t0, 1e-9)
        steps, owed_n = critic_steps - self._steps0, owed - self._owed0
        means = {k: self._sums[k] / self._counts[k] for k in self._sums}
        self.__init__(now, critic_steps, owed)
        return means, steps / dt, steps / owed_n if owed_n else None


class TensorBoardLog:
    """TensorBoard scalars under ``logdir`` (created); step = critic steps (``training_step``)."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when used

        self.logdir = str(logdir)
        self._writer = SummaryWriter(log_dir=self.logdir, flush_secs=10)

    def write(self, report: StatsReport) -> None:
        step = report.training_step
        self._writer.add_scalar("learner/achieved_utd", report.achieved_utd, step)
        self._writer.add_scalar("learner/updates_per_second", report.updates_per_second, step)
        self._writer.add_scalar("learner/env_steps_received", report.env_steps_received, step)
        self._writer.add_scalar("learner/weights_version", report.weights_version, step)
        for k, v in report.scalars().items():
            self._writer.add_scalar(f"learner/{k}", v, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
