"""The default policy of the sim graph: what ``make sim`` and ``ros2 launch expo_bringup
sim.launch.py`` (without ``checkpoint``) run.

The task's demonstrations and the cpu preset's base pretrained on them by imitation
(``<data>/pretrain/``), both built on first use and cached, so later runs start in seconds. The
demonstrations: lift, can, square: ``<data>/<task>_mixed.hdf5``, 50 scripted episodes; stack,
threading: ``<data>/<task>_mimicgen.hdf5``, 100 MimicGen trials from 10 scripted source demos,
validated (:mod:`expo_sim.mimicgen.demo_cache`; needs MimicGen, installed by ``make setup``). ``<data>`` is
:func:`expo_sim.session.run.default_data_dir`: the same folder whichever directory the command
runs from (``$EXPO_DATA_DIR``, else the checkout's ``data/``).

    python -m expo_sim.session.policy --task lift     # builds or reuses; prints one JSON line
    python -m expo_sim.session.policy --task lift --obs pixels   # the pixel base (image demos)
    python -m expo_sim.session.policy --task lift --algo expo-n5-rewarded-bc-beta05-min  # as a variant

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

    from expo_sim.mimicgen.available import MimicGenMissing
    from expo_sim.mimicgen.generate import MimicGenFailed
    from expo_sim.session.run import (
        SessionConfig,
        default_data_dir,
        default_dataset,
        prepare_policy,
        uses_mimicgen_demos,
    )

    p = argparse.ArgumentParser(prog="python -m expo_sim.session.policy", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="lift", choices=SUPPORTED_TASKS, help="task (default lift)")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="demos + bases cache (default: see module doc)"
    )
    p.add_argument("--obs", choices=("state", "pixels"), default="state", help="state (default) or pixels")
    p.add_argument(
        "--algo", default="expo", help="the EXPO variant the base starts as (default expo; docs/learning.md)"
    )
    args = p.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("expo_sim", "expo_core"):  # ours only: robosuite logs its own lines already
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    try:
        cfg = SessionConfig(task=args.task, data_dir=data_dir, obs=args.obs, algo=args.algo)
        _, count = default_dataset(cfg)
        demos = f"{count} MimicGen trials" if uses_mimicgen_demos(cfg) else f"{count} scripted demos"
        if cfg.obs == "pixels":
            log.info(
                "policy: %s pixel base of the cpu preset on %d scripted image demos, cached in %s "
                "(first use: ~30 s per demo under load, then pixel pretraining: ~20 min at load 12)",
                cfg.task,
                count,
                data_dir.resolve(),
            )
        first_use = "~4-12 min of MimicGen generation" if uses_mimicgen_demos(cfg) else "~30 s of demos"
        if cfg.obs == "state":
            log.info(
                "policy: %s base of the cpu preset on %s, cached in %s "
                "(first use: %s, then pretraining: ~3 min on a quiet 2-core machine, up to ~1 h under load)",
                cfg.task,
                demos,
                data_dir.resolve(),
                first_use,
            )
        checkpoint, dataset = prepare_policy(cfg, progress=False)
    except (ValueError, FileNotFoundError, MimicGenMissing, MimicGenFailed) as e:
        print(f"default policy: error: {e}", file=sys.stderr)
        return 2
    log.info("policy ready: %s", checkpoint)
    print(json.dumps({"checkpoint": str(checkpoint), "dataset": str(dataset or "")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
