"""A learning-curve figure of chosen algorithms from the study's CSV.

The study redraws ``learning_<task>.png`` with every algorithm the CSV holds for the task; with
many variants that figure is crowded. This draws the same kind of figure (mean over seeds, 95 %
band across seeds) for the algorithms named, in that order, and prints their table.

Run: ``python -m expo_sim.study.figure --task lift --algos expo expo-n5 bc
[--csv docs/results/learning.csv] --out docs/results/learning_lift_nstep.png``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from expo_sim.study.results import markdown_summary, plot_task, read_learning_csv


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expo_sim.study.figure", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--algos", nargs="+", required=True, help="the algorithms to draw, in this order")
    p.add_argument("--csv", type=Path, default=Path("docs/results/learning.csv"))
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = p.parse_args(argv)
    if not args.csv.is_file():
        p.error(f"--csv {args.csv}: no such file")
    points = [q for q in read_learning_csv(args.csv) if q.task == args.task]
    have = sorted({q.algo for q in points})
    missing = [a for a in args.algos if a not in have]
    if missing:
        p.error(f"no rows for {args.task} {missing} in {args.csv}; it has: {have}")
    plot_task(points, args.task, args.out, args.algos)
    print(markdown_summary(points, args.task, args.algos))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
