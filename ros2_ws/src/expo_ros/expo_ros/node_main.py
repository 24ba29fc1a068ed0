"""Process entry shared by our lifecycle nodes (policy node, sim bridge).

Pip installs have no lifecycle manager, so a node with ``autostart`` configures and activates
itself; Ctrl-C / SIGTERM then deactivate it (for the policy node: a final hold) before a clean
exit 0. Signals only *request* the stop: the spin loop checks the request between callbacks, so
a signal can never land inside a lifecycle transition or a callback (a KeyboardInterrupt raised
there could leave the node stuck in 'activating': no deactivation, no final hold). A second
signal forces the exit, unless it comes within :data:`REPEAT_GRACE_S` of the first: one Ctrl-C
often arrives twice (the terminal signals the whole process group, and ``ros2 launch`` run
without a terminal forwards SIGINT to every node itself), and that must still stop cleanly;
launch's escalation (SIGTERM 10 s later) still forces the exit.

Between the stop request and the deactivation comes the drain (:func:`drain`): a node that
defines ``begin_drain()`` takes the messages already delivered to it, so that a graph stopped
right after its last message loses nothing (the policy node finishes the last step's transition,
the learner records it).

The executor is rclpy's EventsExecutor (``rclpy.experimental`` in Kilted), which dispatches
middleware events from a C++ queue instead of rebuilding a Python wait set for every callback
(~0.1-0.15 ms per wake-up of a node like ours on the project's CPU): it took the closed loop's
ROS overhead down in every paired run since session 6, and a pixel policy's loop met issue 15's
goal only with it (docs/results.md). ``EXPO_ROS_EXECUTOR=single`` in the environment (launched
nodes inherit it) selects rclpy's SingleThreadedExecutor, the fallback should the experimental
executor misbehave on another rclpy.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.signals import SignalHandlerOptions

#: A repeated stop signal within this many seconds of the first is the same request.
REPEAT_GRACE_S = 2.0
#: The longest a stopping node keeps taking messages already delivered to it (:func:`drain`).
DRAIN_LIMIT_S = 1.0
#: The environment variable choosing the executor, and its values.
EXECUTOR_ENV = "EXPO_ROS_EXECUTOR"
EXECUTORS = ("single", "events")
#: The executor when ``$EXPO_ROS_EXECUTOR`` is unset or empty.
DEFAULT_EXECUTOR = "events"


def executor_name() -> str:
    """``$EXPO_ROS_EXECUTOR`` (default :data:`DEFAULT_EXECUTOR`); ValueError naming the variable
    and the allowed values when it is something else."""
    name = os.environ.get(EXECUTOR_ENV, "") or DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r} is invalid; allowed: {', '.join(EXECUTORS)}")
    return name


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


def make_executor(name: str, context: Any = None) -> Any:
    """ "single": rclpy's SingleThreadedExecutor; "events": rclpy.experimental.EventsExecutor
    (``context`` None = rclpy's default context)."""
    if name == "events":
        from rclpy.experimental import EventsExecutor

        if _has_fileno(sys.stderr):
            return EventsExecutor(context=context)
        # rclpy's EventsExecutor calls faulthandler.enable(), which needs a stderr with a file
        # descriptor: a notebook's or a captured stream has none; the process's own is used while
        # it is built (process-wide for that moment: another thread's writes go there too).
        if not _has_fileno(sys.__stderr__):
            raise ValueError(
                "the EventsExecutor needs a standard error stream with a file descriptor (rclpy "
                f"enables faulthandler on it) and this process has none: set {EXECUTOR_ENV}=single"
            )
        saved, sys.stderr = sys.stderr, sys.__stderr__
        try:
            return EventsExecutor(context=context)
        finally:
            sys.stderr = saved
    if name == "single":
        return SingleThreadedExecutor(context=context)
    raise ValueError(f"executor {name!r} is invalid; allowed: {', '.join(EXECUTORS)}")


def drain(
    executor: Any, node: Any, limit_s: float | None = None, clock: Callable[[], float] = time.monotonic
) -> int:
    """A stop was requested: if ``node`` defines ``begin_drain() -> float`` (it stops acting and
    returns its quiet window in s) and counts what it takes in ``messages_in``, spin ``executor``
    until no message came for that window and, if the node defines ``drain_pending() -> bool``,
    it expects none more; at most ``limit_s`` (default: the node's ``drain_limit_s``, else
    :data:`DRAIN_LIMIT_S`). A node whose inputs never go quiet (a robot's sensor streams) ends it
    early with ``drain_done() -> bool``: True once it has what it was draining for. Returns how
    many came."""
    begin = getattr(node, "begin_drain", None)
    if begin is None:
        return 0
    quiet_s = float(begin())
    if quiet_s <= 0:
        return 0  # the node does not drain now
    if limit_s is None:
        limit_s = float(getattr(node, "drain_limit_s", DRAIN_LIMIT_S))
    pending = getattr(node, "drain_pending", lambda: False)
    done = getattr(node, "drain_done", lambda: False)
    start = seen = node.messages_in
    t0 = clock()
    last = t0
    while not done() and (clock() - last < quiet_s or pending()) and clock() - t0 < limit_s:
        executor.spin_once(timeout_sec=min(0.02, quiet_s))
        if node.messages_in != seen:
            seen, last = node.messages_in, clock()
    return seen - start


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal sets ``requested``; one more, later than
    ``grace_s`` after it, raises KeyboardInterrupt (forced exit)."""

    def __init__(self, grace_s: float = REPEAT_GRACE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.requested = False
        self.grace_s = grace_s
        self._clock = clock
        self._first = 0.0

    def __call__(self, signum: int, frame: Any) -> None:
        now = self._clock()
        if not self.requested:
            self.requested, self._first = True, now
        elif now - self._first > self.grace_s:
            raise KeyboardInterrupt


def run_lifecycle_node(
    make_node: Callable[[], LifecycleNode],
    args: list[str] | None = None,
    finalize: Callable[[Any], None] | None = None,
) -> NoReturn:
    """Create the node, autostart it, spin until a stop request, rclpy shutdown or the node's
    ``finished`` flag; then deactivate it and run `finalize(node)`. Exits 0, 1 when autostart
    fails (the node logs why), or, once ``finished``, the node's ``exit_code`` if it has one (a
    run that ended on an error it logged). `make_node` runs after rclpy.init; the node must
    provide ``autostart() -> bool`` and ``active``."""
    try:
        which = executor_name()
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    stop = StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = make_node()
    executor = make_executor(which)
    executor.add_node(node)
    code = 0
    try:
        if not node.autostart():
            node.get_logger().fatal("autostart failed: see the configure error above")
            code = 1
        while code == 0 and not stop.requested and rclpy.ok() and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=0.1)  # returns regularly so a stop request is seen
        if code == 0 and stop.requested and node.active and rclpy.ok():
            drain(executor, node)
        if code == 0 and getattr(node, "finished", False):
            code = int(getattr(node, "exit_code", 0))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.active and rclpy.ok():
            node.trigger_deactivate()
        if finalize is not None and rclpy.ok():
            finalize(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        # Done: what is left is the interpreter's own exit (seconds with torch on a loaded
        # machine), during which Python would put SIG_DFL back and a late SIGTERM (launch's
        # escalation) would kill the process with -15 after a clean stop.
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
    raise SystemExit(code)
