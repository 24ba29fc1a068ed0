"""Load transition bag segments back into numpy, salvaging what a killed writer left behind.

Every segment is read the same way, complete or not: its mcap file is streamed record by record
with mcap's :class:`~mcap.stream_reader.StreamReader` (file order = write order), messages are
decoded with a typestore built from the schema embedded in the file, and reading stops at the
first unreadable byte. Damage never raises: a segment without metadata.yaml (writer killed or
still writing), a truncated or garbled mcap file, undecodable messages, or a message count that
disagrees with metadata.yaml are recorded in that segment's :class:`SegmentReport`, together with
how many transitions were recovered. What a kill -9 can lose is stated in :mod:`.segments`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from expo_ros.transitions import TransitionData
from mcap.exceptions import EndOfFile
from mcap.records import Channel, Footer, Message, Schema
from mcap.stream_reader import StreamReader
from ruamel.yaml import YAML

from .bag_types import TRANSITION_TYPE, typestore_for_schema
from .segments import list_segments
from .transition_codec import decode_transition
from .transition_table import TransitionTable

log = logging.getLogger(__name__)

#: Decoded rows -> (rows kept, reason -> count of rows left out); see :func:`read_segment`.
RowsMap = Callable[
    [list[tuple[TransitionData, str]]], tuple[list[tuple[TransitionData, str]], Mapping[str, int]]
]


@dataclass(frozen=True)
class SegmentReport:
    """What reading one segment gave.

    messages: transitions recovered; complete: metadata.yaml present and the mcap file read to
    its footer without error; expected: message count metadata.yaml lists (None without it);
    problems: human-readable findings, empty for a healthy segment.
    """

    path: Path
    messages: int
    complete: bool
    expected: int | None = None
    problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def damaged(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class LoadReport:
    """Per-segment results of :func:`load_segments`, in read order."""

    segments: tuple[SegmentReport, ...]
    custom_data: dict[str, str] = field(default_factory=dict)

    @property
    def segments_read(self) -> int:
        return len(self.segments)

    @property
    def total_messages(self) -> int:
        return sum(s.messages for s in self.segments)

    @property
    def messages_per_segment(self) -> dict[str, int]:
        return {s.name: s.messages for s in self.segments}

    @property
    def damaged(self) -> tuple[SegmentReport, ...]:
        """Segments with problems (their recovered messages are still in the table)."""
        return tuple(s for s in self.segments if s.damaged)

    def summary(self) -> str:
        """Multi-line text: totals, then one line per damaged segment."""
        lines = [
            f"{self.segments_read} segments, {self.total_messages} transitions, {len(self.damaged)} damaged"
        ]
        for s in self.damaged:
            lines.append(f"  {s.name}: recovered {s.messages} ({'; '.join(s.problems)})")
        return "\n".join(lines)


def _read_metadata(path: Path, problems: list[str]) -> tuple[int | None, dict[str, str]]:
    """``(message_count, custom_data)`` of metadata.yaml, or ``(None, {})`` with a problem noted."""
    meta = path / "metadata.yaml"
    if not meta.is_file():
        problems.append("no metadata.yaml (the writer did not close this segment: killed or still open)")
        return None, {}
    try:
        info = YAML(typ="safe").load(meta.read_text())["rosbag2_bagfile_information"]
        return int(info["message_count"]), dict(info.get("custom_data") or {})
    except Exception as e:  # any malformed YAML is damage, not an error
        problems.append(f"metadata.yaml unreadable: {type(e).__name__}: {e}")
        return None, {}


def recorded_count(root: str | os.PathLike) -> tuple[int, int]:
    """``(messages, unclosed)``: the transitions the closed segments under ``root`` hold (their
    metadata.yaml counts, nothing decoded) and how many segments have no metadata.yaml."""
    total, unclosed = 0, 0
    for seg in list_segments(root):
        count, _ = _read_metadata(seg, [])
        if count is None:
            unclosed += 1
        else:
            total += count
    return total, unclosed


def _stream_mcap(
    path: Path, topic: str | None, problems: list[str]
) -> tuple[list[tuple[TransitionData, str]], bool]:
    """Decoded transitions of one mcap file in file order, and whether its footer was reached."""
    rows: list[tuple[TransitionData, str]] = []
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    skipped: dict[str, int] = {}
    failed, footer = 0, False
    size = path.stat().st_size
    with path.open("rb") as fh:
        try:
            for rec in StreamReader(fh, record_size_limit=max(size, 1)).records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec
                elif isinstance(rec, Channel):
                    channels[rec.id] = rec
                elif isinstance(rec, Footer):
                    footer = True
                elif isinstance(rec, Message):
                    channel = channels.get(rec.channel_id)
                    schema = schemas.get(channel.schema_id) if channel else None
                    if schema is None or schema.name != TRANSITION_TYPE or schema.encoding != "ros2msg":
                        key = schema.name if schema else f"channel {rec.channel_id} without schema"
                        skipped[key] = skipped.get(key, 0) + 1
                        continue
                    if topic is not None and channel.topic != topic:
                        skipped[channel.topic] = skipped.get(channel.topic, 0) + 1
                        continue
                    try:
                        store = typestore_for_schema(schema.name, schema.data.decode())
                        rows.append(decode_transition(rec.data, store))
                    except Exception:  # one bad message must not cost the rest
                        failed += 1
        except EndOfFile:
            problems.append(
                f"{path.name} ({size} bytes) is truncated: it ends inside a record or before the mcap "
                f"footer; {len(rows)} transitions read before that"
            )
        except Exception as e:  # garbage or a corrupt record: keep what was read
            problems.append(
                f"{path.name} ({size} bytes) unreadable after {len(rows)} transitions: "
                f"{type(e).__name__}: {e}"
            )
    if failed:
        problems.append(f"{path.name}: {failed} messages failed to decode")
    for what, n in skipped.items():
        log.info("%s: skipped %d messages not wanted here (%s)", path, n, what)
    return rows, footer


def read_segment(
    path: str | os.PathLike, topic: str | None = None, rows_map: RowsMap | None = None
) -> tuple[TransitionTable, SegmentReport, dict]:
    """One segment directory -> ``(transitions, report, custom_data)``; never raises for damage.

    ``topic``: keep only this bag topic (None = every Transition channel). ``rows_map``: applied
    to the decoded rows (with their camera frames) before they become a table, e.g. a pixel
    learner's encoder (:meth:`expo_learner.pixel_features.PixelFeaturizer.featurize_rows`); the
    rows it leaves out are listed in the report's problems.
    """
    path = Path(path)
    problems: list[str] = []
    expected, custom = _read_metadata(path, problems)
    files = sorted(path.glob("*.mcap"))
    if not files:
        problems.append("no .mcap file")
    rows: list[tuple[TransitionData, str]] = []
    complete = expected is not None and bool(files)
    for f in files:
        got, footer = _stream_mcap(f, topic, problems)
        rows.extend(got)
        complete = complete and footer
    if expected is not None and expected != len(rows) and topic is None:
        problems.append(f"metadata.yaml lists {expected} messages, {len(rows)} recovered")
    if rows_map is not None:
        rows, left_out = rows_map(rows)
        problems.extend(f"{n} transitions left out: {why}" for why, n in left_out.items())
    try:
        table = TransitionTable.from_rows(rows)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    report = SegmentReport(path, len(table), complete and not problems, expected, tuple(problems))
    if report.damaged:
        log.warning("segment %s: recovered %d transitions; %s", path.name, len(table), "; ".join(problems))
    return table, report, custom


def resolve_segments(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Segment directories named by ``paths``: each is a segment directory itself (holds a .mcap
    file or metadata.yaml) or a root whose ``seg_*`` directories are taken in index order.
    Raises FileNotFoundError for a path that does not exist."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[Path] = []
    for item in map(Path, items):
        if not item.is_dir():
            raise FileNotFoundError(f"{item}: no such directory")
        is_segment = any(item.glob("*.mcap")) or (item / "metadata.yaml").is_file()
        out.extend([item] if is_segment else list_segments(item))
    return out


def load_segments(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    topic: str | None = None,
    progress: Callable[[SegmentReport], None] | None = None,
    rows_map: RowsMap | None = None,
) -> tuple[TransitionTable, LoadReport]:
    """Every segment under ``paths`` (see :func:`resolve_segments`), in order, as one table.

    Damaged segments contribute what could be read and are listed in ``LoadReport.damaged``.
    ``progress(report)`` is called after each segment; ``rows_map`` as in :func:`read_segment`.
    ``custom_data``: the union of the segments' metadata custom_data (earlier segments win).
    Raises FileNotFoundError for a missing path and ValueError when segments disagree on dims.
    """
    tables, reports, custom = [], [], {}
    for seg in resolve_segments(paths):
        table, report, seg_custom = read_segment(seg, topic, rows_map)
        tables.append(table)
        reports.append(report)
        custom = seg_custom | custom
        if progress is not None:
            progress(report)
    try:
        table = TransitionTable.concat(tables)
    except ValueError as e:
        raise ValueError(f"segments of {paths} do not fit one table: {e}") from e
    return table, LoadReport(tuple(reports), custom)
