"""Transitions into rosbag2 mcap "segments": one complete bag per segment, rotated by size and age.

rosbags cannot append to a bag, and a bag only becomes complete (summary, index, metadata.yaml)
when it is closed. So the log is a directory of short bags::

    <root>/seg_000000_20261105T120301Z/seg_000000_20261105T120301Z.mcap
                                       metadata.yaml
    <root>/seg_000001_20261105T120801Z/...

Names sort in write order (zero-padded index, then the UTC time the segment was opened); a new
writer on an existing root continues after the highest index there. One writer per root.

Durability (what a ``kill -9`` of the writing process costs):

- A *closed* segment (returned by :meth:`SegmentWriter.rotate` / :meth:`~SegmentWriter.close`)
  is a complete bag with metadata.yaml; its mcap file, metadata.yaml, its directory and the root
  directory were fsync'd before the call returned (``SegmentConfig.fsync``), so it also survives
  power loss.
- The *open* segment has no metadata.yaml and no mcap summary until it closes. Messages sit in an
  in-memory mcap chunk until the chunk is written to the file, which happens when the chunk passes
  1 MiB (rosbags' chunk size), on :meth:`~SegmentWriter.flush`, and by itself on the first
  :meth:`~SegmentWriter.write_cdr` or :meth:`~SegmentWriter.tick` at least ``flush_every_s`` after
  the previous flush. A kill -9 loses exactly the messages that had not reached the file: those
  written after the last completed flush (a kill in the middle of a flush or a close also loses
  the chunk being written). That is at most ``flush_every_s`` seconds of messages plus the time to
  the next write or tick, and never more than one chunk (~1 MiB of messages). Everything flushed
  before is in the OS page cache (not fsync'd: a kill -9 keeps it, a power loss may not) and
  :func:`expo_learner.segment_reader.load_segments` salvages it with mcap's stream reader.

Not thread-safe: call one writer from one thread (the node's executor thread).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from expo_ros.transitions import TransitionData
from rosbags.rosbag2 import StoragePlugin, Writer

from .bag_types import TRANSITION_TYPE, message_definition
from .transition_codec import encode_transition
from .transition_table import TransitionTable

log = logging.getLogger(__name__)

SEGMENT_RE = re.compile(r"^seg_(\d{6,})_(\d{8}T\d{6}Z)$")
#: Bytes of mcap framing per message: record (opcode 1, length 8, channel 2, sequence 4, two
#: times 16) plus its message-index entry (16).
MCAP_MESSAGE_OVERHEAD = 47


def segment_name(index: int, opened: datetime) -> str:
    """``seg_<index, zero-padded to 6 digits>_<UTC yyyymmddThhmmssZ>`` (sorts by name below a
    million segments; :func:`list_segments` sorts by the index itself)."""
    return f"seg_{index:06d}_{opened.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def list_segments(root: str | os.PathLike) -> list[Path]:
    """Segment directories directly under ``root``, in write order (by index). [] if none."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := SEGMENT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


