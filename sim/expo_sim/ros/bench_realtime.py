"""Realtime control over ROS, measured: how fresh the policy's commands are when they take effect.

For each row (a preset's networks, randomly initialized; ``--pixels`` adds a pixel policy per
encoder preset deciding from both 84x84 cameras), one realtime session of the sim graph (sim
bridge on wall time + policy node, separate processes, Fast DDS on loopback) runs until at least
``--steps`` env steps are done. Per row, from the nodes' own diagnostics:

- env steps/s (20 at the nominal 20 Hz) and the bridge's overruns (periods it fell behind wall
  time and skipped ahead);
- observation age: sim time from an observation's stamp to the policy's decision on it (with
  cameras, the frames' render latency is in it: they carry the stamp of the state they show);
- obs -> action: the observation's last piece published -> its command received (bridge, wall);
- action age: sim time from a command's observation to the chunk where it takes effect;
- commands applied, and dropped as late (older than ``max_action_age_ms`` when due); periods
  without a new command (bridge holds);
- frame sets dropped: captured states a newer one replaced before they were rendered (cameras).

Each row records the load average before and after its session. Rows are measured one after
another: compare rows of one run.

Run: ``python -m expo_sim.ros.bench_realtime [--presets published] [--pixels cpu published]
[--no-state] [--steps 400] [--backend auto|torch|onnxruntime] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from expo_sim.ros.bench_ros import load_cell, random_policy_session

PAIRS = (  # (column, p50 key, p99 key)
    ("obs age", "obs_age_p50_ms", "obs_age_p99_ms"),
    ("obs -> action", "obs_to_action_p50_ms", "obs_to_action_p99_ms"),
    ("action age", "action_age_p50_ms", "action_age_p99_ms"),
)


def _pair(row: dict[str, Any], a: str, b: str) -> str:
    return f"{row[a]:.1f} / {row[b]:.1f}"


def _int(row: dict[str, Any], key: str) -> str:
    v = row.get(key, math.nan)
    return str(int(v)) if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    head = ["policy", "env steps", "env steps/s", "overruns"] + [f"{n} p50 / p99 [ms]" for n, _, _ in PAIRS]
    head += ["applied", "dropped late", "bridge holds", "frame sets dropped", "load (1 min) before -> after"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["preset"]]
        cells += [_int(r, "env_steps"), f"{r['env_steps_per_s']:.1f}", _int(r, "bridge_overruns")]
        cells += [_pair(r, a, b) for _, a, b in PAIRS]
        cells += [
            _int(r, k) for k in ("action_age_count", "dropped_late", "bridge_holds", "frame_sets_dropped")
        ]
        cells.append(load_cell(r))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from expo_core.presets import PRESETS

    p = argparse.ArgumentParser(
        prog="python -m expo_sim.ros.bench_realtime", description=__doc__.split("\n")[0]
    )
    p.add_argument("--presets", nargs="+", default=["published"], choices=PRESETS)
    p.add_argument(
        "--pixels",
        nargs="*",
        default=["cpu", "published"],
        choices=["cpu", "published"],
        help="one pixel row per encoder preset and preset (default: cpu published; none: state rows only)",
    )
    p.add_argument("--no-state", action="store_true", help="pixel rows only")
    p.add_argument("--steps", type=int, default=400, help="min env steps per row (default 400: ~20 s)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"])
    p.add_argument("--domain-id", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("runs/bench_realtime"), help="where the JSON goes")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    plan = [] if args.no_state else [(preset, None) for preset in args.presets]
    plan += [(preset, enc) for enc in args.pixels for preset in args.presets]
    if not plan:
        p.error("nothing to run: --no-state without --pixels")
    rows = []
    with tempfile.TemporaryDirectory(prefix="expo-bench-realtime-") as tmp:
        for preset, enc in plan:
            name = preset if enc is None else f"{preset}+pixels-{enc}"
            load = os.getloadavg()
            print(
                f"== {name}: realtime session of >= {args.steps} env steps (load average {load[0]:.2f})",
                flush=True,
            )
            row = random_policy_session(
                preset,
                args.steps,
                Path(tmp),
                enc,
                args.backend,
                realtime=True,
                horizon=200,
                domain_id=args.domain_id,
                progress=False,
            )
            row["loadavg_before"], row["loadavg_after"] = load, os.getloadavg()
            if row["error"] or row["env_steps"] < args.steps:
                print(f"bench-realtime: {name} failed: {row['error'] or 'too few steps'}", file=sys.stderr)
                return 1
            rows.append(row)
    table = markdown_table(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-realtime-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"rows": rows, "table": table}, indent=2, default=str))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
