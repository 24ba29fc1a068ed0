"""``expo-bringup``: start the EXPO node graph without ``ros2 launch``.

Examples::

    expo-bringup sim                                  # lift, lockstep, torch backend
    expo-bringup sim --task can --checkpoint runs/can/ckpt --realtime --domain-id 42
    expo-bringup sim --dry-run                        # print the node commands, start nothing

Ctrl-C stops every node cleanly; the exit code is 0 then, or the code of a node that died.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from expo_core.spec import TASK_OBJECT_DIMS

from expo_bringup.graph import sim_graph
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
    sim.add_argument("--namespace", default="", help="ROS namespace for every node")
    sim.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID for every node (0-232)")
    sim.add_argument("--config-dir", default=None, help="directory with policy.yaml and sim_bridge.yaml")
    sim.add_argument("--stop-timeout", type=float, default=10.0, help="seconds to wait for nodes to exit")
    sim.add_argument("--dry-run", action="store_true", help="print the node commands and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[expo-bringup] %(levelname)s %(message)s")
    try:
        graph = sim_graph(
            task=args.task,
            checkpoint=args.checkpoint,
            backend=args.backend,
            realtime=args.realtime,
            namespace=args.namespace,
            config_dir=args.config_dir,
        )
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