@dataclass(frozen=True)
class SegmentConfig:
    """When segments rotate and how hard they are made durable.

    max_bytes: rotate once a segment's message records reach this size (bytes of CDR payload plus
        ``MCAP_MESSAGE_OVERHEAD`` per message; the file adds ~1 kB of header and summary). Checked
        after each write: a segment ends with the message that reaches the limit. >= 1.
    max_age_s: rotate once the segment has been open this long (seconds of ``clock``), checked on
        every write and tick; None = no age limit.
    flush_every_s: write the pending chunk to the file at least this often (> 0 s); bounds what a
        kill -9 loses (module docstring).
    topic: the bag topic (the ROS topic transitions arrive on).
    fsync: fsync closed segments (file, metadata.yaml, directories).
    """

    max_bytes: int = 64 * 2**20
    max_age_s: float | None = 600.0
    flush_every_s: float = 1.0
    topic: str = "/transitions"
    fsync: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise ValueError(f"SegmentConfig.max_bytes must be an int >= 1, got {self.max_bytes!r}")
        if self.max_age_s is not None and not self.max_age_s > 0:
            raise ValueError(f"SegmentConfig.max_age_s must be > 0 s or None, got {self.max_age_s!r}")
        if not self.flush_every_s > 0:
            raise ValueError(f"SegmentConfig.flush_every_s must be > 0 s, got {self.flush_every_s!r}")
        if not self.topic.strip():
            raise ValueError("SegmentConfig.topic must be a non-empty topic name")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentWriter:
    """Writes Transition CDR bytes into rotating bag segments under ``root``; a context manager.

    Args:
        root: directory of the segments (created if missing).
        config: rotation and durability settings.
        custom_data: string pairs stored in every segment's metadata.yaml ``custom_data`` (e.g.
            the robomimic ``env_args`` JSON); only closed segments carry them.
        clock: seconds, monotonic; drives ``max_age_s`` and ``flush_every_s`` (tests inject one).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        config: SegmentConfig | None = None,
        *,
        custom_data: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.config = config or SegmentConfig()
        self.custom_data = dict(custom_data or {})
        self._clock = clock
        self.root.mkdir(parents=True, exist_ok=True)
        existing = list_segments(self.root)
        self._next_index = int(SEGMENT_RE.match(existing[-1].name).group(1)) + 1 if existing else 0
        self._msgdef, self._rihs01 = message_definition(TRANSITION_TYPE)
        self._writer: Writer | None = None
        self._path: Path | None = None
        self._closed = False
        self.closed_segments: list[Path] = []
        self.messages_written = 0  # over all segments of this writer
        self.segment_messages = 0  # in the open segment
        self.segment_bytes = 0  # of the open segment, as counted for max_bytes
        self._opened_at = self._last_flush = 0.0

    @property
    def current(self) -> Path | None:
        """The open segment's directory (None until the first write after a rotation)."""
        return self._path

    def write_cdr(self, data: bytes | memoryview, timestamp_ns: int | None = None) -> None:
        """Append one serialized ``expo_interfaces/msg/Transition`` as it came off the wire.

        ``timestamp_ns``: the bag's log time (ns since the epoch); None = now (receive time).
        May close the segment (size or age limit) after writing.
        """
        if self._closed:
            raise RuntimeError(f"SegmentWriter({self.root}) is closed")
        if self._writer is None:
            self._open()
        ts = time.time_ns() if timestamp_ns is None else int(timestamp_ns)
        self._writer.write(self._connection, ts, data)
        self.segment_bytes += len(data) + MCAP_MESSAGE_OVERHEAD
        self.segment_messages += 1
        self.messages_written += 1
        if self.segment_bytes >= self.config.max_bytes:
            self.rotate()
        else:
            self.tick()

    def write(self, t: TransitionData, source: str) -> None:
        """Encode one transition (log time = ``t.stamp_ns``) and append it."""
        self.write_cdr(encode_transition(t, source), t.stamp_ns)

    def write_table(self, table: TransitionTable) -> int:
        """Append every row of ``table`` in order; returns the number written."""
        for t, source in table.rows():
            self.write(t, source)
        return len(table)

    def write_arrays(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        **bookkeeping: Any,
    ) -> int:
        """Append N transitions given as numpy columns: obs, next_obs (N, obs_dim); action
        (N, A); reward, terminated, truncated (N,). ``bookkeeping``: episode, step,
        policy_version, source, stamp_ns as in :meth:`TransitionTable.from_arrays` (scalars
        broadcast). Returns N."""
        table = TransitionTable.from_arrays(
            obs, action, reward, next_obs, terminated, truncated, **bookkeeping
        )
        return self.write_table(table)

    def flush(self) -> None:
        """Write the pending chunk to the file and hand it to the OS (no fsync).

        rosbags has no public flush: this closes the chunk through its McapWriter (``chunk``,
        ``close_chunk``, ``bio``; rosbags 0.11.9, checked when a segment opens).
        """
        if self._writer is None:
            return
        storage = self._writer.storage
        if storage.chunk.msgs:  # an empty chunk would carry no messages and bogus times
            storage.close_chunk()
        storage.bio.flush()
        self._last_flush = self._clock()

    def tick(self) -> Path | None:
        """Flush if ``flush_every_s`` has passed; close the segment if older than ``max_age_s``.

        Call it periodically (e.g. from a 1 Hz timer) so that an idle writer still flushes and
        rotates. Returns the segment it closed, if any.
        """
        if self._writer is None:
            return None
        now = self._clock()
        if self.config.max_age_s is not None and now - self._opened_at >= self.config.max_age_s:
            return self.rotate()
        if now - self._last_flush >= self.config.flush_every_s:
            self.flush()
        return None

    def rotate(self) -> Path | None:
        """Close the open segment (complete, fsync'd bag); the next write opens a new one.

        Returns the closed segment's directory, or None when no segment was open.
        """
        if self._writer is None:
            return None
        path, writer = self._path, self._writer
        self._writer, self._path = None, None
        writer.close()
        if self.config.fsync:
            for f in (path / f"{path.name}.mcap", path / "metadata.yaml", path, self.root):
                _fsync_path(f)
        self.closed_segments.append(path)
        log.info(
            "closed segment %s: %d messages, %d bytes", path.name, self.segment_messages, self.segment_bytes
        )
        return path

    def close(self) -> Path | None:
        """Close the open segment; further writes raise. Idempotent."""
        closed = self.rotate()
        self._closed = True
        return closed

    def _open(self) -> None:
        path = self.root / segment_name(self._next_index, datetime.now(UTC))
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        for key, value in self.custom_data.items():
            writer.set_custom_data(key, value)
        writer.open()
        if not (hasattr(writer.storage, "close_chunk") and hasattr(writer.storage, "chunk")):
            writer.abort()
            raise RuntimeError("rosbags' McapWriter lacks close_chunk/chunk: flush() needs rosbags 0.11.x")
        self._connection = writer.add_connection(
            self.config.topic, TRANSITION_TYPE, msgdef=self._msgdef, rihs01=self._rihs01
        )
        self._writer, self._path = writer, path
        self._next_index += 1
        self.segment_messages = self.segment_bytes = 0
        self._opened_at = self._last_flush = self._clock()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # what was written is valid even when the caller failed
