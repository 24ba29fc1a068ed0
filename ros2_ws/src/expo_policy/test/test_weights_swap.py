"""expo_policy.weights_swap: the verification worker runs below the control thread's priority."""

import os

from expo_core.checkpoint import FORMAT
from expo_policy.weights_swap import WORKER_NICE, WeightsSwapper
from expo_ros.conversions import WeightsPayload


class _Backend:
    """Records the scheduling of the thread that prepares a swap."""

    obs_spec = None

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.committed: list[object] = []

    def prepare(self, data: bytes, sha256: str) -> object:
        self.seen.append((os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)))
        return data

    def commit(self, prepared: object) -> None:
        self.committed.append(prepared)


def test_the_worker_prepares_at_normal_scheduling_and_lower_cpu_priority() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    backend = _Backend()
    swapper = WeightsSwapper(backend, version=1)
    try:
        assert swapper.offer(WeightsPayload(2, b"w2", "0" * 64, FORMAT)) is None
        swapper.wait(10.0)
        assert [e.ok for e in swapper.poll()] == [True] and backend.committed == [b"w2"]
    finally:
        swapper.close()
    assert backend.seen == [(os.SCHED_OTHER, min(19, own + WORKER_NICE))]
    assert WORKER_NICE > 0 and os.getpriority(os.PRIO_PROCESS, 0) == own  # the caller's thread untouched
