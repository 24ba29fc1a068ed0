"""The default policy of the sim graph: what ``make sim`` and ``ros2 launch expo_bringup
sim.launch.py`` (without ``checkpoint``) run.

The task's scripted demonstrations (``<data>/<task>_mixed.hdf5``, 50 episodes) and the cpu
preset's base pretrained on them by imitation (``<data>/pretrain/``), both built on first use
and cached, so later runs start in seconds. ``<data>`` is
:func:`expo_sim.session.run.default_data_dir`: the same folder whichever directory the command
runs from (``$EXPO_DATA_DIR``, else the checkout's ``data/``).

    python -m expo_sim.session.policy --task lift     # builds or reuses; prints one JSON line

The JSON line on stdout, ``{"checkpoint": ..., "dataset": ...}``, is what sim.launch.py reads;
everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    from expo_core.tasks import SUPPORTED_TASKS

    from expo_sim.session.run import SessionConfig, default_data_dir, prepare_policy

    p = argparse.ArgumentParser(prog="python -m expo_sim.session.policy", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="lift", choices=SUPPORTED_TASKS, help="task (default lift)")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="demos + bases cache (default: see module doc)"
    )
    args = p.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("expo_sim", "expo_core"):  # ours only: robosuite logs its own lines already
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    try:
        cfg = SessionConfig(task=args.task, data_dir=data_dir)
        log.info(
            "policy: %s base of the cpu preset on %d scripted demos, cached in %s "
            "(first use: ~30 s of demos, ~3 min of pretraining on 2 cores)",
            cfg.task,
            cfg.demos,
            data_dir.resolve(),
        )
        checkpoint, dataset = prepare_policy(cfg, progress=False)
    except (ValueError, FileNotFoundError) as e:
        print(f"default policy: error: {e}", file=sys.stderr)
        return 2
    log.info("policy ready: %s", checkpoint)
    print(json.dumps({"checkpoint": str(checkpoint), "dataset": str(dataset or "")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
