"""``expo-sim``: command line entry point of the simulation package.

Subcommands register themselves in :func:`build_parser` (one ``_add_<name>`` function each, with
its handler set as ``func``), so more can be added without touching :func:`main`.

    expo-sim demos --task lift --episodes 50 --quality mixed --seed 0 --out data/lift_mixed.hdf5
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from expo_sim.scripted import QUALITIES, SCRIPTED_TASKS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got '{text}'") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def _add_demos(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demos",
        help="generate scripted demonstrations as a robomimic HDF5 file",
        description="Run the scripted demonstrator and write the official robomimic HDF5 layout.",
    )
    p.add_argument("--task", required=True, choices=SCRIPTED_TASKS, help="task to demonstrate")
    p.add_argument("--episodes", type=_positive_int, default=50, help="number of demos (default 50)")
    p.add_argument(
        "--quality",
        choices=QUALITIES,
        default="proficient",
        help="proficient: clean demos; mixed: noisy, hesitant and failed demos mixed in",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the whole set (default 0)")
    p.add_argument("--out", type=Path, required=True, help="output .hdf5 path (directories are created)")
    p.add_argument("--horizon", type=_positive_int, default=400, help="episode step limit (default 400)")
    p.add_argument("--valid-fraction", type=_fraction, default=0.1, help="share of demos in mask/valid")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-model-file", action="store_true", help="omit the per-demo MJCF attribute")
    p.set_defaults(func=_run_demos)


def _run_demos(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from expo_sim.envs import make_env
    from expo_sim.episodes import generate_demos
    from expo_sim.robomimic_writer import RobomimicWriter

    if args.out.exists() and not args.overwrite:
        print(f"expo-sim demos: error: {args.out} exists (use --overwrite)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    env = make_env(args.task, horizon=args.horizon)
    generator = {"task": args.task, "quality": args.quality, "seed": args.seed, "episodes": args.episodes}
    successes, lengths, success_lengths = 0, [], []
    try:
        with RobomimicWriter(
            args.out,
            env.env_args,
            model_xml=None if args.no_model_file else env.model_xml(),
            extra_attrs={"expo_generator": json.dumps(generator)},
            overwrite=args.overwrite,
        ) as writer:
            bar = tqdm(
                generate_demos(env, args.episodes, args.quality, args.seed), total=args.episodes, unit="demo"
            )
            for ep in bar:
                writer.add(ep)
                lengths.append(len(ep))
                if ep.success:
                    successes += 1
                    success_lengths.append(len(ep))
                bar.set_postfix(success=f"{successes}/{len(lengths)}")
            writer.close(valid_fraction=args.valid_fraction, split_seed=args.seed)
    finally:
        env.close()
    n = len(lengths)
    mean_success = sum(success_lengths) / len(success_lengths) if success_lengths else float("nan")
    print(
        f"{args.task} {args.quality}: {successes}/{n} successful ({100.0 * successes / n:.0f}%), "
        f"mean length {sum(lengths) / n:.1f} steps (successful demos {mean_success:.1f}), "
        f"{sum(lengths)} samples -> {args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expo-sim", description="EXPO simulation tools (robosuite/robomimic)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demos(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
