"""Bags recorded before ``Transition.intervention`` existed still load, with the flag False.

The segment below is written the way the learner wrote segments before issue 18: the schema
embedded in the mcap file is the old ``Transition`` definition (``legacy/Transition_before_
intervention.msg``, the file as it was), and the messages are CDR of that definition. The reader
builds its types from the file's schema, so these rows decode with the current code; a segment
with the new schema next to it loads into the same table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from expo_learner.bag_types import TRANSITION_TYPE, message_definition
from expo_learner.segment_reader import load_segments
from expo_learner.segments import SegmentConfig, SegmentWriter
from expo_learner.transition_table import TransitionTable
from mcap.reader import make_reader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

pytestmark = pytest.mark.ros  # the new-schema segment is written through rclpy serialization

OLD_MSG = Path(__file__).parent / "legacy" / "Transition_before_intervention.msg"


def _old_store():
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(OLD_MSG.read_text(), TRANSITION_TYPE))
    return store


def _write_old_segment(path: Path, table: TransitionTable) -> None:
    """One closed segment of ``table`` encoded with the pre-intervention definition."""
    store = _old_store()
    msgdef, _ = store.generate_msgdef(TRANSITION_TYPE, ros_version=2)
    assert "intervention" not in msgdef  # really the old definition
    Time = store.types["builtin_interfaces/msg/Time"]
    Header = store.types["std_msgs/msg/Header"]
    Msg = store.types[TRANSITION_TYPE]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(
            "/transitions", TRANSITION_TYPE, msgdef=msgdef, rihs01=store.hash_rihs01(TRANSITION_TYPE)
        )
        for t, source in table.rows():
            msg = Msg(
                header=Header(stamp=Time(sec=t.stamp_ns // 10**9, nanosec=t.stamp_ns % 10**9), frame_id=""),
                obs=np.asarray(t.obs, np.float32),
                action=np.asarray(t.action, np.float32),
                reward=float(t.reward),
                next_obs=np.asarray(t.next_obs, np.float32),
                terminated=bool(t.terminated),
                truncated=bool(t.truncated),
                episode=int(t.episode),
                step=int(t.step),
                policy_version=int(t.policy_version),
                source=source,
                images=[],
            )
            writer.write(conn, t.stamp_ns, store.serialize_cdr(msg, TRANSITION_TYPE))


def test_old_bag_loads_with_intervention_false(tmp_path: Path, make_table, assert_tables_equal) -> None:
    table = make_table(12)
    _write_old_segment(tmp_path / "seg_000000_20260101T000000Z", table)
    loaded, report = load_segments(tmp_path)
    assert report.damaged == () and report.total_messages == 12
    assert loaded.intervention.dtype == np.bool_ and not loaded.intervention.any()
    assert_tables_equal(loaded, table)  # every other column as written


def test_old_and_new_segments_load_together(tmp_path: Path, make_table) -> None:
    old = make_table(10)
    new = make_table(10, start=10)
    marked = np.zeros(10, bool)
    marked[3:6] = True
    new = TransitionTable(
        **{**{k: getattr(new, k) for k in new.__dataclass_fields__}, "intervention": marked}
    )
    _write_old_segment(tmp_path / "seg_000000_20260101T000000Z", old)
    with SegmentWriter(tmp_path, SegmentConfig(max_age_s=None)) as w:  # continues at index 1
        w.write_table(new)
    (new_seg,) = w.closed_segments
    with (new_seg / f"{new_seg.name}.mcap").open("rb") as f:  # the new file embeds the new schema
        (schema,) = make_reader(f).get_summary().schemas.values()
    assert b"bool intervention" in schema.data and schema.data.decode() == message_definition()[0]
    loaded, report = load_segments(tmp_path)
    assert report.segments_read == 2 and report.damaged == ()
    np.testing.assert_array_equal(loaded.obs[:, 0], np.arange(20))
    np.testing.assert_array_equal(loaded.intervention, np.r_[np.zeros(10, bool), marked])
