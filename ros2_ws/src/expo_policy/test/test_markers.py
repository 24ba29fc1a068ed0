"""RViz markers of an OTF decision: geometry and colours."""

from __future__ import annotations

import numpy as np
import pytest
from expo_policy.markers import clear_markers, decision_markers
from visualization_msgs.msg import Marker

NS = 1_763_900_000_123_456_789


def test_decision_markers_put_targets_at_ee_plus_scaled_action() -> None:
    ee, cand = np.array([0.0, 0.1, 1.0]), np.zeros((4, 7))
    cand[:, 0] = [1.0, -1.0, 0.5, 0.0]
    sent = np.array([0.5, 0, 0, 0, 0, 0, 1.0])
    arr = decision_markers(NS, "world", ee, cand, num_base=2, chosen=2, sent_action=sent, pos_scale=0.05)
    spheres, best, arrow = arr.markers
    assert all(m.header.frame_id == "world" for m in arr.markers)
    assert [p.x for p in spheres.points] == pytest.approx([0.05, -0.05, 0.025, 0.0])
    assert [c.b for c in spheres.colors][:2] == [1.0, 1.0] and spheres.colors[2].r == 1.0  # base, then edits
    assert best.pose.position.x == pytest.approx(0.025)
    assert arrow.points[1].x == pytest.approx(0.025) and arrow.points[0].z == pytest.approx(1.0)
    assert clear_markers(NS, "world").markers[0].action == Marker.DELETEALL
