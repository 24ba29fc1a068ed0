"""SegmentWriter: rotation, durability contract, reload order; third-party decoding of the files."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from expo_learner import segments as segments_mod
from expo_learner.bag_types import TRANSITION_TYPE, message_definition
from expo_learner.segment_reader import load_segments, read_segment
from expo_learner.segments import (
    MCAP_MESSAGE_OVERHEAD,
    SegmentConfig,
    SegmentWriter,
    list_segments,
)
from expo_learner.transition_codec import encode_transition
from expo_learner.transition_table import TransitionTable

pytestmark = pytest.mark.ros  # expo_ros.conversions and rclpy serialization (built messages)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _one_size(table: TransitionTable) -> int:
    t, source = next(table.rows())
    return len(encode_transition(t, source)) + MCAP_MESSAGE_OVERHEAD


def test_rotation_by_size_gives_complete_sorted_bags(tmp_path: Path, make_table) -> None:
    table = make_table(35)
    config = SegmentConfig(max_bytes=10 * _one_size(table), max_age_s=None)  # 10 messages each
    with SegmentWriter(tmp_path, config) as w:
        w.write_table(table)
        assert len(w.closed_segments) == 3 and w.segment_messages == 5
    segs = list_segments(tmp_path)
    assert segs == w.closed_segments and [p.name[:10] for p in segs] == [f"seg_{i:06d}" for i in range(4)]
    for seg in segs:
        assert (seg / "metadata.yaml").is_file() and (seg / f"{seg.name}.mcap").is_file()
    loaded, report = load_segments(tmp_path)
    assert list(report.messages_per_segment.values()) == [10, 10, 10, 5]
    assert report.damaged == () and all(s.complete for s in report.segments)
    np.testing.assert_array_equal(loaded.obs[:, 0], np.arange(35))


def test_rotation_by_age_on_write_and_on_tick(tmp_path: Path, make_table) -> None:
    clock = FakeClock()
    rows = list(make_table(5).rows())
    w = SegmentWriter(tmp_path, SegmentConfig(max_age_s=1.0), clock=clock)
    for t in (0.0, 0.4, 1.0):  # the third write finds the segment 1 s old and closes it
        clock.t = t
        w.write(*rows[0])
    assert len(w.closed_segments) == 1 and w.current is None
    clock.t = 5.0
    w.write(*rows[1])
    clock.t = 5.9
    assert w.tick() is None and w.current is not None
    clock.t = 6.0
    assert w.tick() == w.closed_segments[-1]  # an idle segment is closed by the timer
    w.close()
    _, report = load_segments(tmp_path)
    assert list(report.messages_per_segment.values()) == [3, 1]


def test_reload_keeps_write_order_across_writers(tmp_path: Path, make_table, assert_tables_equal) -> None:
    a, b = make_table(40, source="sim_0"), make_table(30, start=100, source="/robot1")
    config = SegmentConfig(max_bytes=12 * _one_size(a), max_age_s=None)
    with SegmentWriter(tmp_path, config) as w:
        w.write_table(a)
    with SegmentWriter(tmp_path, config) as w2:  # a restarted learner continues the numbering
        w2.write_table(b)
        first_new = w2.closed_segments[0].name
    assert first_new.startswith("seg_000004_")
    loaded, report = load_segments(tmp_path)
    assert report.segments_read == 7 and report.total_messages == 70
    assert_tables_equal(loaded, TransitionTable.concat([a, b]))
    one, _ = load_segments(tmp_path / first_new)  # one segment directory works too
    np.testing.assert_array_equal(one.obs[:, 0], np.arange(100, 112))


def test_write_arrays_broadcasts_bookkeeping(tmp_path: Path) -> None:
    obs = np.arange(12, dtype=np.float32).reshape(4, 3)
    with SegmentWriter(tmp_path) as w:
        n = w.write_arrays(
            obs, np.zeros((4, 2)), np.ones(4), obs + 1, np.zeros(4), np.r_[0, 0, 0, 1], episode=7
        )
    loaded, _ = load_segments(tmp_path)
    assert n == 4 and loaded.episode.tolist() == [7] * 4 and loaded.step.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(loaded.next_obs, obs + 1)
    assert loaded.truncated.tolist() == [0, 0, 0, 1] and loaded.source.tolist() == [""] * 4


def test_raw_cdr_bytes_are_written_as_is(tmp_path: Path, make_table) -> None:
    rows = list(make_table(3).rows())
    with SegmentWriter(tmp_path) as w:
        for t, source in rows:
            w.write_cdr(memoryview(encode_transition(t, source)), timestamp_ns=t.stamp_ns)
    loaded, _ = load_segments(tmp_path)
    np.testing.assert_array_equal(loaded.obs, np.stack([t.obs for t, _ in rows]))
    with pytest.raises(RuntimeError, match="closed"):
        w.write_cdr(b"")


def test_kill_loses_only_what_was_written_after_the_last_flush(tmp_path: Path, make_table) -> None:
    """A copy of the open segment is what a kill -9 leaves (process memory gone, files kept)."""
    clock = FakeClock()
    rows = list(make_table(30).rows())
    w = SegmentWriter(tmp_path / "live", SegmentConfig(flush_every_s=1.0), clock=clock)
    for t in rows[:20]:
        w.write(*t)
    w.flush()
    for t in rows[20:25]:  # buffered in memory only
        w.write(*t)
    crash = tmp_path / "crash" / w.current.name
    shutil.copytree(w.current, crash)
    clock.t = 1.0
    w.write(*rows[25])  # flush_every_s has passed: this write flushes everything so far
    shutil.copytree(w.current, tmp_path / "crash2" / w.current.name)
    w.close()
    table, report = read_segment(crash)[:2]
    assert len(table) == 20 and not report.complete
    assert any("metadata.yaml" in p for p in report.problems)
    np.testing.assert_array_equal(table.obs[:, 0], np.arange(20))
    assert len(load_segments(tmp_path / "crash2")[0]) == 26


def test_closed_segments_are_fsynced(tmp_path: Path, make_table, monkeypatch) -> None:
    synced: list[int] = []
    real = segments_mod.os.fsync
    monkeypatch.setattr(segments_mod.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    with SegmentWriter(tmp_path) as w:
        w.write_table(make_table(3))
        w.flush()
        assert synced == []  # a flush hands data to the OS, it does not fsync
    assert len(synced) == 4  # mcap file, metadata.yaml, segment directory, root directory


@pytest.mark.parametrize(
    "field, value", [("max_bytes", 0), ("max_age_s", 0.0), ("flush_every_s", -1.0), ("topic", " ")]
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"SegmentConfig.{field}"):
        SegmentConfig(**{field: value})


def test_mcap_decodes_with_mcap_ros2_support(tmp_path: Path, make_table) -> None:
    """Schemas are embedded: a third-party decoder needs nothing of ours, images included."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import Image

    (t, source), *_ = make_table(2).rows()
    image = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(range(12)))
    with SegmentWriter(tmp_path, SegmentConfig(topic="/robot1/transitions")) as w:
        w.write(dataclasses.replace(t, images=(image,)), source)
    (seg,) = list_segments(tmp_path)
    with open(seg / f"{seg.name}.mcap", "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        ((schema, channel, message, decoded),) = list(reader.iter_decoded_messages())
    assert schema.encoding == "ros2msg" and schema.name == "expo_interfaces/msg/Transition"
    assert channel.topic == "/robot1/transitions" and message.log_time == t.stamp_ns
    np.testing.assert_array_equal(np.asarray(decoded.obs, np.float32), t.obs)
    assert decoded.source == source and decoded.step == t.step
    assert decoded.images[0].encoding == "rgb8" and bytes(decoded.images[0].data) == bytes(range(12))
    with Reader(seg) as bag:  # and rosbags' rosbag2 reader accepts the directory as a bag
        (conn,) = bag.connections
        assert bag.message_count == 1 and conn.digest == message_definition(TRANSITION_TYPE)[1]
