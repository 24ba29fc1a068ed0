"""``expo-sim``: command line entry point of the simulation package.

Subcommands register themselves in :func:`build_parser` (one ``_add_<name>`` function each, with
its handler set as ``func``), so more can be added without touching :func:`main`.

    expo-sim demos --task lift --episodes 50 --quality mixed --seed 0 --out data/lift_mixed.hdf5
    expo-sim demos --task lift --episodes 10 --cameras agentview,robot0_eye_in_hand --image-size 84 \
        --out data/lift_image.hdf5
    expo-sim demos --task stack --generator mimicgen --episodes 200 --out data/stack_mimicgen.hdf5
    expo-sim add-images data/lift_mixed.hdf5 data/lift_mixed_image.hdf5 --cameras agentview,robot0_eye_in_hand
    expo-sim train ...    (also installed as ``expo-train``; see expo_sim.train.harness)
    expo-sim compare ...  (also installed as ``expo-compare``; see expo_sim.train.compare)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from expo_sim.envs.scripted import QUALITIES, SCRIPTED_TASKS
from expo_sim.mimicgen.generate import MIMICGEN_TASKS
from expo_sim.session.cli import add_session
from expo_sim.train.evaluate_cli import add_evaluate


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
        description="Run the scripted demonstrator and write the official robomimic HDF5 layout. "
        "--generator mimicgen: scripted source demos multiplied by NVIDIA MimicGen, then validated by replay "
        "(docs/mimicgen.md).",
    )
    p.add_argument(
        "--task",
        required=True,
        choices=sorted({*SCRIPTED_TASKS, *MIMICGEN_TASKS}),
        help="task to demonstrate",
    )
    p.add_argument(
        "--episodes",
        type=_positive_int,
        default=50,
        help="number of demos (default 50); with --generator mimicgen the number of MimicGen trials: "
        "the file holds the ones that succeed and pass validation",
    )
    p.add_argument(
        "--generator",
        choices=("scripted", "mimicgen"),
        default="scripted",
        help=f"scripted: the scripted expert ({', '.join(SCRIPTED_TASKS)}); mimicgen: ~10 scripted source "
        f"demos multiplied by MimicGen ({', '.join(sorted(MIMICGEN_TASKS))}; needs make setup)",
    )
    p.add_argument(
        "--source-demos", type=_positive_int, default=10, help="mimicgen: scripted source demos (default 10)"
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        help="mimicgen: folder for the source demos, MimicGen's config, logs and raw output "
        "(default OUT without suffix + _mimicgen)",
    )
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
    p.add_argument(
        "--cameras",
        type=_camera_list,
        default=(),
        help="comma-separated cameras to render into obs/<camera>_image (e.g. agentview,robot0_eye_in_hand; "
        "default none: a low-dim file)",
    )
    _add_image_arguments(p)
    _add_delay_arguments(p, "scripted demos: ")
    p.set_defaults(func=_run_demos, parser=p)


def _add_delay_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(
        "--action-delay-ms",
        type=float,
        default=0.0,
        help=f"{prefix}each action takes effect this late in its 50 ms period, the previous one "
        "in effect until then (latency randomization; default 0)",
    )
    p.add_argument(
        "--action-jitter-ms",
        type=float,
        default=0.0,
        help="uniform +- jitter on --action-delay-ms per step, seeded (default 0)",
    )


def _camera_list(text: str) -> tuple[str, ...]:
    from expo_core.tasks import SUPPORTED_CAMERAS

    cams = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in cams if c not in SUPPORTED_CAMERAS]
    if not cams or unknown:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated cameras from {list(SUPPORTED_CAMERAS)}, got '{text}'"
        )
    if len(set(cams)) != len(cams):
        raise argparse.ArgumentTypeError(f"cameras listed twice in '{text}'")
    return cams


def _image_size(text: str) -> int:
    value = _positive_int(text)
    if not 8 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"expected an image size in [8, 1024], got {value}")
    return value


def _add_image_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image-size", type=_image_size, default=84, help="square frame side in pixels (default 84)"
    )
    p.add_argument(
        "--compression",
        choices=("none", "gzip", "lzf"),
        default="none",
        help="compress frames, in chunks of one frame (default none, as robomimic without --compress)",
    )
    p.add_argument(
        "--no-next-obs-images",
        action="store_true",
        help="leave frames out of next_obs (half the size; robomimic then needs load_next_obs=False)",
    )


def _run_demos(args: argparse.Namespace) -> int:
    from expo_sim.envs.demo_set import write_demo_set

    if args.generator == "mimicgen":
        if args.action_delay_ms or args.action_jitter_ms:
            args.parser.error("--action-delay-ms/--action-jitter-ms apply to scripted demos, not mimicgen")
        return _run_mimicgen_demos(args)
    if args.task not in SCRIPTED_TASKS:
        args.parser.error(f"no scripted demonstrator for '{args.task}'; use --generator mimicgen")
    try:
        summary = write_demo_set(
            args.task,
            args.episodes,
            args.quality,
            args.seed,
            args.out,
            horizon=args.horizon,
            valid_fraction=args.valid_fraction,
            model_file=not args.no_model_file,
            overwrite=args.overwrite,
            cameras=args.cameras,
            camera_size=args.image_size,
            compression=None if args.compression == "none" else args.compression,
            next_obs_images=not args.no_next_obs_images,
            action_delay_ms=args.action_delay_ms,
            action_jitter_ms=args.action_jitter_ms,
        )
    except (FileExistsError, ValueError) as e:
        print(f"expo-sim demos: error: {e}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0


def _run_mimicgen_demos(args: argparse.Namespace) -> int:
    from expo_sim.mimicgen.available import MimicGenMissing
    from expo_sim.mimicgen.generate import MimicGenFailed
    from expo_sim.mimicgen.pipeline import generate_mimicgen_demos

    if args.task not in MIMICGEN_TASKS:
        args.parser.error(
            f"--generator mimicgen is set up for {sorted(MIMICGEN_TASKS)}, not '{args.task}' "
            "(use --generator scripted)"
        )
    try:
        summary = generate_mimicgen_demos(
            args.task,
            args.episodes,
            args.seed,
            args.out,
            source_demos=args.source_demos,
            horizon=args.horizon,
            valid_fraction=args.valid_fraction,
            overwrite=args.overwrite,
            work_dir=args.work_dir,
            cameras=args.cameras,
            camera_size=args.image_size,
            compression=None if args.compression == "none" else args.compression,
            next_obs_images=not args.no_next_obs_images,
        )
    except (MimicGenMissing, MimicGenFailed, FileExistsError, RuntimeError) as e:
        print(f"expo-sim demos: error: {e}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0


def _add_add_images(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "add-images",
        help="add camera frames to a robomimic low-dim file by replaying its states",
        description="Copy IN to OUT, adding obs/<camera>_image frames (and base-frame proprioception) "
        "rendered from each stored MuJoCo state, after checking that the states replay.",
    )
    p.add_argument("src", type=Path, metavar="IN", help="robomimic HDF5 with states (and model_file)")
    p.add_argument("out", type=Path, metavar="OUT", help="output .hdf5 path (directories are created)")
    p.add_argument(
        "--cameras",
        type=_camera_list,
        default=("agentview", "robot0_eye_in_hand"),
        help="comma-separated cameras (default agentview,robot0_eye_in_hand)",
    )
    _add_image_arguments(p)
    p.add_argument(
        "--state-tol",
        type=float,
        default=1e-3,
        help="largest |qpos| error of the open-loop replay before a demo counts as diverged (default 1e-3)",
    )
    p.add_argument("--strict", action="store_true", help="fail on a demo whose states do not replay")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_add_images)


def _run_add_images(args: argparse.Namespace) -> int:
    from expo_sim.envs.add_images import add_images

    try:
        summary = add_images(
            args.src,
            args.out,
            args.cameras,
            args.image_size,
            compression=None if args.compression == "none" else args.compression,
            next_obs_images=not args.no_next_obs_images,
            state_tol=args.state_tol,
            strict=args.strict,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"expo-sim add-images: error: {e}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from expo_core.presets import PRESETS
    from expo_core.tasks import SUPPORTED_TASKS

    from expo_sim.train.presets import ALGOS

    p.add_argument("--task", required=True, choices=SUPPORTED_TASKS, help="simulated task")
    p.add_argument("--dataset", required=True, type=Path, help="robomimic HDF5 demonstrations of the task")
    p.add_argument("--algo", default="expo", choices=ALGOS, help="algorithm (default expo)")
    p.add_argument("--env-steps", type=_nonneg_int, default=20_000, help="online env steps (default 20000)")
    p.add_argument("--eval-every", type=_positive_int, default=2_000, help="env steps between evaluations")
    p.add_argument(
        "--eval-episodes", type=_positive_int, default=20, help="episodes per evaluation (default 20)"
    )
    p.add_argument("--seed", type=_nonneg_int, default=0, help="run seed (default 0)")
    p.add_argument("--out", required=True, type=Path, help="run directory (created)")
    p.add_argument("--preset", default="cpu", choices=PRESETS, help="network/learner preset (default cpu)")
    p.add_argument("--pretrain-steps", type=_nonneg_int, help="base imitation steps (default: the preset's)")
    p.add_argument("--warmup-steps", type=_nonneg_int, help="env steps before the first update (preset's)")
    p.add_argument("--random-warmup", action="store_true", help="uniform random actions during warm-up")
    p.add_argument("--horizon", type=_positive_int, default=400, help="episode step limit (default 400)")
    p.add_argument("--pretrain-dir", type=Path, help="cache of pretrained bases (default OUT/pretrain)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument(
        "--initial-eval",
        choices=("base", "policy"),
        default="base",
        help="what env step 0 evaluates: the pretrained base alone (default; cached per base) or the "
        "algorithm's own policy (EXPO: OTF with untrained critics)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads (default 1: these small networks gain little from more, and threads "
        "oversubscribed by other processes make every call many times slower)",
    )
    p.add_argument(
        "--chunk-len",
        type=_positive_int,
        default=1,
        help="action chunks: the base predicts this many future actions per sample (1..32, default 1 "
        "= none); its own cached base; not with --algo rlpd",
    )
    p.add_argument(
        "--execute-steps",
        type=_positive_int,
        default=1,
        help="evaluations apply each decision's action and the next N-1 actions of its plan before "
        "deciding again (receding horizon; default 1 = decide every step; <= --chunk-len)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_delay_arguments(p, "online episodes and evaluations: ")


def _run_train(args: argparse.Namespace) -> int:
    import torch

    from expo_sim.train.harness import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = TrainConfig(
            task=args.task,
            dataset=args.dataset,
            out=args.out,
            algo=args.algo,
            env_steps=args.env_steps,
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            seed=args.seed,
            preset=args.preset,
            pretrain_steps=args.pretrain_steps,
            warmup_steps=args.warmup_steps,
            random_warmup=args.random_warmup,
            horizon=args.horizon,
            pretrain_dir=args.pretrain_dir,
            resume=args.resume,
            progress=not args.no_progress,
            initial_eval=args.initial_eval,
            action_delay_ms=args.action_delay_ms,
            action_jitter_ms=args.action_jitter_ms,
            chunk_len=args.chunk_len,
            execute_steps=args.execute_steps,
        )
        summary = train(cfg, command=args.command_line)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{args.prog}: error: {msg}", file=sys.stderr)
        return 2
    lo, hi = summary["final_ci"]
    print(
        f"{summary['algo']} on {summary['task']}: final success {summary['final_success']:.2f} "
        f"[{lo:.2f}, {hi:.2f}] at {summary['env_steps']} env steps, best {summary['best_success']:.2f} "
        f"(at {summary['best_env_steps']}), {summary['timing']['wall_time_s'] / 60:.1f} min -> {args.out}"
    )
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="pretrain on demonstrations, then learn online in the simulator",
        description="Offline pretraining, then online learning with periodic evaluation (expo_sim.train).",
    )
    add_train_arguments(p)
    p.set_defaults(func=_run_train, prog="expo-sim train")


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="run directories written by expo-train")
    p.add_argument("--out", required=True, type=Path, help="output PNG")
    p.add_argument("--title", default="", help="plot title")


def _run_compare(args: argparse.Namespace) -> int:
    from expo_sim.train.compare import load_run, markdown_table, plot_runs

    try:
        runs = [load_run(p) for p in args.runs]
    except (FileNotFoundError, ValueError) as e:
        print(f"{args.prog}: error: {e}", file=sys.stderr)
        return 2
    plot_runs(runs, args.out, args.title)
    print(markdown_table(runs))
    print(f"\nplot: {args.out}")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="plot several training runs together and print a table",
        description="Success curves of several expo-train runs on one plot, and a markdown table.",
    )
    add_compare_arguments(p)
    p.set_defaults(func=_run_compare, prog="expo-sim compare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expo-sim", description="EXPO simulation tools (robosuite/robomimic)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demos(sub)
    _add_add_images(sub)
    _add_train(sub)
    _add_compare(sub)
    add_session(sub)
    add_evaluate(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = ["expo-sim", *argv]
    _setup_logging(args.verbose)
    return int(args.func(args))


def _standalone(prog: str, description: str, add_arguments, func, argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.prog = prog
    args.command_line = [prog, *argv]
    _setup_logging(args.verbose)
    return int(func(args))


def train_main(argv: Sequence[str] | None = None) -> int:
    """``expo-train``: the same as ``expo-sim train``."""
    return _standalone(
        "expo-train",
        "Pretrain on demonstrations, then learn online (expo_sim.train.harness).",
        add_train_arguments,
        _run_train,
        argv,
    )


def compare_main(argv: Sequence[str] | None = None) -> int:
    """``expo-compare``: the same as ``expo-sim compare``."""
    return _standalone(
        "expo-compare",
        "Compare expo-train runs: one plot, one table.",
        add_compare_arguments,
        _run_compare,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
