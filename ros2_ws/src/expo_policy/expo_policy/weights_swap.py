"""Latest-wins weight updates that never block the control loop.

No ROS. :meth:`WeightsSwapper.offer` takes a decoded PolicyWeights payload; versions not newer
than the running (or an in-flight) one are ignored, and a format other than the running policy's
(``FORMAT`` for a state policy, ``PIXELS_FORMAT`` for a pixel one) is rejected at once.
Accepted offers are decoded and verified (sha256, format, keys, shapes, finite values) by
``backend.prepare`` in one worker thread. :meth:`WeightsSwapper.poll`, called by the control
loop between ticks, commits finished ones in arrival order: the swap itself is a reference
change. Any failure keeps the running weights and is reported, never raised. The worker runs
at normal scheduling even when the control loop that starts it is real time (``rt_priority``),
and :data:`WORKER_NICE` below the process's niceness otherwise: a re-export must not preempt
decisions, nor share a core with them as an equal.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from expo_core.checkpoint import FORMAT, PIXELS_FORMAT
from expo_ros.conversions import WeightsPayload
from expo_ros.realtime import add_nice, set_normal

from .backends import InferenceBackend


@dataclass(frozen=True)
class SwapEvent:
    """What happened to one offered version: ``ok`` swapped in, else ``error`` says why."""

    version: int
    ok: bool
    error: str = ""


#: Niceness added to the verification worker: a swap's decode and compile (~0.2 s of CPU at the
#: published sizes) never take a core the control thread is waiting for.
WORKER_NICE = 10


def _worker_setup() -> None:
    """The worker thread's scheduling: normal (not the control loop's real time), then lower."""
    set_normal()
    add_nice(WORKER_NICE)


class WeightsSwapper:
    """Owns the running weights version of ``backend``; see the module docstring."""

    def __init__(self, backend: InferenceBackend, version: int) -> None:
        self.backend = backend
        self.version = int(version)
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="weights", initializer=_worker_setup
        )
        self._inflight: deque[tuple[int, Future]] = deque()
        self.accepted = 0
        self.rejected = 0
        self.ignored = 0

    @property
    def expected_format(self) -> str:
        """The PolicyWeights ``format`` a swap must carry: that of the running policy's kind."""
        return FORMAT if self.backend.obs_spec is None else PIXELS_FORMAT

    @property
    def newest(self) -> int:
        """The highest version running or being verified."""
        return max([self.version, *(v for v, _ in self._inflight)])

    def offer(self, w: WeightsPayload) -> SwapEvent | None:
        """Queue ``w`` for verification; returns an event when it is ignored or rejected at once."""
        if w.version <= self.newest:
            self.ignored += 1
            return SwapEvent(w.version, False, f"ignored: not newer than v{self.newest}")
        expected = self.expected_format
        if w.format != expected:
            self.rejected += 1
            return SwapEvent(w.version, False, f"rejected: format {w.format!r}, expected {expected!r}")
        self._inflight.append((w.version, self._pool.submit(self.backend.prepare, w.data, w.sha256)))
        return None

    def poll(self) -> list[SwapEvent]:
        """Commit every finished verification, oldest first; returns what happened."""
        events = []
        while self._inflight and self._inflight[0][1].done():
            version, fut = self._inflight.popleft()
            try:
                prepared = fut.result()
            except Exception as e:  # WeightsError, or anything else the decoder raised
                self.rejected += 1
                events.append(SwapEvent(version, False, f"rejected: {e}"))
                continue
            self.backend.commit(prepared)
            self.version = version
            self.accepted += 1
            events.append(SwapEvent(version, True))
        return events

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until the in-flight verifications finish (tests and shutdown only)."""
        for _, fut in list(self._inflight):
            fut.exception(timeout=timeout_s)

    def close(self) -> None:
        """Drop pending verifications and stop the worker (does not wait for a running one)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._inflight.clear()
