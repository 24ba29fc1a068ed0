"""``expo-sim session``: the arguments of a sim session over ROS (what ``make sim`` runs)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def add_session(sub: argparse._SubParsersAction) -> None:
    from expo_core.presets import PRESETS
    from expo_core.tasks import SUPPORTED_TASKS

    from expo_sim.envs.scripted import QUALITIES

    p = sub.add_parser(
        "session",
        help="bring up sim bridge + policy node over ROS and run evaluation episodes",
        description=(
            "Demonstrations and a pretrained base if none is given (both cached under --data-dir), "
            "then the sim graph through `ros2 launch expo_bringup sim.launch.py`, a live progress "
            "line and a summary."
        ),
    )
    p.add_argument("--task", default="lift", choices=SUPPORTED_TASKS, help="task (default lift)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default 10)")
    p.add_argument("--checkpoint", type=Path, default=None, help="policy checkpoint (default: pretrain one)")
    p.add_argument("--dataset", type=Path, default=None, help="demonstrations to pretrain on")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="demos + bases cache (default: the checkout's data/)"
    )
    p.add_argument(
        "--demos",
        type=int,
        default=None,
        help="demos to generate when none exist (default 50 scripted; stack/threading: MimicGen trials, "
        "default 100)",
    )
    p.add_argument("--quality", choices=QUALITIES, default="mixed", help="quality of generated demos")
    p.add_argument("--preset", choices=PRESETS, default="cpu", help="network/learner preset (default cpu)")
    from expo_sim.session.config import NOT_SESSION_ALGOS
    from expo_sim.train.presets import ALGOS

    p.add_argument(
        "--algo",
        default="expo",
        choices=[a for a in ALGOS if a not in NOT_SESSION_ALGOS],
        metavar="ALGO",
        help="the EXPO variant the pretrained base starts as (default expo; e.g. "
        "expo-n5-rewarded-bc-beta05-min, the one that met the lift target: docs/learning.md); the "
        "policy node acts and the learner node trains with its config",
    )
    p.add_argument("--pretrain-steps", type=int, default=None, help="imitation steps (default: preset's)")
    p.add_argument("--seed", type=int, default=0, help="demo, pretraining and env seed (default 0)")
    p.add_argument("--horizon", type=int, default=400, help="episode step limit (default 400)")
    p.add_argument("--realtime", action="store_true", help="20 Hz wall-clock control instead of lockstep")
    p.add_argument(
        "--backend",
        default="auto",
        help="policy inference backend: auto (default: the fastest here), torch, onnxruntime, tensorrt",
    )
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    p.add_argument("--out", type=Path, default=Path("runs/sim"), help="parent of the run directory")
    p.add_argument("--timeout", type=float, default=0.0, help="wall-clock limit in s (default none)")
    p.add_argument("--learn", action="store_true", help="add the learner: online EXPO fine-tuning over ROS")
    p.add_argument("--learner-dir", type=Path, default=None, help="learner data (default RUN/learner)")
    p.add_argument(
        "--intervene",
        action="store_true",
        help="the task's scripted expert takes over when the policy strays (lift, can, square); "
        "the summary gives the intervention rate per episode",
    )
    p.add_argument(
        "--obs",
        choices=("state", "pixels"),
        default="state",
        help="pixels: the policy sees the two 84x84 cameras and base-frame proprioception, no object "
        "poses (without --checkpoint: image demos and a pixel base, cached under --data-dir)",
    )
    p.add_argument(
        "--plan-mode",
        choices=("off", "receding", "ensemble"),
        default="off",
        help="with --realtime: what the bridge does with the commands' plans (action chunks of a base "
        "with diffusion.chunk_len > 1): off, receding (a period without a new command takes the plan "
        "row due), ensemble (weighted mean of every plan's row); docs/sim_to_real.md",
    )
    p.add_argument(
        "--sched-fifo",
        type=int,
        default=0,
        metavar="P",
        help="run the launched graph (its nodes and their threads) at SCHED_FIFO priority P (1-99; needs "
        "root or an rtprio limit), but the learner, which puts itself back to normal scheduling; this "
        "session process keeps its own scheduling (default 0: off)",
    )
    p.add_argument(
        "--rt-priority",
        type=int,
        default=0,
        metavar="P",
        help="the policy node's control thread at SCHED_FIFO priority P (its rt_priority, 1-99; needs "
        "root or an rtprio limit); with --learn too: the learner's threads then never preempt a "
        "decision (docs/sim_to_real.md) (default 0: off)",
    )
    p.set_defaults(func=run_session_command)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_session_command(args: argparse.Namespace) -> int:
    from expo_ros.realtime import RealtimeError

    from expo_sim.mimicgen.available import MimicGenMissing
    from expo_sim.mimicgen.generate import MimicGenFailed
    from expo_sim.session.run import SessionConfig, format_summary, run_session

    try:
        cfg = SessionConfig(
            task=args.task,
            episodes=args.episodes,
            checkpoint=args.checkpoint,
            dataset=args.dataset,
            **({"data_dir": args.data_dir} if args.data_dir is not None else {}),
            demos=args.demos,
            quality=args.quality,
            preset=args.preset,
            algo=args.algo,
            pretrain_steps=args.pretrain_steps,
            seed=args.seed,
            horizon=args.horizon,
            realtime=args.realtime,
            backend=args.backend,
            domain_id=args.domain_id,
            out=args.out,
            timeout_s=args.timeout,
            learn=args.learn,
            learner_dir=args.learner_dir,
            intervene=args.intervene,
            obs=args.obs,
            plan_mode=args.plan_mode,
            sched_fifo=args.sched_fifo,
            rt_priority=args.rt_priority,
        )
        # SIGTERM (a supervisor, `kill`) ends the session like Ctrl-C: every node is stopped.
        signal.signal(signal.SIGTERM, _interrupt)
        summary = run_session(cfg)
    except (ValueError, FileNotFoundError, MimicGenMissing, MimicGenFailed, RealtimeError) as e:
        print(f"expo-sim session: error: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return int(summary["exit_code"])
