"""The control loop's health, summarized for diagnostics_msgs. Pure Python, no ROS.

:class:`LoopStatus` turns the latency tracker, the watchdog's stale counts and the node's
counters into one (level, message, key/values) report per diagnostics period. Level: WARN
while holding, or when holds or deadline misses happened since the previous report; OK
otherwise. Keys (all cumulative unless noted): ``loop_rate_hz`` (node clock), ``commands_per_wall_s``
(since the previous report), ``latency_p50_ms`` / ``latency_p99_ms`` / ``latency_max_ms`` (rolling
window), ``deadline_ms``, ``deadline_misses``, ``stale_inputs`` and ``stale_<input>``, the
counters (``actions``, ``holds``, ``transitions``, ``weights_*``), ``last_hold_reason``,
``weights_version``, plus whatever ``extra`` the caller adds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from expo_ros.latency import LatencyStats

OK, WARN = "ok", "warn"
Value = float | int | str | bool


class LoopStatus:
    """Remembers the previous report so each one can say what is new."""

    def __init__(self, deadline_ms: float) -> None:
        self.deadline_ms = float(deadline_ms)
        self._holds = 0
        self._misses = 0
        self._wall = (time.monotonic(), 0)

    def report(
        self,
        stats: LatencyStats,
        stale_events: Mapping[str, int],
        counts: Mapping[str, int],
        last_hold_reason: str,
        extra: Mapping[str, Value] | None = None,
    ) -> tuple[str, str, dict[str, Value]]:
        """-> (level OK or WARN, one-line message, key/values)."""
        commands = counts.get("actions", 0) + counts.get("holds", 0)
        t0, n0 = self._wall
        now = time.monotonic()
        self._wall = (now, commands)
        values: dict[str, Value] = {
            "loop_rate_hz": stats.rate_hz,
            "commands_per_wall_s": (commands - n0) / max(now - t0, 1e-9),
            "latency_p50_ms": stats.p50_s * 1e3,
            "latency_p99_ms": stats.p99_s * 1e3,
            "latency_max_ms": stats.max_s * 1e3,
            "deadline_ms": self.deadline_ms,
            "deadline_misses": stats.deadline_misses,
            "stale_inputs": sum(stale_events.values()),
            **{f"stale_{k}": v for k, v in stale_events.items()},
            **counts,
            "last_hold_reason": last_hold_reason,
            **(extra or {}),
        }
        holds = counts.get("holds", 0)
        new_holds, new_misses = holds - self._holds, stats.deadline_misses - self._misses
        self._holds, self._misses = holds, stats.deadline_misses
        if last_hold_reason:
            return WARN, f"holding: {last_hold_reason}", values
        if new_holds or new_misses:
            return WARN, f"{new_holds} holds, {new_misses} deadline misses since the last report", values
        return OK, "acting", values
