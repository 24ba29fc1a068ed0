"""PoseHistory (expo_franka.pose_anchor): the newest pose at or before a stamp, within tolerance."""

from __future__ import annotations

import pytest
from expo_franka.pose_anchor import PoseHistory


def test_the_newest_pose_not_later_than_the_stamp_within_tolerance() -> None:
    h: PoseHistory[str] = PoseHistory(keep=4, tolerance_ns=30)
    for stamp, pose in ((10, "a"), (30, "b"), (20, "c")):  # out of order: placed in order
        h.add(stamp, pose)
    assert [h.at(s) for s in (10, 19, 20, 29, 30, 60)] == ["a", "a", "c", "c", "b", "b"]
    assert h.at(61) is None  # 31 after the newest: past the tolerance
    assert h.at(5) is None  # before every remembered pose
    assert (h.hits, h.misses) == (6, 2)
    h.add(30, "b2")  # the same stamp again: replaced
    assert h.at(30) == "b2" and len(h) == 3


def test_only_the_newest_are_kept_and_clear_forgets() -> None:
    h: PoseHistory[int] = PoseHistory(keep=2, tolerance_ns=100)
    for s in (1, 2, 3):
        h.add(s, s)
    assert len(h) == 2 and h.at(1) is None and h.at(2) == 2
    h.clear()
    assert len(h) == 0 and h.at(3) is None


@pytest.mark.parametrize("keep, tolerance", [(0, 10), (1, -1)])
def test_bad_sizes_are_refused(keep: int, tolerance: int) -> None:
    with pytest.raises(ValueError, match="keep >= 1 and tolerance_ns >= 0"):
        PoseHistory(keep=keep, tolerance_ns=tolerance)
