"""Input watchdog: which inputs of the policy node are missing or too old to act on.

Pure Python, no ROS. The caller stamps each receipt with the node clock in seconds
(``node.get_clock().now().nanoseconds * 1e-9``) and asks :meth:`InputWatchdog.check` with the
same clock, so the watchdog works under sim time (``/clock`` from the sim bridge) as well as on
the wall clock. A stamp more than ``max_age_s`` in the future of ``now`` counts as stale too:
that happens when sim time jumps back (a restarted bridge) and old receipts must not look fresh.

Required inputs gate acting (``ok`` is False while any is stale or missing: the node holds).
Optional inputs (camera, env feedback) never gate; once received, they are reported when stale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """One watched input: ``name`` (topic), ``max_age_s`` > 0 in seconds, ``required``."""

    name: str
    max_age_s: float
    required: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("InputSpec.name must be a non-empty string")
        if not (math.isfinite(self.max_age_s) and self.max_age_s > 0.0):
            raise ValueError(f"InputSpec.max_age_s for '{self.name}' must be > 0 s, got {self.max_age_s}")


@dataclass(frozen=True)
class WatchdogStatus:
    """Result of one check.

    Attributes:
        ok: no required input is stale or missing.
        stale: inputs received before but older than their max age (required and optional).
        missing: required inputs never received (since construction or :meth:`reset`).
        reason: one line saying what is wrong and by how much; "" when nothing is.
    """

    ok: bool
    stale: tuple[str, ...]
    missing: tuple[str, ...]
    reason: str


class InputWatchdog:
    """Tracks the last receive stamp of each input and judges freshness against the caller's clock."""

    def __init__(self, inputs: Iterable[InputSpec] = ()) -> None:
        self._specs: dict[str, InputSpec] = {}
        self._last: dict[str, float] = {}
        self._was_stale: dict[str, bool] = {}
        self._stale_events: dict[str, int] = {}
        for spec in inputs:
            self.add_input(spec.name, spec.max_age_s, spec.required)

    def add_input(self, name: str, max_age_s: float, required: bool = True) -> None:
        """Watch a new input; raises ValueError on a duplicate name or a bad max age."""
        if name in self._specs:
            raise ValueError(f"input '{name}' is already watched")
        self._specs[name] = InputSpec(name, float(max_age_s), required)
        self._was_stale[name] = False
        self._stale_events[name] = 0

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        return tuple(self._specs.values())

    def mark(self, name: str, stamp: float) -> None:
        """Record that ``name`` was received at ``stamp`` (node clock, seconds).

        Unknown names raise KeyError: a typo here would silently disable the watchdog.
        """
        if name not in self._specs:
            raise KeyError(f"input '{name}' is not watched; watched: {sorted(self._specs)}")
        self._last[name] = float(stamp)

    def age(self, name: str, now: float) -> float | None:
        """Seconds since ``name`` was last received, or None if never."""
        last = self._last.get(name)
        return None if last is None else now - last

    def check(self, now: float) -> WatchdogStatus:
        """Judge every input at time ``now`` (node clock, seconds); counts fresh->stale edges."""
        stale: list[str] = []
        missing: list[str] = []
        problems: list[str] = []
        ok = True
        for name, spec in self._specs.items():
            last = self._last.get(name)
            if last is None:
                if spec.required:
                    missing.append(name)
                    problems.append(f"{name} never received")
                    ok = False
                continue
            age = now - last
            is_stale = not math.isfinite(age) or abs(age) > spec.max_age_s
            if is_stale:
                stale.append(name)
                when = f"{age:.3f} s old" if age >= 0 else f"{-age:.3f} s in the future"
                kind = "" if spec.required else " (optional)"
                problems.append(f"{name}{kind} {when} > {spec.max_age_s:.3f} s")
                ok = ok and not spec.required
                if not self._was_stale[name]:
                    self._stale_events[name] += 1
            self._was_stale[name] = is_stale
        reason = ""
        if problems:
            reason = ("hold: " if not ok else "degraded: ") + "; ".join(problems)
        return WatchdogStatus(ok=ok, stale=tuple(stale), missing=tuple(missing), reason=reason)

    @property
    def stale_events(self) -> dict[str, int]:
        """How many times each input went from fresh to stale (a copy)."""
        return dict(self._stale_events)

    def reset(self) -> None:
        """Forget every receipt (e.g. on deactivate); event counts are kept for diagnostics."""
        self._last.clear()
        for name in self._was_stale:
            self._was_stale[name] = False
