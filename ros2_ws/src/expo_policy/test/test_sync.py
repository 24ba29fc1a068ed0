"""Exact-stamp synchronization of the observation pieces."""

from __future__ import annotations

import pytest
from expo_policy.sync import ExactStampSync


def test_exact_stamp_sync_emits_complete_sets_in_order() -> None:
    s = ExactStampSync(("a", "b", "c"), max_pending=2)
    assert s.add("a", 10, "a10") is None
    assert s.add("b", 10, "b10") is None
    assert s.add("a", 20, "a20") is None  # a newer set starts before 10 completes
    assert s.add("c", 10, "c10") == {"a": "a10", "b": "b10", "c": "c10"}
    assert s.last_stamp_ns == 10
    assert s.add("b", 10, "late") is None and s.late == 1  # at or before the last set: never emitted
    assert s.add("b", 20, "b20") is None
    assert s.add("c", 20, "c20") == {"a": "a20", "b": "b20", "c": "c20"}


def test_exact_stamp_sync_drops_incomplete_older_sets() -> None:
    s = ExactStampSync(("a", "b"), max_pending=2)
    s.add("a", 1, 1)
    s.add("a", 2, 2)
    s.add("a", 3, 3)  # three incomplete stamps, room for two: stamp 1 is given up
    assert s.dropped == 1
    assert s.add("b", 3, 3) == {"a": 3, "b": 3}
    assert s.dropped == 2  # stamp 2 can never be emitted after 3
    with pytest.raises(KeyError, match="not synchronized"):
        s.add("z", 4, 0)
    s.reset()
    assert s.last_stamp_ns is None and s.add("a", 1, 1) is None
