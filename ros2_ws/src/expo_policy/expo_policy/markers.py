"""RViz markers of one OTF decision: where each candidate and the sent action would move the hand.

Pure function of numpy arrays to ``visualization_msgs/MarkerArray``. A translational action
``a[:3]`` moves the end effector by ``pos_scale * a[:3]`` meters in one control step (OSC_POSE),
so candidate k's target is ``ee_pos + pos_scale * candidates[k, :3]``, drawn in the ``ee_pose``
frame:

- ns ``candidates``: one sphere per candidate, blue for base samples, orange for edits, the
  chosen one larger;
- ns ``sent``: a green arrow from the hand to the target of the action actually sent (after the
  safety filter).

- ns ``status``: a text above the hand with the control loop's health (:func:`status_marker`,
  at the diagnostics rate), so RViz shows the diagnostics next to the scene.

Holds publish :func:`clear_markers` so no stale target stays on screen.
"""

from __future__ import annotations

import numpy as np
from expo_ros.conversions import header
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

_BASE = ColorRGBA(r=0.2, g=0.4, b=1.0, a=0.8)
_EDIT = ColorRGBA(r=1.0, g=0.55, b=0.0, a=0.8)
_SENT = ColorRGBA(r=0.1, g=0.9, b=0.2, a=1.0)


def _point(p: np.ndarray) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def decision_markers(
    ns: int,
    frame_id: str,
    ee_pos: np.ndarray,
    candidates: np.ndarray,
    num_base: int,
    chosen: int,
    sent_action: np.ndarray,
    pos_scale: float,
) -> MarkerArray:
    """Markers for ``candidates (K, d)`` (rows < ``num_base`` are base samples) and the sent action."""
    ee = np.asarray(ee_pos, dtype=np.float64).reshape(3)
    targets = ee + pos_scale * np.asarray(candidates, dtype=np.float64)[:, :3]
    hdr = header(ns, frame_id)
    spheres = Marker(header=hdr, ns="candidates", id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
    spheres.pose.orientation.w = 1.0
    spheres.scale = Vector3(x=0.008, y=0.008, z=0.008)
    spheres.points = [_point(t) for t in targets]
    spheres.colors = [_BASE if k < num_base else _EDIT for k in range(len(targets))]
    best = Marker(header=hdr, ns="candidates", id=1, type=Marker.SPHERE, action=Marker.ADD)
    best.pose.position = _point(targets[chosen])
    best.pose.orientation.w = 1.0
    best.scale = Vector3(x=0.016, y=0.016, z=0.016)
    best.color = _BASE if chosen < num_base else _EDIT
    arrow = Marker(header=hdr, ns="sent", id=0, type=Marker.ARROW, action=Marker.ADD)
    arrow.pose.orientation.w = 1.0
    arrow.points = [_point(ee), _point(ee + pos_scale * np.asarray(sent_action, dtype=np.float64)[:3])]
    arrow.scale = Vector3(x=0.004, y=0.008, z=0.008)  # shaft diameter, head diameter, head length
    arrow.color = _SENT
    return MarkerArray(markers=[spheres, best, arrow])


def clear_markers(ns: int, frame_id: str) -> MarkerArray:
    """One DELETEALL marker: removes this publisher's markers in RViz."""
    return MarkerArray(markers=[Marker(header=header(ns, frame_id), action=Marker.DELETEALL)])


_STATUS_OK = ColorRGBA(r=1.0, g=1.0, b=1.0, a=0.9)
_STATUS_WARN = ColorRGBA(r=1.0, g=0.3, b=0.2, a=1.0)


def status_marker(ns: int, frame_id: str, position: np.ndarray, text: str, warn: bool) -> MarkerArray:
    """A camera-facing text (2.5 cm letters) at ``position`` (3,) [m]; red when ``warn``."""
    hdr = header(ns, frame_id)
    m = Marker(header=hdr, ns="status", id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    m.pose.position = _point(np.asarray(position, dtype=np.float64).reshape(3))
    m.pose.orientation.w = 1.0
    m.scale.z = 0.025
    m.color = _STATUS_WARN if warn else _STATUS_OK
    m.text = text
    return MarkerArray(markers=[m])
