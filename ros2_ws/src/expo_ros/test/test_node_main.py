"""expo_ros.node_main: a stop signal, its duplicate and a later one that forces the exit; the
drain between the stop request and the deactivation; a finished node's exit code."""

from __future__ import annotations

import signal
import sys

import pytest
from expo_ros.node_main import REPEAT_GRACE_S, StopRequest, drain


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_first_signal_requests_the_stop_and_a_duplicate_is_the_same_request() -> None:
    clock = Clock()
    stop = StopRequest(clock=clock)
    assert not stop.requested
    stop(signal.SIGINT, None)
    assert stop.requested
    # the same Ctrl-C twice: the process group's copy and the one ros2 launch forwards
    clock.t += 0.05
    stop(signal.SIGINT, None)
    clock.t += REPEAT_GRACE_S - 0.1
    stop(signal.SIGTERM, None)
    assert stop.requested


def test_a_later_signal_forces_the_exit() -> None:
    clock = Clock()
    stop = StopRequest(clock=clock)
    stop(signal.SIGINT, None)
    clock.t += REPEAT_GRACE_S + 0.5  # e.g. launch's SIGTERM escalation, 10 s later
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGTERM, None)


def test_the_executor_follows_the_environment(monkeypatch) -> None:
    import rclpy
    from expo_ros.node_main import EXECUTOR_ENV, executor_name, make_executor
    from rclpy.executors import SingleThreadedExecutor

    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert executor_name() == "events"  # the default
    monkeypatch.setenv(EXECUTOR_ENV, "")
    assert executor_name() == "events"
    monkeypatch.setenv(EXECUTOR_ENV, "single")
    assert executor_name() == "single"
    monkeypatch.setenv(EXECUTOR_ENV, "multi")
    with pytest.raises(ValueError, match="EXPO_ROS_EXECUTOR='multi' is invalid; allowed: single, events"):
        executor_name()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        assert isinstance(make_executor("single", context), SingleThreadedExecutor)
        events = make_executor("events", context)
        assert type(events).__name__ == "EventsExecutor"
        events.shutdown()
        # a stderr without a file descriptor (a notebook's, pytest's capsys) is no obstacle
        import io

        monkeypatch.setattr("sys.stderr", io.StringIO())
        events = make_executor("events", context)
        assert type(events).__name__ == "EventsExecutor" and isinstance(sys.stderr, io.StringIO)
        events.shutdown()
        monkeypatch.setattr("sys.__stderr__", None)  # pythonw, a daemon with fd 2 closed
        with pytest.raises(ValueError, match="set EXPO_ROS_EXECUTOR=single"):
            make_executor("events", context)
        assert isinstance(sys.stderr, io.StringIO)
    finally:
        rclpy.shutdown(context=context)


class DrainedNode:
    """A node whose messages arrive at the given spin_once calls (a fake executor drives it)."""

    def __init__(self, arrivals: set[int], quiet_s: float) -> None:
        self.arrivals, self.quiet_s = arrivals, quiet_s
        self.messages_in = 0
        self.draining = False

    def begin_drain(self) -> float:
        self.draining = True
        return self.quiet_s


class Executor:
    """spin_once advances the clock by its timeout and delivers the node's next arrival."""

    def __init__(self, node: DrainedNode, clock: Clock) -> None:
        self.node, self.clock, self.calls = node, clock, 0

    def spin_once(self, timeout_sec: float) -> None:
        assert self.node.draining, "begin_drain comes before any spin"
        self.calls += 1
        if self.calls in self.node.arrivals:
            self.node.messages_in += 1
        self.clock.t += timeout_sec


def test_drain_takes_messages_until_the_quiet_window_passes() -> None:
    clock = Clock()
    node = DrainedNode({1, 2, 6}, quiet_s=0.1)  # call 6 is 0.08 s after call 2: inside the window
    ex = Executor(node, clock)
    assert drain(ex, node, limit_s=1.0, clock=clock) == 3
    assert 6 + 4 <= ex.calls <= 6 + 6  # then ~0.1 s of nothing (0.02 s spins)


def test_drain_stops_at_its_limit_while_messages_keep_coming() -> None:
    clock = Clock()
    node = DrainedNode(set(range(1, 1000)), quiet_s=0.1)
    ex = Executor(node, clock)
    taken = drain(ex, node, limit_s=0.5, clock=clock)
    assert 24 <= taken <= 26 and ex.calls == taken  # 0.5 s of 0.02 s spins


def test_a_node_without_begin_drain_or_declining_it_is_not_spun() -> None:
    class Plain:
        messages_in = 0

    class Refuses:
        def spin_once(self, timeout_sec: float) -> None:
            raise AssertionError("spun a node that does not drain")

    class Declines(Plain):
        def begin_drain(self) -> float:
            return 0.0  # e.g. the policy node in real time: its final hold must not wait

    assert drain(Refuses(), Plain()) == 0
    assert drain(Refuses(), Declines()) == 0


def test_drain_waits_while_the_node_still_expects_messages_up_to_its_own_limit() -> None:
    """``drain_pending()`` (the learner: a transitions publisher is still there) keeps the drain
    going past the quiet window; ``drain_limit_s`` bounds it."""
    clock = Clock()
    node = DrainedNode({1, 30}, quiet_s=0.1)  # the second message 0.58 s later: a slow publisher
    node.drain_pending = lambda: node.messages_in < 2
    node.drain_limit_s = 3.0
    ex = Executor(node, clock)
    assert drain(ex, node, clock=clock) == 2
    node2 = DrainedNode({1}, quiet_s=0.1)
    node2.drain_pending = lambda: True  # a publisher that never goes
    node2.drain_limit_s = 0.3
    ex2 = Executor(node2, clock)
    drain(ex2, node2, clock=clock)
    assert 14 <= ex2.calls <= 16  # 0.3 s of 0.02 s spins


def test_drain_ends_once_the_node_has_what_it_drained_for() -> None:
    """``drain_done()`` (the policy node in real time: the last step's transition is complete)
    ends the drain while messages keep coming; done at once means no spin at all."""
    clock = Clock()
    node = DrainedNode(set(range(1, 1000)), quiet_s=0.1)
    node.drain_done = lambda: node.messages_in >= 5
    ex = Executor(node, clock)
    assert drain(ex, node, limit_s=1.0, clock=clock) == 5 and ex.calls == 5
    node2 = DrainedNode(set(range(1, 1000)), quiet_s=0.1)
    node2.drain_done = lambda: True
    ex2 = Executor(node2, clock)
    assert drain(ex2, node2, limit_s=1.0, clock=clock) == 0 and ex2.calls == 0


_FINISHING_NODE = """
import sys
from rclpy.lifecycle import LifecycleNode
from expo_ros.node_main import run_lifecycle_node

class Done(LifecycleNode):
    def __init__(self):
        super().__init__("node_main_exit_code_test")
        self.active, self.finished = False, True
        if sys.argv[1] != "none":
            self.exit_code = int(sys.argv[1])

    def autostart(self):
        return True

run_lifecycle_node(Done)
"""


@pytest.mark.parametrize("exit_code, expected", [("none", 0), ("0", 0), ("1", 1)])
def test_a_finished_node_exits_with_its_exit_code(exit_code: str, expected: int) -> None:
    """A node that finishes on an error it logged (the sim bridge giving up on a silent learner)
    sets ``exit_code``; the process exits with it, and with 0 when the node has none."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FINISHING_NODE, exit_code], timeout=60, capture_output=True)
    assert done.returncode == expected, done.stderr.decode()[-2000:]
