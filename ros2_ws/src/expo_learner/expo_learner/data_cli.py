"""``expo-data``: move transition data between robomimic HDF5 files and rosbag2 segments.

    expo-data hdf5-to-bag IN.hdf5 OUT_DIR [--segment-mb N] [--task TASK] [--obs pixels]
    expo-data bag-to-hdf5 BAG_DIR... OUT.hdf5 --task lift [--env-args-from REF.hdf5] [--overwrite]
        [--obs pixels [--image-size 84]]
    expo-data report BAG_DIR...

A BAG_DIR is a segment root (the learner's recording directory) or one segment directory. What a
round trip keeps and loses is listed in :mod:`expo_learner.robomimic_bags`. Exit status 0 on
success, 2 on bad input (missing file, unknown or mismatched task, empty bag), with one
``expo-data: error:`` line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys

from expo_core.robomimic_io import read_env_meta
from expo_core.spec import TASK_OBJECT_DIMS
from tqdm import tqdm

from .robomimic_bags import hdf5_to_segments, segments_to_hdf5
from .segment_reader import load_segments


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="expo-data",
        description="Move transition data between robomimic HDF5 files and rosbag2 segments.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("hdf5-to-bag", help="robomimic HDF5 -> transition bag segments")
    a.add_argument("hdf5", help="robomimic HDF5 file")
    a.add_argument("out_dir", help="directory for the segments (must hold none yet)")
    a.add_argument("--segment-mb", type=float, default=64.0, help="segment size limit in MiB (default 64)")
    a.add_argument("--task", choices=sorted(TASK_OBJECT_DIMS), help="default: from the file's env_args")
    _obs_arguments(a)
    b = sub.add_parser("bag-to-hdf5", help="transition bag segments -> robomimic HDF5")
    b.add_argument("bags", nargs="+", metavar="BAG_DIR", help="segment roots or segment directories")
    b.add_argument("out", metavar="OUT.hdf5")
    b.add_argument("--task", required=True, choices=sorted(TASK_OBJECT_DIMS))
    b.add_argument("--env-args-from", metavar="REF.hdf5", help="copy env_args from this robomimic file")
    b.add_argument("--overwrite", action="store_true", help="replace OUT.hdf5 if it exists")
    _obs_arguments(b)
    r = sub.add_parser("report", help="read segments and report counts and damage")
    r.add_argument("bags", nargs="+", metavar="BAG_DIR")
    return p


def _obs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--obs",
        choices=("state", "pixels"),
        default="state",
        help="pixels: image data (obs/<camera>_image in the HDF5 file, images/next_images in the bags)",
    )
    p.add_argument("--image-size", type=int, default=84, help="pixels: frame width = height (default 84)")


def _hdf5_to_bag(args: argparse.Namespace) -> None:
    if not args.segment_mb > 0:
        raise ValueError(f"--segment-mb must be > 0, got {args.segment_mb}")
    with tqdm(unit="transitions", desc="hdf5 -> bag", disable=None, file=sys.stderr) as bar:
        n, segments = hdf5_to_segments(
            args.hdf5,
            args.out_dir,
            task=args.task,
            segment_bytes=max(1, int(args.segment_mb * 2**20)),
            progress=bar.update,
            obs=args.obs,
            image_size=args.image_size,
        )
    print(f"wrote {n} transitions to {len(segments)} segments under {args.out_dir}")


def _bag_to_hdf5(args: argparse.Namespace) -> None:
    env_args = read_env_meta(args.env_args_from) if args.env_args_from else None
    with tqdm(unit="segments", desc="bag -> hdf5", disable=None, file=sys.stderr) as bar:
        demos, n, report = segments_to_hdf5(
            args.bags,
            args.out,
            task=args.task,
            env_args=env_args,
            overwrite=args.overwrite,
            progress=lambda _: bar.update(),
            obs=args.obs,
            image_size=args.image_size,
        )
    print(report.summary())
    print(f"wrote {demos} demos, {n} transitions to {args.out}")


def _report(args: argparse.Namespace) -> None:
    table, report = load_segments(args.bags)
    print(report.summary())
    for name, count in report.messages_per_segment.items():
        print(f"  {name}: {count}")
    if len(table):
        sources = sorted(set(table.source.tolist()))
        print(f"obs dim {table.obs_dim}, action dim {table.act_dim}, sources {sources}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"hdf5-to-bag": _hdf5_to_bag, "bag-to-hdf5": _bag_to_hdf5, "report": _report}
    try:
        commands[args.command](args)
    except (OSError, KeyError, ValueError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"expo-data: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
