"""The middleware's own round trip on this host (``python -m expo_sim.ros.bench_dds``): the floor
under the ROS overhead that ``make bench-ros`` reports.

Two processes, as in the sim graph: this one publishes a small message (std_msgs/Int64) on
``ping`` and waits for its echo on ``pong`` from a child process that sends each one back, both
spinning the nodes' executor (``EXPO_ROS_EXECUTOR``, default the EventsExecutor), Fast DDS on
loopback, reliable QoS of depth 10, under a namespace of their own. One row per ``--gap-ms``:
pings back to back (0), or each after an idle pause, as the lockstep loop has one per step
while the bridge steps the physics (~7 ms for lift here): a process that sat idle takes longer
to wake up than a busy one. Each row gives the round trip's p50 / p90 / p99 (interpolated,
``np.percentile``, as the other benches; before session 19, nearest rank) / max [ms] over
``--seconds`` of pings, and how many echoes did not come back within 0.2 s.

A round trip is two hops and two callbacks of the smallest message. A lockstep step of the graph
has more: five messages from the bridge (clock, feedback, joint states, end-effector pose, object
poses), the observation's assembly, the decision, the safety filter and the command back; so
``obs -> action`` minus inference minus this round trip is what the nodes' own Python costs.

``--sched-fifo P`` runs both processes, every thread of theirs, at SCHED_FIFO P (as ``bench_ros
--sched-fifo`` runs the graph); it needs root or an rtprio limit.

Run: ``python -m expo_sim.ros.bench_dds [--gap-ms 0 7] [--seconds 10] [--sched-fifo P]
[--out DIR]``; the JSON goes to ``DIR/bench-dds-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: How long one echo may take before it counts as lost [s].
ECHO_TIMEOUT_S = 0.2
#: How long the two processes may take to discover each other [s].
MATCH_TIMEOUT_S = 30.0


def _qos() -> Any:
    from rclpy.qos import QoSProfile

    return QoSProfile(depth=10)


def echo(namespace: str, seconds: float, parent: int = 0) -> None:
    """The child: echo every ``ping`` on ``pong`` while its parent lives, at most ``seconds`` (the
    parent also kills it when done; a parent killed without that is noticed within 0.5 s)."""
    import rclpy
    from expo_ros.node_main import executor_name, make_executor
    from std_msgs.msg import Int64

    parent = parent or os.getppid()  # given by the parent: one that died before this line is seen too
    timer = threading.Timer(seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    rclpy.init()
    node = rclpy.create_node("bench_dds_echo", namespace=namespace)
    pub = node.create_publisher(Int64, "pong", _qos())
    node.create_subscription(Int64, "ping", pub.publish, _qos())
    executor = make_executor(executor_name())
    executor.add_node(node)
    # spin_once, as our nodes spin: the EventsExecutor's spin() echoed nothing here
    while os.getppid() == parent:
        executor.spin_once(timeout_sec=0.5)
    os._exit(0)


def _stats(rtt_ms: list[float], sent: int, gap_ms: float) -> dict[str, Any]:
    """The row's figures; percentiles interpolated (np.percentile), as the other benches'."""
    n = len(rtt_ms)
    p50, p90, p99 = np.percentile(rtt_ms, [50, 90, 99]) if n else (math.nan,) * 3
    return {
        "gap_ms": gap_ms,
        "sent": sent,
        "lost": sent - n,
        "rtt_p50_ms": float(p50),
        "rtt_p90_ms": float(p90),
        "rtt_p99_ms": float(p99),
        "rtt_max_ms": max(rtt_ms) if n else math.nan,
    }


class _Pinger:
    """This process's side: publishes pings and times their echoes."""

    def __init__(self, namespace: str) -> None:
        import rclpy
        from expo_ros.node_main import executor_name, make_executor
        from std_msgs.msg import Int64

        self._msg_type = Int64
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bench_dds_ping", namespace=namespace, context=self.context)
        self.pub = self.node.create_publisher(Int64, "ping", _qos())
        self.sub = self.node.create_subscription(Int64, "pong", self._on_pong, _qos())
        self.executor = make_executor(executor_name(), context=self.context)
        self.executor.add_node(self.node)
        self._back: dict[int, float] = {}
        self._next = 0

    def _on_pong(self, msg: Any) -> None:
        self._back[int(msg.data)] = time.monotonic()

    def wait_matched(self, child: subprocess.Popen) -> None:
        deadline = time.monotonic() + MATCH_TIMEOUT_S
        while self.pub.get_subscription_count() == 0 or self.sub.get_publisher_count() == 0:
            if child.poll() is not None:
                raise RuntimeError(f"the echo process exited early (code {child.returncode})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the echo process was not matched within {MATCH_TIMEOUT_S:g} s")
            self.executor.spin_once(timeout_sec=0.05)

    def round_trip(self) -> float | None:
        """One ping and its echo [ms]; None when it did not come back in time."""
        i = self._next
        self._next += 1
        msg = self._msg_type()
        msg.data = i
        t0 = time.monotonic()
        self.pub.publish(msg)
        deadline = t0 + ECHO_TIMEOUT_S
        while i not in self._back and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=ECHO_TIMEOUT_S)
        back = self._back.pop(i, None)
        return None if back is None else (back - t0) * 1e3

    def row(self, gap_ms: float, seconds: float) -> dict[str, Any]:
        rtt, sent = [], 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ms = self.round_trip()
            sent += 1
            if ms is not None:
                rtt.append(ms)
            if gap_ms > 0:
                time.sleep(gap_ms / 1e3)
        return _stats(rtt, sent, gap_ms)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def measure(
    gaps_ms: Sequence[float], seconds: float, warmup_s: float = 0.5, sched_fifo: int = 0
) -> list[dict[str, Any]]:
    """One row per gap (module doc); the echo process lives only as long as this call. With
    ``sched_fifo`` both processes run at SCHED_FIFO: this thread from here on, and what it starts
    inherits it (the echo process, the middleware's threads); RealtimeError when the kernel
    refuses."""
    from expo_ros.realtime import set_fifo

    namespace = f"/expo_bench_dds_{os.getpid()}"
    budget = MATCH_TIMEOUT_S + warmup_s + len(gaps_ms) * (seconds + 2.0) + 10.0
    if sched_fifo:
        set_fifo(sched_fifo)  # first: a refusal starts nothing
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "expo_sim.ros.bench_dds",
            "--echo",
            namespace,
            "--parent",
            str(os.getpid()),
            "--seconds",
            f"{budget:.0f}",
        ],
        stdin=subprocess.DEVNULL,
    )
    pinger = None
    try:
        pinger = _Pinger(namespace)
        pinger.wait_matched(child)
        pinger.row(0.0, warmup_s)  # discovery traffic and first-message costs stay out of the rows
        rows = []
        for g in gaps_ms:
            rows.append(pinger.row(float(g), seconds))
            if child.poll() is not None:
                raise RuntimeError(
                    f"the echo process exited during the measurement (code {child.returncode})"
                )
            if rows[-1]["lost"] == rows[-1]["sent"]:
                raise RuntimeError(f"no echo came back in {seconds:g} s (gap {g:g} ms)")
        return rows
    finally:
        child.kill()
        child.wait()
        if pinger is not None:
            pinger.close()


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| gap between pings [ms] | round trips | lost | RTT p50 / p90 / p99 / max [ms] |",
        "|---|---|---|---|",
    ]
    for r in rows:
        rtt = " / ".join(f"{r[k]:.3f}" for k in ("rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms", "rtt_max_ms"))
        lines.append(f"| {r['gap_ms']:g} | {r['sent'] - r['lost']} | {r['lost']} | {rtt} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from expo_ros.node_main import executor_name

    p = argparse.ArgumentParser(prog="python -m expo_sim.ros.bench_dds", description=__doc__.split("\n")[0])
    p.add_argument("--gap-ms", type=float, nargs="+", default=[0.0, 7.0], help="idle pause after each echo")
    p.add_argument("--seconds", type=float, default=10.0, help="pinging time per row (default 10)")
    p.add_argument(
        "--sched-fifo", type=int, default=0, metavar="P", help="both processes at SCHED_FIFO P (1-99)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench_dds"), help="where the JSON result goes")
    p.add_argument("--echo", metavar="NAMESPACE", help=argparse.SUPPRESS)  # the child's role
    p.add_argument("--parent", type=int, default=0, help=argparse.SUPPRESS)  # the child's parent pid
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be > 0")
    if any(g < 0 for g in args.gap_ms):
        p.error("--gap-ms must be >= 0")
    if not 0 <= args.sched_fifo <= 99:
        p.error("--sched-fifo must be in [0, 99]")
    if args.echo:
        echo(args.echo, args.seconds, args.parent)
        return 0
    executor = executor_name()
    sched = f", SCHED_FIFO {args.sched_fifo}" if args.sched_fifo else ""
    print(
        f"bench-dds: round trips of std_msgs/Int64 between two processes, {executor} executor{sched}",
        flush=True,
    )
    try:
        rows = measure(args.gap_ms, args.seconds, sched_fifo=args.sched_fifo)
    except (RuntimeError, TimeoutError) as e:  # RealtimeError is a RuntimeError
        print(f"bench-dds: {e}", file=sys.stderr)
        return 1
    table = markdown_table(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-dds-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {
        "rows": rows,
        "table": table,
        "executor": executor,
        "sched_fifo": args.sched_fifo,
        "loadavg": os.getloadavg(),
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
