"""LaunchProcess's scheduling of the launched graph (``sched_fifo``): checked, inherited by the
child and its threads, and a refusal said plainly. The child here is a short Python script in
place of ``ros2 launch`` (the command is what the scheduling applies to; the sessions' tests run
real launches)."""

from __future__ import annotations

import os
import sys

import pytest
from expo_bringup.launch_process import LaunchProcess

# prints the scheduling policy and priority of its main thread and of a thread it starts
_REPORT = """
import os, threading
def show(who):
    print(who, os.sched_getscheduler(0), os.sched_getparam(0).sched_priority, flush=True)
show("main")
t = threading.Thread(target=show, args=("thread",)); t.start(); t.join()
"""


def _run(sched_fifo: int) -> list[str]:
    lines: list[str] = []
    lp = LaunchProcess("unused", "unused.launch.py", {}, sink=lines.append, sched_fifo=sched_fifo)
    lp.command = [sys.executable, "-c", _REPORT]
    lp.start()
    assert lp.wait(timeout=30) == 0
    return lines


@pytest.mark.parametrize("bad", [-1, 100, 1.5, True])
def test_the_priority_is_checked(bad: object) -> None:
    with pytest.raises(ValueError, match="LaunchProcess.sched_fifo"):
        LaunchProcess("p", "f.launch.py", {}, sched_fifo=bad)  # type: ignore[arg-type]


def test_without_sched_fifo_the_child_keeps_the_parents_scheduling() -> None:
    policy = os.sched_getscheduler(0)
    assert _run(0) == [f"main {policy} {os.sched_getparam(0).sched_priority}"] + [
        f"thread {policy} {os.sched_getparam(0).sched_priority}"
    ]


def test_the_graph_and_its_threads_run_at_the_priority_or_the_refusal_is_said() -> None:
    """Where the kernel allows it (root, an rtprio limit), the child and a thread it starts run
    SCHED_FIFO 7; where it does not (as the probe finds), start() says why and starts nothing.
    The parent is left as it was."""
    from expo_ros.realtime import RealtimeError, probe_fifo

    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    try:
        probe_fifo(7)
        allowed = True
    except RealtimeError:
        allowed = False
    if allowed:
        assert _run(7) == [f"main {os.SCHED_FIFO} 7", f"thread {os.SCHED_FIFO} 7"]
    else:
        with pytest.raises(
            RuntimeError, match="could not start the graph at SCHED_FIFO priority 7: .*refused"
        ):
            _run(7)
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before


def test_a_refusal_says_the_kernels_reason_and_starts_nothing(monkeypatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    lp = LaunchProcess("unused", "unused.launch.py", {}, sched_fifo=10)
    lp.command = [sys.executable, "-c", "pass"]
    with pytest.raises(
        RuntimeError, match=r"priority 10: SCHED_FIFO priority 10 refused \(Operation not permitted\)"
    ):
        lp.start()
    assert not lp.started


def test_a_failed_child_setup_is_said_as_such(monkeypatch) -> None:
    import expo_bringup.launch_process as lp_module

    def broken(sched_fifo: int) -> None:  # runs in the forked child, before exec
        raise OSError("no session for you")

    monkeypatch.setattr(lp_module, "_child_setup", broken)
    lp = LaunchProcess("unused", "unused.launch.py", {})
    lp.command = [sys.executable, "-c", "pass"]
    with pytest.raises(RuntimeError, match="could not start ros2 launch: its setup in the child failed"):
        lp.start()
    assert not lp.started
