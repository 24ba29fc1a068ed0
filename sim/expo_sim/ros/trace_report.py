"""Where one lockstep step's time goes: the step traces of the bridge and the policy node
(:mod:`expo_ros.step_trace`), joined by observation stamp into segments.

    EXPO_STEP_TRACE=/tmp/trace expo-sim session --episodes 2     # or: bench_ros --trace DIR
    python -m expo_sim.ros.trace_report /tmp/trace [--json out.json]

Each trace file is ``<node>-<pid>.csv`` with the rows ``event,stamp_ns,t_ns``
(``time.monotonic_ns()``, one clock for all processes). The bridge marks ``feedback_out``,
``obs_first_out`` (before the observation's first piece), ``obs_out`` (after its last) and
``action_in`` (a command for that stamp arrived); the policy node marks ``feedback_in``,
``in:<piece>`` (each observation piece's callback, on entry; a camera frame's before it is
decoded and encoded), ``decide``, ``infer_start``, ``infer_end``, ``action_publish`` and
``action_out`` (after the ``publish()`` call returned).

One directory holds one run of one graph: one bridge and one policy node. The sim clock starts
at 0 in every run, so two runs' (or two actors') stamps would coincide; a directory with more
than one trace of either is refused, naming the files.

A step counts when every one of those events is there for its stamp (the first of each is
taken). Left out: each episode's first observation (no feedback comes before it), the terminal
one (no action), a lockstep timeout's re-publish (a new stamp with no feedback), and steps the
policy did not decide (holds; an operator's command under interventions). A step whose first
publish timed out and was answered late counts from that first publish, where the bridge's own
``obs_to_action`` starts at the re-publish. Lockstep only: in real time the bridge publishes
observations on its own clock and the node may decide several times per stamp.

A second table, the timeline, gives each event's time from the step's ``feedback_out`` (p50 /
p90 / p99): when each message leaves the bridge and when the node's callback for it runs, piece
by piece. Segments (ms; p50 / p90 / p99 / max over the steps, ``np.percentile``): the bridge publishing
the observation, the first hop (its last piece out -> the node's callback for the last piece that
came before the decision), the node's wait between that callback and the decision (other
callbacks, the feedback; with interventions, the teleop answer), decision start -> inference
(weights swap check, watchdog, observation build and checks), inference (a pixel policy's frames
encoded on arrival are not in it: they are encoded in their callbacks, before the ``in:`` mark
of the next piece), the safety filter and command, the action's ``publish()``, the return hop,
and the total (``obs_out`` -> ``action_in``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The events a complete step has, from the bridge's and the policy node's traces.
BRIDGE_EVENTS = ("feedback_out", "obs_first_out", "obs_out", "action_in")
NODE_EVENTS = ("feedback_in", "decide", "infer_start", "infer_end", "action_publish", "action_out")
#: (name, from event, to event); "pieces_in" is the node's last observation-piece callback.
SEGMENTS = (
    ("bridge publishes the observation", "obs_first_out", "obs_out"),
    ("first hop: observation out -> the node's last piece in", "obs_out", "pieces_in"),
    ("the node: last piece in -> decision start", "pieces_in", "decide"),
    ("decision start -> inference (build, checks)", "decide", "infer_start"),
    ("inference", "infer_start", "infer_end"),
    ("inference -> action publish (filter, command)", "infer_end", "action_publish"),
    ("the action's publish() call", "action_publish", "action_out"),
    ("return hop: action published -> the bridge's callback", "action_out", "action_in"),
    ("observation out -> action in", "obs_out", "action_in"),
)
#: Extra segments: the feedback's hop (it goes out before the observation).
FEEDBACK_SEGMENT = ("feedback hop: out -> the node's callback", "feedback_out", "feedback_in")


def read_rows(directory: Path) -> tuple[list[tuple[str, int, int]], int]:
    """Every ``(event, stamp_ns, t_ns)`` row of the ``*.csv`` traces in ``directory``, and how
    many rows the traces dropped when full. FileNotFoundError when there is none, ValueError
    naming a malformed file, or the files when there is more than one bridge or policy trace."""
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise FileNotFoundError(
            f"no step traces (*.csv) in {directory}: was EXPO_STEP_TRACE set for the graph?"
        )
    rows: list[tuple[str, int, int]] = []
    dropped = 0
    roles: dict[str, list[str]] = {"bridge": [], "policy node": []}
    for path in files:
        n0 = len(rows)
        with path.open(newline="") as f:
            reader = csv.reader(f)
            if next(reader, None) != ["event", "stamp_ns", "t_ns"]:
                raise ValueError(f"{path}: not a step trace (header 'event,stamp_ns,t_ns' expected)")
            for i, rec in enumerate(reader, start=2):
                if len(rec) != 3:
                    raise ValueError(f"{path}:{i}: 3 fields expected, got {len(rec)}")
                try:
                    row = (rec[0], int(rec[1]), int(rec[2]))
                except ValueError as e:
                    raise ValueError(f"{path}:{i}: {e}") from e
                if row[0] == "dropped":
                    dropped += row[1]
                else:
                    rows.append(row)
        events = {r[0] for r in rows[n0:]}
        for role, marker in (("bridge", "obs_out"), ("policy node", "decide")):
            if marker in events:
                roles[role].append(path.name)
    for role, names in roles.items():
        if len(names) > 1:
            raise ValueError(
                f"{directory} holds {len(names)} {role} traces ({', '.join(names)}): one run of one graph "
                "per directory (stamps restart at 0 in every run); trace each run into a directory of its own"
            )
    return rows, dropped


def steps(rows: Iterable[tuple[str, int, int]]) -> dict[int, dict[str, int]]:
    """stamp -> {event: t_ns} for the complete steps (module doc): the first of every bridge and
    node event, ``pieces_in`` (the latest piece callback before ``decide``), and the first
    ``in:<piece>`` of each piece the node got for that stamp (before or after its decision)."""
    by_stamp: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for event, stamp, t in rows:
        by_stamp[stamp][event].append(t)
    out: dict[int, dict[str, int]] = {}
    for stamp, ev in by_stamp.items():
        if any(not ev.get(e) for e in BRIDGE_EVENTS + NODE_EVENTS):
            continue
        step = {e: min(ev[e]) for e in BRIDGE_EVENTS + NODE_EVENTS}
        pieces = [t for e, ts in ev.items() if e.startswith("in:") for t in ts if t <= step["decide"]]
        if not pieces:
            continue
        step["pieces_in"] = max(pieces)
        for e, ts in ev.items():  # each piece's own arrival (the timeline)
            if e.startswith("in:"):
                step[e] = min(ts)
        out[stamp] = step
    return out


def summarize(steps_: dict[int, dict[str, int]], dropped: int = 0) -> dict[str, Any]:
    """``{"steps": n, "dropped_rows": dropped, "segments": [{"name", "from", "to", "p50_ms",
    "p90_ms", "p99_ms", "max_ms"}, ...], "timeline": timeline(steps_)}`` (np.percentile,
    linear); ValueError without a complete step."""
    if not steps_:
        raise ValueError("no complete step in the traces (module doc: which events a step needs)")
    segs = []
    for name, a, b in (*SEGMENTS, FEEDBACK_SEGMENT):
        d = np.array([(s[b] - s[a]) * 1e-6 for s in steps_.values()])
        p50, p90, p99 = np.percentile(d, [50, 90, 99])
        ms = {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": d.max()}
        segs.append({"name": name, "from": a, "to": b, **{k: float(v) for k, v in ms.items()}})
    return {"steps": len(steps_), "dropped_rows": dropped, "segments": segs, "timeline": timeline(steps_)}


def timeline(steps_: dict[int, dict[str, int]]) -> list[dict[str, Any]]:
    """When each event of a step happens, counted from the step's ``feedback_out`` (the first
    message out): ``[{"event", "steps", "p50_ms", "p90_ms", "p99_ms"}, ...]`` in order of p50,
    over the steps that have the event (a piece the node did not get in some step is counted
    over the others; a piece that came after the step's decision counts at its arrival). Where a
    message waits shows as the gap between its ``*_out`` and its
    ``in:`` / ``*_in``."""
    events = sorted({e for s in steps_.values() for e in s if e != "pieces_in"})
    out = []
    for e in events:
        d = np.array([(s[e] - s["feedback_out"]) * 1e-6 for s in steps_.values() if e in s])
        p50, p90, p99 = np.percentile(d, [50, 90, 99])
        out.append(
            {"event": e, "steps": len(d), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99)}
        )
    return sorted(out, key=lambda r: (r["p50_ms"], r["event"]))


def markdown_table(summary: dict[str, Any]) -> str:
    head = f"{summary['steps']} complete steps"
    if summary.get("dropped_rows"):
        head += (
            f" ({summary['dropped_rows']} trace rows dropped when a trace was full: later steps are missing)"
        )
    lines = [
        head,
        "",
        "| segment | p50 [ms] | p90 [ms] | p99 [ms] | max [ms] |",
        "|---|---|---|---|---|",
    ]
    for s in summary["segments"]:
        lines.append(
            f"| {s['name']} | {s['p50_ms']:.3f} | {s['p90_ms']:.3f} | {s['p99_ms']:.3f} | {s['max_ms']:.3f} |"
        )
    if summary.get("timeline"):
        lines += [
            "",
            "| event, from the feedback's publish | p50 [ms] | p90 [ms] | p99 [ms] |",
            "|---|---|---|---|",
        ]
        for t in summary["timeline"]:
            lines.append(f"| {t['event']} | {t['p50_ms']:.3f} | {t['p90_ms']:.3f} | {t['p99_ms']:.3f} |")
    return "\n".join(lines)


def report(directory: Path) -> dict[str, Any]:
    """The summary of the traces in ``directory`` (errors as in :func:`read_rows`, :func:`summarize`)."""
    rows, dropped = read_rows(directory)
    return summarize(steps(rows), dropped)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", type=Path, help="the EXPO_STEP_TRACE directory of one run")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = ap.parse_args(argv)
    try:
        summary = report(args.directory)
    except (OSError, ValueError) as e:
        print(f"trace_report: {e}", file=sys.stderr)
        return 2
    print(markdown_table(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
