"""Python's cyclic garbage collector, out of a control loop's way.

A node process that has loaded torch, onnxruntime and a policy holds a few hundred thousand
objects the collector tracks, and its oldest-generation pass scans every one of them, on
whichever thread allocates when the pass falls due: in the policy node (cpu preset, ONNX Runtime
backend) one such pass took 148 ms inside a 1600-step bench session (docs/results.md, session
20), on a thread that must decide every 50 ms on an arm.

:func:`freeze` collects once and moves every object then alive into the collector's permanent
generation (``gc.freeze``), which no later pass scans: the same pass took 1.7 ms after it.
Objects created later are collected as before. An object frozen that later becomes part of
unreachable cycles is only freed at the next :func:`freeze` (which unfreezes first) or never;
for the policy node that is at most the configured policy's own objects, once a weights swap has
replaced it.

:class:`PauseMeter` times every collection (``gc.callbacks``), so that a node can report its
pauses (the policy node's diagnostics: ``gc_collections``, ``gc_pause_max_ms``,
``gc_pause_total_ms``).
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
