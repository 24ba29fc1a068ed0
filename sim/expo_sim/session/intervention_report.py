"""Compare sim sessions with and without interventions (issue 18): success per episode, env steps
and wall time to a success level, intervention rate per episode; a CSV, a figure and a table.

    python -m expo_sim.session.intervention_report off=RUN_DIR on=RUN_DIR \\
        --csv docs/results/interventions.csv --png docs/results/interventions.png

Each RUN_DIR is an ``expo-sim session`` run directory: ``summary.json`` (``episode_log``: env
steps and success at each episode's end; ``intervention_episodes`` with ``--intervene``) and
``nodes.log``, where the sim bridge logs each episode's end (``episode N: success|failure after
S steps``); a line's ROS log time minus that of the bridge's ``active`` line is the wall time of
the episodes so far. "Reached" = the first episode at whose end the success over the last
``window`` episodes (the session's "last 10") is at least ``level``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

_LOG_TIME = re.compile(r"^\[sim_bridge[^\]]*\] \[\w+\] \[(\d+\.\d+)\] \[sim_bridge\]: (.*)$")
_EPISODE = re.compile(r"^episode (\d+): (success|failure) after (\d+) steps")


@dataclass(frozen=True)
class Episode:
    index: int
    success: bool
    env_steps: int  # cumulative at the episode's end
    wall_s: float  # since the bridge became active (nan when the log lacks the line)
    intervention_fraction: float  # operator steps / steps (0 without interventions)


def bridge_episode_times(nodes_log: Path) -> dict[int, float]:
    """Episode index -> seconds from the bridge's ``active`` line to that episode's end line."""
    start, ends = None, {}
    for line in nodes_log.read_text(errors="replace").splitlines():
        m = _LOG_TIME.match(line)
        if not m:
            continue
        t, text = float(m.group(1)), m.group(2)
        if start is None and text.startswith("active"):
            start = t
        e = _EPISODE.match(text)
        if e and start is not None:
            ends[int(e.group(1))] = t - start
    return ends


def load_run(run_dir: Path) -> list[Episode]:
    """The episodes of one session run directory (module doc)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    times = bridge_episode_times(run_dir / "nodes.log") if (run_dir / "nodes.log").is_file() else {}
    rates = {e["episode"]: e["step_fraction"] for e in summary.get("intervention_episodes", [])}
    out = []
    for i, (steps, success, _) in enumerate(summary["episode_log"]):
        out.append(Episode(i, bool(success), int(steps), times.get(i, float("nan")), rates.get(i, 0.0)))
    return out


def reached(episodes: list[Episode], level: float = 0.9, window: int = 10) -> Episode | None:
    """The first episode at whose end the last ``window`` episodes' success is >= ``level``."""
    for i in range(window - 1, len(episodes)):
        last = episodes[i + 1 - window : i + 1]
        if sum(e.success for e in last) / window >= level:
            return episodes[i]
    return None


def running_success(episodes: list[Episode], window: int = 10) -> list[float]:
    return [
        sum(e.success for e in episodes[max(0, i + 1 - window) : i + 1]) / min(i + 1, window)
        for i in range(len(episodes))
    ]


def write_csv(runs: dict[str, list[Episode]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "episode", "success", "env_steps", "wall_s", "intervention_fraction"])
        for name, eps in runs.items():
            for e in eps:
                frac = f"{e.intervention_fraction:.3f}"
                w.writerow([name, e.index, int(e.success), e.env_steps, f"{e.wall_s:.1f}", frac])


def plot(runs: dict[str, list[Episode]], path: Path, window: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for name, eps in runs.items():
        x = [e.env_steps for e in eps]
        line = ax.plot(x, running_success(eps, window), "-", label=f"{name}: success, last {window}")[0]
        ax.plot(x, [float(e.success) for e in eps], "o", alpha=0.35, color=line.get_color())
        bx.plot(x, [e.intervention_fraction for e in eps], "o-", color=line.get_color(), label=name)
    ax.set_ylabel("episode success")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="lower right")
    bx.set_ylabel("operator steps / steps")
    bx.set_xlabel("env steps (end of episode)")
    bx.set_ylim(-0.05, 1.05)
    bx.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(runs: dict[str, list[Episode]], level: float = 0.9, window: int = 10) -> str:
    reach = f"reached {level:g} (last {window})"
    head = f"| run | episodes | success | env steps | wall s | {reach} | operator steps |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for name, eps in runs.items():
        r = reached(eps, level, window)
        at = (
            f"episode {r.index}: {r.env_steps} env steps, {r.wall_s:.0f} s"
            if r
            else f"not in {len(eps)} episodes"
        )
        mean = sum(e.intervention_fraction for e in eps) / len(eps) if eps else 0.0
        rows.append(
            f"| {name} | {len(eps)} | {sum(e.success for e in eps)}/{len(eps)} | "
            f"{eps[-1].env_steps if eps else 0} | {eps[-1].wall_s if eps else 0:.0f} | {at} | {mean:.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="NAME=RUN_DIR (an expo-sim session run directory)")
    p.add_argument("--csv", type=Path, default=None)
    p.add_argument("--png", type=Path, default=None)
    p.add_argument("--level", type=float, default=0.9)
    p.add_argument("--window", type=int, default=10)
    a = p.parse_args(argv)
    runs = {}
    for spec in a.runs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not (Path(path) / "summary.json").is_file():
            p.error(f"'{spec}': expected NAME=RUN_DIR with RUN_DIR/summary.json")
        runs[name] = load_run(Path(path))
    if a.csv:
        write_csv(runs, a.csv)
    if a.png:
        plot(runs, a.png, a.window)
    print(table(runs, a.level, a.window))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
