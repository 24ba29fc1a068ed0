"""Real-time scheduling of one thread: SCHED_FIFO at a priority, and back to normal.

A control thread at SCHED_FIFO runs as soon as it is ready and is not preempted by the normal
(SCHED_OTHER) processes around it: on a loaded CPU its decisions keep their unloaded latency
(docs/results.md, issue 15: the lean ONNX decision p99 12.4 ms at normal priority vs 5.2 ms at
FIFO 10 beside a learning study on the same 2 cores). franka_ros2's own controllers run so on
an RT kernel. Linux only; a thread is named by its native id (0 = the calling thread).

Getting it needs the right to: root, CAP_SYS_NICE, or an rtprio limit >= the priority
(``ulimit -r``; /etc/security/limits.conf ``@realtime - rtprio 99``; docker
``--cap-add SYS_NICE --ulimit rtprio=99``). :func:`set_fifo` raises :class:`RealtimeError`
with that advice when the kernel refuses. Threads created after the call inherit the policy:
give helpers that must not preempt the control loop :func:`set_normal` first.
"""

from __future__ import annotations

import os
import threading

#: SCHED_FIFO priorities Linux accepts (1 lowest, 99 highest); 0 means "not real time" here.
MAX_PRIORITY = 99


class RealtimeError(RuntimeError):
    """The kernel refused real-time scheduling (no permission, or no such policy here)."""


def _int_in(value: int, hi: int, what: str, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise ValueError(f"{what} {value!r} is invalid; allowed: an integer in [0, {hi}] ({meaning})")
    return value


def check_priority(priority: int) -> int:
    """``priority`` as an int in [0, 99] (0 = normal scheduling); ValueError otherwise."""
    return _int_in(
        priority, MAX_PRIORITY, "real-time priority", "0 = normal scheduling, 1-99 = SCHED_FIFO priority"
    )


def set_fifo(priority: int, tid: int = 0) -> None:
    """Schedule thread ``tid`` (0: the calling thread) SCHED_FIFO at ``priority`` (1-99); 0 puts
    it back to normal scheduling. Raises RealtimeError when the kernel refuses."""
    check_priority(priority)
    if priority == 0:
        set_normal(tid)
        return
    if not hasattr(os, "sched_setscheduler"):
        raise RealtimeError("real-time scheduling needs Linux (os.sched_setscheduler is missing here)")
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as e:
        raise RealtimeError(
            f"SCHED_FIFO priority {priority} refused ({e.strerror}): run as a user with an rtprio "
            f"limit >= {priority} (ulimit -r; /etc/security/limits.conf '@realtime - rtprio 99'), "
            "or with CAP_SYS_NICE (docker: --cap-add SYS_NICE --ulimit rtprio=99); or set the "
            "priority to 0"
        ) from e
    except OSError as e:
        raise RealtimeError(f"SCHED_FIFO priority {priority} refused: {e}") from e


def set_normal(tid: int = 0) -> None:
    """Put thread ``tid`` (0: the calling thread) back to SCHED_OTHER (always allowed)."""
    if hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))


def saved(tid: int = 0) -> tuple[int, int]:
    """Thread ``tid``'s scheduling (policy, priority), for :func:`restore`."""
    if not hasattr(os, "sched_getscheduler"):
        return (0, 0)
    return os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority


def restore(tid: int, state: tuple[int, int]) -> None:
    """Put thread ``tid`` back to a scheduling :func:`saved` returned (what it inherited)."""
    if hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(tid, state[0], os.sched_param(state[1]))


def probe_fifo(priority: int) -> None:
    """Whether this process may run a thread at SCHED_FIFO ``priority``: tried on a short-lived
    thread of its own, so the caller's scheduling is untouched. RealtimeError (the kernel's
    reason, and how to allow it) when refused; priority 0 always passes."""
    check_priority(priority)
    if priority == 0:
        return
    refused: list[RealtimeError] = []

    def attempt() -> None:
        try:
            set_fifo(priority)
        except RealtimeError as e:
            refused.append(e)

    t = threading.Thread(target=attempt, name="expo-rt-probe")
    t.start()
    t.join()
    if refused:
        raise refused[0]


def _thread_ids() -> list[int]:
    """This process's threads (/proc/self/task); [0] (the calling thread) without /proc."""
    tasks = "/proc/self/task"
    return [int(n) for n in os.listdir(tasks)] if os.path.isdir(tasks) else [0]


def process_to_normal() -> list[str]:
    """Put every thread of this process that runs real time (SCHED_FIFO or SCHED_RR, e.g.
    inherited from a graph launched at SCHED_FIFO) back to SCHED_OTHER; returns what each of them
    ran at ("fifo 10"), empty when none did. Threads started afterwards inherit normal
    scheduling. For processes that must never be real time, such as the learner. Lowering is
    allowed to anyone, except for a thread started with SCHED_RESET_ON_FORK (``chrt -R``) by a
    user without the right to real time: such a thread stays as it was. Without /proc (not
    Linux), only the calling thread is looked at."""
    if not hasattr(os, "sched_getscheduler"):
        return []
    dropped: list[str] = []
    for tid in _thread_ids():
        try:
            was = describe(tid)
            if was.startswith(("fifo", "rr")):
                set_normal(tid)
                dropped.append(was)
        except (ProcessLookupError, FileNotFoundError, PermissionError):  # ended meanwhile, or kept
            continue
    return dropped


#: The niceness Linux allows at most (the lowest CPU priority of a normal thread).
MAX_NICE = 19


def check_nice_increment(increment: int) -> int:
    """``increment`` as an int in [0, 19] (0 = as inherited); ValueError otherwise."""
    return _int_in(increment, MAX_NICE, "nice increment", "0 = as inherited")


def add_nice(increment: int) -> int:
    """Lower the calling thread's CPU priority: its niceness + ``increment`` (at most 19; Linux
    nice values are per thread, and threads it starts afterwards inherit it). Always allowed, never
    undone without privileges. Returns the thread's niceness after (0 and no call off Linux)."""
    check_nice_increment(increment)
    if not hasattr(os, "getpriority"):
        return 0
    nice = os.getpriority(os.PRIO_PROCESS, 0)  # on Linux: this thread's
    if increment:
        nice = min(MAX_NICE, nice + increment)
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return nice


def describe(tid: int = 0) -> str:
    """The thread's scheduling as text: 'fifo 80', 'normal', ... (for diagnostics and logs)."""
    if not hasattr(os, "sched_getscheduler"):
        return "unknown"
    policy = os.sched_getscheduler(tid)
    names = {os.SCHED_OTHER: "normal", os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}
    name = names.get(policy, f"policy {policy}")
    if policy in (os.SCHED_FIFO, os.SCHED_RR):
        return f"{name} {os.sched_getparam(tid).sched_priority}"
    return name
