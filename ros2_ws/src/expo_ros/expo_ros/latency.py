"""Rolling latency and loop-rate statistics for diagnostics and benchmarks.

Pure Python + numpy, no ROS. Two independent streams:

- latencies (seconds), from :meth:`LatencyTracker.record` or the :meth:`LatencyTracker.measure`
  context manager (``time.perf_counter``): p50/p99/max/mean over the last ``window`` samples and
  a cumulative count of deadline misses (latency > ``deadline_s``);
- loop ticks (seconds on any monotonic-per-run clock, e.g. the node clock under sim time), from
  :meth:`LatencyTracker.tick`: the loop rate over the last ``window`` ticks. A clock that jumps
  back (sim restart) restarts the rate window instead of producing a negative rate.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Snapshot of a :class:`LatencyTracker`; latencies in seconds, NaN while there is no sample.

    Attributes:
        count: latencies recorded in total (not just in the window).
        p50_s, p99_s, max_s, mean_s: over the window.
        deadline_misses: latencies above the deadline, in total.
        rate_hz: ticks per second over the tick window; NaN with fewer than two ticks.
    """

    count: int
    p50_s: float
    p99_s: float
    max_s: float
    mean_s: float
    deadline_misses: int
    rate_hz: float

    def as_dict(self) -> dict[str, float]:
        """Flat, unit-suffixed scalars (milliseconds) for diagnostics key/values and logs."""
        return {
            "count": float(self.count),
            "p50_ms": self.p50_s * 1e3,
            "p99_ms": self.p99_s * 1e3,
            "max_ms": self.max_s * 1e3,
            "mean_ms": self.mean_s * 1e3,
            "deadline_misses": float(self.deadline_misses),
            "rate_hz": self.rate_hz,
        }


class LatencyTracker:
    """Rolling window of latencies and tick stamps."""

    def __init__(self, window: int = 1000, deadline_s: float | None = None) -> None:
        if window < 2:
            raise ValueError(f"LatencyTracker.window must be >= 2 samples, got {window}")
        if deadline_s is not None and not (math.isfinite(deadline_s) and deadline_s > 0.0):
            raise ValueError(f"LatencyTracker.deadline_s must be > 0 s or None, got {deadline_s}")
        self.window = int(window)
        self.deadline_s = deadline_s
        self._lat: deque[float] = deque(maxlen=self.window)
        self._ticks: deque[float] = deque(maxlen=self.window)
        self._count = 0
        self._misses = 0

    def record(self, latency_s: float) -> bool:
        """Add one latency in seconds; returns True if it missed the deadline.

        Negative or non-finite values are a caller bug and raise ValueError.
        """
        if not (math.isfinite(latency_s) and latency_s >= 0.0):
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {latency_s}")
        self._lat.append(float(latency_s))
        self._count += 1
        missed = self.deadline_s is not None and latency_s > self.deadline_s
        self._misses += int(missed)
        return missed

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Time the ``with`` body on ``time.perf_counter`` and record it (also on exceptions)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.record(time.perf_counter() - t0)

    def tick(self, now_s: float) -> None:
        """Mark one loop iteration at ``now_s`` seconds."""
        if self._ticks and now_s < self._ticks[-1]:
            self._ticks.clear()
        self._ticks.append(float(now_s))

    @property
    def rate_hz(self) -> float:
        if len(self._ticks) < 2:
            return math.nan
        span = self._ticks[-1] - self._ticks[0]
        return (len(self._ticks) - 1) / span if span > 0.0 else math.nan

    def stats(self) -> LatencyStats:
        """Percentiles over the window (O(window); call at diagnostics rate, not per tick)."""
        if self._lat:
            lat = np.fromiter(self._lat, dtype=np.float64, count=len(self._lat))
            p50, p99 = np.percentile(lat, [50.0, 99.0])
            mx, mean = float(lat.max()), float(lat.mean())
        else:
            p50 = p99 = mx = mean = math.nan
        return LatencyStats(
            count=self._count,
            p50_s=float(p50),
            p99_s=float(p99),
            max_s=mx,
            mean_s=mean,
            deadline_misses=self._misses,
            rate_hz=self.rate_hz,
        )

    def reset(self) -> None:
        """Forget everything, counters included (e.g. between benchmark phases)."""
        self._lat.clear()
        self._ticks.clear()
        self._count = 0
        self._misses = 0
