"""``expo-bringup``: start the EXPO node graph without ``ros2 launch``.

Examples::

    expo-bringup sim                                  # lift, lockstep, torch backend
    expo-bringup sim --task can --checkpoint runs/can/ckpt --realtime --domain-id 42
    expo-bringup sim --dry-run                        # print the node commands, start nothing
    expo-bringup franka --emulate --episodes 3        # the hardware graph against the emulated Franka
    expo-bringup franka --checkpoint runs/x/ckpt      # our nodes against a running franka_ros2 (dry run)
    expo-bringup franka --checkpoint runs/x/ckpt --send-commands   # ... commands reach the arm
    expo-bringup franka --checkpoint runs/x/ckpt --learn --learner-dir runs/arm   # + local learner

``franka`` starts the policy node, the Franka adapter and the episode manager (operator labels ->
``env_feedback``; ``expo_bringup.franka_graph``), with ``--learn`` also the learner, against
an already running franka_ros2 (same ROS domain and namespace), or with ``--emulate`` against the
sim bridge + Franka emulator. On hardware the adapter runs as a dry run unless
``--send-commands`` is given; ``--dry-run-commands`` forces the dry run in emulation too.

Ctrl-C stops every node cleanly; the exit code is 0 then, or the code of a node that died.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from expo_core.spec import TASK_OBJECT_DIMS

from expo_bringup.franka_graph import ROBOT_TYPES, franka_graph
from expo_bringup.graph import Graph, sim_graph
from expo_bringup.runner import Runner, node_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="expo-bringup", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="graph", required=True)
    sim = sub.add_parser("sim", help="sim bridge + policy node")
    sim.add_argument("--task", default="lift", choices=sorted(TASK_OBJECT_DIMS), help="robomimic task")
    sim.add_argument("--checkpoint", default="", help="policy checkpoint directory ('' = policy.yaml's)")
    sim.add_argument("--backend", default="torch", help="inference backend (torch)")
    sim.add_argument(
        "--realtime", action="store_true", help="20 Hz wall-clock control instead of lockstep sim time"
    )
    _common_arguments(sim)

    franka = sub.add_parser(
        "franka", help="policy node + Franka adapter + episode manager (franka_ros2 or its emulation)"
    )
    franka.add_argument("--task", default="lift", choices=sorted(TASK_OBJECT_DIMS), help="robomimic task")
    franka.add_argument("--checkpoint", default="", help="policy checkpoint ('' = policy.yaml's)")
    franka.add_argument("--backend", default="torch", help="inference backend (torch)")
    franka.add_argument("--robot-type", default="fr3", choices=ROBOT_TYPES, help="franka_ros2 joint prefix")
    franka.add_argument(
        "--emulate", action="store_true", help="sim bridge + Franka emulator instead of franka_ros2"
    )
    mode = franka.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run-commands",
        dest="dry_run_commands",
        action="store_const",
        const=True,
        help="adapter dry run: would-be commands go to dry_run/* only (default on hardware)",
    )
    mode.add_argument(
        "--send-commands",
        dest="dry_run_commands",
        action="store_const",
        const=False,
        help="the adapter sends equilibrium poses and gripper goals (default when emulating)",
    )
    franka.add_argument(
        "--episodes", type=int, default=0, help="--emulate: stop after this many sim episodes (0 = never)"
    )
    franka.add_argument(
        "--learn", action="store_true", help="also start the learner (online fine-tuning from --checkpoint)"
    )
    franka.add_argument("--learner-dir", default="", help="--learn: bags, checkpoints and tensorboard here")
    franka.add_argument("--offline-dataset", default="", help="--learn: robomimic HDF5 for the offline half")
    _common_arguments(franka)
    return parser


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", default="", help="ROS namespace for every node")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID for every node (0-232)")
    p.add_argument("--config-dir", default=None, help="directory of the nodes' YAML files")
    p.add_argument("--stop-timeout", type=float, default=10.0, help="seconds to wait for nodes to exit")
    p.add_argument("--dry-run", action="store_true", help="print the node commands and exit")


def build_graph(args: argparse.Namespace) -> Graph:
    """The graph a parsed command line asks for; ValueError on bad combinations."""
    if args.graph == "sim":
        return sim_graph(
            task=args.task,
            checkpoint=args.checkpoint,
            backend=args.backend,
            realtime=args.realtime,
            namespace=args.namespace,
            config_dir=args.config_dir,
        )
    if args.episodes < 0 or (args.episodes and not args.emulate):
        raise ValueError("--episodes needs --emulate and a count >= 0")
    graph = franka_graph(
        task=args.task,
        checkpoint=args.checkpoint,
        backend=args.backend,
        robot_type=args.robot_type,
        namespace=args.namespace,
        dry_run=args.dry_run_commands,
        emulate=args.emulate,
        learner=args.learn,
        learner_dir=args.learner_dir,
        offline_dataset=args.offline_dataset,
        config_dir=args.config_dir,
    )
    return graph.with_overrides(sim_bridge={"num_episodes": args.episodes}) if args.episodes else graph


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[expo-bringup] %(levelname)s %(message)s")
    try:
        graph = build_graph(args)
        runner = Runner(graph, domain_id=args.domain_id, stop_timeout_s=args.stop_timeout)
    except ValueError as exc:
        print(f"expo-bringup: error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        for node in graph.nodes:
            print(f"[{node.name}] {shlex.join(node_command(node))}")
        return 0
    code = runner.run()
    if runner.first_exit is not None and runner.first_exit[1] != 0:
        name, node_code = runner.first_exit
        print(f"expo-bringup: node '{name}' exited with code {node_code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
