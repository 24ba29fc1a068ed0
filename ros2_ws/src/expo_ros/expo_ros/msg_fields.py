"""The field encodings every message codec of :mod:`expo_ros.conversions` shares: stamps as
integer nanoseconds on the node clock (builtin_interfaces/Time, std_msgs/Header) and ``float32[]``
fields filled from numpy through ``array.array('f')`` (one copy, no per-element Python checks),
decoded with ``np.frombuffer`` into copies the caller may keep.

``_f32`` / ``_np32`` are for the codecs of this package only; callers use ``cv.time_msg``,
``cv.stamp_ns`` and ``cv.header`` (re-exported by :mod:`expo_ros.conversions`).
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

_NS = 1_000_000_000


def time_msg(ns: int) -> Time:
    """Nanoseconds (>= 0) -> builtin_interfaces/Time."""
    ns = int(ns)
    return Time(sec=ns // _NS, nanosec=ns % _NS)


def stamp_ns(t: Time) -> int:
    """builtin_interfaces/Time -> nanoseconds."""
    return int(t.sec) * _NS + int(t.nanosec)


def header(ns: int, frame_id: str = "") -> Header:
    return Header(stamp=time_msg(ns), frame_id=frame_id)


def _f32(values: np.ndarray) -> array.array:
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).ravel().tobytes())


def _np32(values: Sequence[float]) -> np.ndarray:
    return np.frombuffer(values, dtype=np.float32).copy() if len(values) else np.zeros(0, np.float32)
