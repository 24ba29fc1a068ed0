"""expo_ros.node_main: a stop signal, its duplicate and a later one that forces the exit."""

from __future__ import annotations

import signal

import pytest
from expo_ros.node_main import REPEAT_GRACE_S, StopRequest


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
    assert executor_name() == "single"
    monkeypatch.setenv(EXECUTOR_ENV, "events")
    assert executor_name() == "events"
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
    finally:
        rclpy.shutdown(context=context)
