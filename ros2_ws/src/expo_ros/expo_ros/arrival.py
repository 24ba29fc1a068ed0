"""When to poll the executor instead of blocking: a window just before the next observation.

A process that has slept through a long wait (a pixel policy idles ~40 ms per step while the sim
renders, docs/results.md) wakes up slower than a busy one, and on a shared 2-core machine a poll
that never stops slows the inference it waits for. :class:`ArrivalPredictor` keeps the gaps
between the first pieces of the last observations and opens a short window around when the next
one should arrive: from ``lead_s`` before the earliest recent gap has passed, for at most
``max_poll_s``. The spin loop (:mod:`expo_ros.node_main`) polls inside the window and blocks
outside it. Observations stop, slow down or speed up: the window closes after ``max_poll_s`` and
adapts with the gaps that follow.
"""

from __future__ import annotations

from collections import deque


class ArrivalPredictor:
    def __init__(self, lead_s: float, max_poll_s: float, window: int = 20) -> None:
        if not (lead_s >= 0.0 and max_poll_s > 0.0 and window >= 2):
            raise ValueError(
                f"lead_s={lead_s} >= 0, max_poll_s={max_poll_s} > 0, window={window} >= 2 required"
            )
        self.lead_s, self.max_poll_s = lead_s, max_poll_s
        self._gaps: deque[float] = deque(maxlen=window)
        self._last: float | None = None

    def arrived(self, t: float) -> None:
        """The first piece of an observation arrived at monotonic time ``t``."""
        if self._last is not None and t > self._last:
            self._gaps.append(t - self._last)
        self._last = t

    def window(self) -> tuple[float, float] | None:
        """(start, end) monotonic times to poll between, or None (no prediction yet)."""
        if self._last is None or len(self._gaps) < 2:
            return None
        start = self._last + min(self._gaps) - self.lead_s
        return start, start + self.max_poll_s


def spin_timeout(window: tuple[float, float] | None, now: float, idle_s: float) -> float:
    """The executor's timeout at ``now``: 0 (poll) inside the window, until its start before it,
    ``idle_s`` after it or without one."""
    if window is None or now >= window[1]:
        return idle_s
    if now >= window[0]:
        return 0.0
    return min(window[0] - now, idle_s)
