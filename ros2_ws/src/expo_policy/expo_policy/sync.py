"""Exact-stamp synchronization of the observation pieces (message_filters' ExactTime policy).

Pure Python, no ROS (message_filters is not available in pip mode). The sim bridge stamps every
piece of one observation (joint_states, ee_pose, object_poses) with the same header stamp, and
gives each new observation a strictly later stamp. :class:`ExactStampSync` collects pieces per
stamp and emits a set once every named piece has arrived for that stamp, in stamp order: a
complete set older than or equal to the last one emitted is never emitted (it is counted as
``late``), and incomplete sets older than an emitted one are dropped.

Lockstep mode acts once per emitted set; both modes use the sets as candidate next observations
for transitions. Stamps are integer nanoseconds (exact comparison, no float rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ExactStampSync:
    """Groups pieces that carry the same stamp; at most ``max_pending`` incomplete stamps kept."""

    def __init__(self, names: Sequence[str], max_pending: int = 8) -> None:
        if not names or len(set(names)) != len(names):
            raise ValueError(f"ExactStampSync needs distinct piece names, got {list(names)}")
        if max_pending < 1:
            raise ValueError(f"ExactStampSync.max_pending must be >= 1, got {max_pending}")
        self.names = tuple(names)
        self.max_pending = int(max_pending)
        self._sets: dict[int, dict[str, Any]] = {}
        self._last: int | None = None
        self.late = 0  # pieces that arrived for a stamp at or before the last emitted set
        self.dropped = 0  # incomplete sets given up

    @property
    def last_stamp_ns(self) -> int | None:
        """Stamp of the last emitted set, None before the first."""
        return self._last

    def add(self, name: str, stamp_ns: int, payload: Any) -> dict[str, Any] | None:
        """Store one piece; returns ``{name: payload}`` for all names when this completes a set."""
        if name not in self.names:
            raise KeyError(f"piece '{name}' is not synchronized; names: {self.names}")
        if self._last is not None and stamp_ns <= self._last:
            self.late += 1
            return None
        pieces = self._sets.setdefault(int(stamp_ns), {})
        pieces[name] = payload
        if len(pieces) < len(self.names):
            while len(self._sets) > self.max_pending:
                del self._sets[min(self._sets)]
                self.dropped += 1
            return None
        self._last = int(stamp_ns)
        for older in [s for s in self._sets if s <= stamp_ns]:
            self.dropped += older != stamp_ns
            del self._sets[older]
        return pieces

    def reset(self) -> None:
        """Forget pending pieces and the last stamp (e.g. on deactivate or a sim restart)."""
        self._sets.clear()
        self._last = None
