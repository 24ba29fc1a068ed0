"""Child process of the SIGKILL test: writes transitions until it is killed.

``python segment_writer_child.py ROOT``. Row ``i`` has ``obs[0] == i``. Three segments of 500
rows are closed by explicit rotation, then it writes into a fourth segment forever, flushing
after every 100th row. It prints (unbuffered) ``closed <segment> <rows in it>`` after each
rotation and ``flushed <rows written so far>`` after each flush: both mean those rows reached
the OS, so they must survive a kill -9.
"""

from __future__ import annotations

import sys

import numpy as np
from expo_learner.segments import SegmentConfig, SegmentWriter
from expo_learner.transition_codec import encode_transition
from expo_ros.transitions import TransitionData


def main(root: str) -> None:
    writer = SegmentWriter(root, SegmentConfig(max_bytes=2**40, max_age_s=None, flush_every_s=1e9))
    obs = np.zeros(19, np.float32)
    i = 0
    while True:
        obs[0] = i
        t = TransitionData(obs, np.zeros(7, np.float32), 0.0, obs + 1, False, False, i // 50, i % 50, 0, i)
        writer.write_cdr(encode_transition(t, "child"), timestamp_ns=i)
        i += 1
        if i % 500 == 0 and len(writer.closed_segments) < 3:
            count = writer.segment_messages
            print("closed", writer.rotate().name, count, flush=True)
        elif i % 100 == 0:
            writer.flush()
            print("flushed", i, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
