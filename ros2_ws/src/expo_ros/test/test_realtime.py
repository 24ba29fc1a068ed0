"""expo_ros.realtime: SCHED_FIFO for one thread, back to normal, and a refusal that says how."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from expo_ros import realtime


def _in_thread(fn):
    """Run fn in a fresh thread (so this test's thread keeps its scheduling); return its result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result(timeout=10)


def _fifo_allowed() -> bool:
    def probe() -> bool:
        try:
            realtime.set_fifo(1)
        except realtime.RealtimeError:
            return False
        realtime.set_normal()
        return True

    return _in_thread(probe)


needs_fifo = pytest.mark.skipif(
    not hasattr(os, "sched_setscheduler") or not _fifo_allowed(),
    reason="SCHED_FIFO is refused here (no rtprio limit or CAP_SYS_NICE)",
)


@pytest.mark.parametrize("bad", [-1, 100, 1.5, True, "80"])
def test_priorities_outside_0_99_are_refused_by_name(bad) -> None:
    with pytest.raises(ValueError, match=r"real-time priority .* allowed: an integer in \[0, 99\]"):
        realtime.check_priority(bad)


@needs_fifo
def test_set_fifo_then_normal_on_the_calling_thread_only() -> None:
    def run() -> tuple[str, str, str]:
        realtime.set_fifo(7)
        seen = realtime.describe()
        other = _in_thread(realtime.describe)  # created after: inherits FIFO 7
        realtime.set_fifo(0)  # 0 = normal
        return seen, other, realtime.describe()

    assert realtime.describe() == "normal"
    seen, inherited, after = _in_thread(run)
    assert (seen, inherited, after) == ("fifo 7", "fifo 7", "normal")
    assert realtime.describe() == "normal"  # this thread was never touched


@needs_fifo
def test_by_thread_id_from_another_thread() -> None:
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def target() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    t = threading.Thread(target=target)
    t.start()
    try:
        ready.wait(10)
        realtime.set_fifo(5, tid[0])
        assert realtime.describe(tid[0]) == "fifo 5"
        realtime.set_normal(tid[0])
        assert realtime.describe(tid[0]) == "normal"
    finally:
        done.set()
        t.join()


def test_a_refusal_says_how_to_allow_it(monkeypatch) -> None:
    def refuse(*_args) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with pytest.raises(realtime.RealtimeError, match=r"priority 80 refused \(Operation not permitted\)") as e:
        realtime.set_fifo(80)
    assert "rtprio" in str(e.value) and "CAP_SYS_NICE" in str(e.value)


def test_add_nice_lowers_the_calling_thread_only() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)

    def lowered() -> tuple[int, int]:
        return realtime.add_nice(5), os.getpriority(os.PRIO_PROCESS, 0)

    assert _in_thread(lowered) == (min(19, own + 5),) * 2
    assert _in_thread(lambda: realtime.add_nice(0)) == own  # 0: as inherited
    assert _in_thread(lambda: realtime.add_nice(19)) == 19  # capped at 19
    assert os.getpriority(os.PRIO_PROCESS, 0) == own
    for bad in (-1, 20, 1.5, True):
        with pytest.raises(ValueError, match="nice increment .* is invalid"):
            realtime.add_nice(bad)


@needs_fifo
def test_process_to_normal_puts_every_realtime_thread_back() -> None:
    """A thread at SCHED_FIFO and one it started (which inherits it) are both put back to normal,
    from a third thread; a process with nothing real time returns an empty list."""
    ready, done = threading.Event(), threading.Event()
    tids: list[int] = []

    def child() -> None:
        tids.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    def parent() -> None:
        realtime.set_fifo(4)
        tids.append(threading.get_native_id())
        c = threading.Thread(target=child)
        c.start()
        done.wait(10)
        c.join()

    p = threading.Thread(target=parent)
    p.start()
    try:
        assert ready.wait(10)
        assert [realtime.describe(t) for t in tids] == ["fifo 4", "fifo 4"]
        assert realtime.process_to_normal() == ["fifo 4", "fifo 4"]
        assert [realtime.describe(t) for t in tids] == ["normal", "normal"]
        assert realtime.process_to_normal() == []
    finally:
        done.set()
        p.join()
    assert realtime.describe() == "normal"


def test_process_to_normal_without_privileges(monkeypatch) -> None:
    """Nothing real time here: nothing to do. Faked real-time threads: each one lowered and
    reported; one the kernel keeps (PermissionError) and one that ended meanwhile are skipped."""
    assert realtime.process_to_normal() == []  # the test process runs at normal scheduling
    assert threading.get_native_id() in realtime._thread_ids()
    rt, kept, gone, plain = 101, 102, 103, 104
    lowered: list[int] = []

    def describe(tid: int = 0) -> str:
        if tid == gone:
            raise ProcessLookupError(3, "No such process")
        return {rt: "fifo 3", kept: "rr 5", plain: "normal"}[tid]

    def set_normal(tid: int = 0) -> None:
        if tid == kept:
            raise PermissionError(1, "Operation not permitted")
        lowered.append(tid)

    monkeypatch.setattr(realtime, "_thread_ids", lambda: [rt, kept, gone, plain])
    monkeypatch.setattr(realtime, "describe", describe)
    monkeypatch.setattr(realtime, "set_normal", set_normal)
    assert realtime.process_to_normal() == ["fifo 3"] and lowered == [rt]
