"""Python's cyclic garbage collector, out of a control loop's way.

A node process that has loaded torch, onnxruntime and a policy holds ~314,000 objects the
collector tracks, and its oldest-generation pass scans every one of them, on whichever thread
allocates when the pass falls due (Python 3.11: once the long-lived objects added since the last
such pass reach a quarter of all long-lived ones, e.g. after loading weights): in a configured
policy node (cpu and published presets) a full pass took 128-167 ms (docs/results.md, "Session
20"), about three periods of a 20 Hz arm if it lands on the control thread.

:func:`freeze` collects once and moves every object then alive into the collector's permanent
generation (``gc.freeze``), which no later pass scans: a full pass over the same node then took
~0.02 ms. Objects created later are collected as before. An object frozen that later becomes
part of unreachable cycles is only freed at the next :func:`freeze` or :func:`unfreeze`; for the
policy node that is at most the configured policy's own objects, once a weights swap has
replaced it.

:class:`PauseMeter` times every collection (``gc.callbacks``), so that a node can report its
pauses (the policy node's diagnostics: ``gc_collections``, ``gc_pause_max_ms``,
``gc_pause_total_ms``, ``gc_pause_max_generation``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def freeze(clock: Callable[[], float] = time.perf_counter) -> tuple[int, float]:
    """Unfreeze what an earlier call froze, collect every generation, then freeze every object
    still alive. Returns (objects frozen, seconds the collection and freeze took)."""
    t0 = clock()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count(), clock() - t0


def unfreeze() -> int:
    """Move every frozen object back into the collector's oldest generation; how many there were."""
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    return frozen


class PauseMeter:
    """How many collections ran and how long they paused the process, since :meth:`install`.
    Counts every thread's collections (the collector is process-wide)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._start: float | None = None
        self.collections = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.max_generation = -1  # the generation of the longest pause

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = self._clock()
        elif phase == "stop" and self._start is not None:
            pause = self._clock() - self._start
            self._start = None
            self.collections += 1
            self.total_s += pause
            if pause > self.max_s:
                self.max_s, self.max_generation = pause, int(info.get("generation", -1))

    def install(self) -> PauseMeter:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def uninstall(self) -> None:
        while self in gc.callbacks:
            gc.callbacks.remove(self)

    def values(self) -> dict[str, float | int]:
        """The diagnostics keys: ``gc_collections``, ``gc_pause_max_ms``, ``gc_pause_total_ms``,
        ``gc_pause_max_generation`` (-1 before any collection)."""
        return {
            "gc_collections": self.collections,
            "gc_pause_max_ms": self.max_s * 1e3,
            "gc_pause_total_ms": self.total_s * 1e3,
            "gc_pause_max_generation": self.max_generation,
        }
