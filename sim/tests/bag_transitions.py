"""The Transition messages of the learner's closed mcap segments, read with third-party
``rosbags`` only (the integration tests' independent check of what the learner recorded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def bag_transitions(bags: Path) -> Iterator[Any]:
    """Each expo_interfaces/msg/Transition in ``bags/seg_*``, deserialized by rosbags."""
    from rosbags.highlevel import AnyReader

    segments = sorted(p for p in bags.glob("seg_*") if (p / "metadata.yaml").is_file())
    assert segments, f"no closed segment under {bags}"
    with AnyReader(segments) as reader:
        conns = [c for c in reader.connections if c.msgtype == "expo_interfaces/msg/Transition"]
        assert conns, [c.msgtype for c in reader.connections]
        for conn, _, raw in reader.messages(connections=conns):
            yield reader.deserialize(raw, conn.msgtype)
