"""Damaged segments are salvaged, never fatal: truncated files, garbage, a writer killed by SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from expo_learner.segment_reader import load_segments, read_segment, recorded_count
from expo_learner.segments import SegmentWriter, list_segments

pytestmark = pytest.mark.ros  # expo_ros.conversions and rclpy serialization (built messages)

CHILD = Path(__file__).with_name("segment_writer_child.py")


@pytest.fixture
def segment(tmp_path: Path, make_table) -> Path:
    """One closed segment of 60 transitions in 6 chunks of 10."""
    with SegmentWriter(tmp_path / "src") as w:
        for start in range(0, 60, 10):
            w.write_table(make_table(10, start=start))
            w.flush()
    return w.closed_segments[0]


def _damaged_copy(segment: Path, root: Path, keep: float | None, metadata: bool = True) -> Path:
    dst = root / segment.name
    shutil.copytree(segment, dst)
    if not metadata:
        (dst / "metadata.yaml").unlink()
    if keep is not None:
        mcap = dst / f"{segment.name}.mcap"
        data = mcap.read_bytes()
        mcap.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize("metadata", [True, False])
def test_truncated_mcap_gives_back_a_prefix(tmp_path: Path, segment: Path, metadata: bool) -> None:
    counts = []
    for i, keep in enumerate((0.0, 0.003, 0.3, 0.6, 0.95, 0.999)):
        dst = _damaged_copy(segment, tmp_path / f"cut{i}", keep, metadata)
        table, report, _ = read_segment(dst)
        assert report.damaged and not report.complete
        assert report.messages == len(table)
        if len(table):
            np.testing.assert_array_equal(table.obs[:, 0], np.arange(len(table)))  # a clean prefix
        counts.append(len(table))
        if metadata:
            assert report.expected == 60
            assert any("lists 60 messages" in p for p in report.problems) == (len(table) < 60)
    assert counts[0] == counts[1] == 0 and counts[-1] == 60  # the summary alone was cut: all back
    assert counts == sorted(counts) and 0 < counts[2] < counts[3] < 60


def test_garbage_and_missing_files_are_reported(tmp_path: Path, segment: Path, make_table) -> None:
    root = tmp_path / "root"
    shutil.copytree(segment, root / segment.name)
    garbage = root / "seg_000001_20260101T000000Z"
    garbage.mkdir()
    (garbage / f"{garbage.name}.mcap").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "seg_000002_20260101T000000Z").mkdir()  # writer killed before creating its file
    broken_yaml = _damaged_copy(segment, tmp_path, None).rename(root / "seg_000003_20260101T000000Z")
    (broken_yaml / "metadata.yaml").write_text("{{ not yaml")
    table, report = load_segments(root)
    assert report.segments_read == 4 and len(table) == 120
    assert list(report.messages_per_segment.values()) == [60, 0, 0, 60]
    assert [s.name for s in report.damaged] == [p.name for p in list_segments(root)[1:]]
    assert "InvalidMagic" in report.damaged[0].problems[-1]
    assert any("no .mcap file" in p for p in report.damaged[1].problems)
    assert any("metadata.yaml unreadable" in p for p in report.damaged[2].problems)
    assert "3 damaged" in report.summary()


def test_missing_root_is_an_error_not_damage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_segments(tmp_path / "nope")
    table, report = load_segments(tmp_path)
    assert len(table) == 0 and report.segments_read == 0


def test_sigkill_mid_run_keeps_closed_segments_and_salvages_the_open_one(tmp_path: Path) -> None:
    root = tmp_path / "segments"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(root)], stdout=subprocess.PIPE, text=True, env=env
    )
    lines: list[str] = []
    try:
        for line in child.stdout:  # wait until the child flushed inside its fourth segment
            lines.append(line.split())
            if lines[-1][0] == "flushed" and sum(w[0] == "closed" for w in lines) == 3:
                break
        child.send_signal(signal.SIGKILL)  # it keeps writing until this lands
        rest, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    lines += [line.split() for line in rest.splitlines() if line.strip()]
    assert child.returncode == -signal.SIGKILL
    closed = {w[1]: int(w[2]) for w in lines if w[0] == "closed"}
    durable = max(int(w[-1]) for w in lines if w[0] in ("flushed", "closed"))  # reached the OS

    table, report = load_segments(root)
    by_name = {s.name: s for s in report.segments}
    assert list(closed) == [s.name for s in report.segments[:3]]
    for name, count in closed.items():  # every closed segment is complete and whole
        assert by_name[name].complete and not by_name[name].damaged and by_name[name].messages == count
    (open_seg,) = report.damaged
    assert open_seg.name == report.segments[-1].name and not open_seg.complete
    assert any("no metadata.yaml" in p for p in open_seg.problems)
    assert open_seg.messages == len(table) - sum(closed.values()) > 0  # reported per segment
    assert durable <= len(table) <= durable + 100  # flushes every 100: lost at most the unflushed tail
    np.testing.assert_array_equal(table.obs[:, 0], np.arange(len(table)))  # in order, no gap


def test_recorded_count_sums_closed_segments_and_counts_unclosed_ones(tmp_path: Path, segment: Path) -> None:
    """What a session reports as recorded: metadata.yaml counts, nothing decoded."""
    root = tmp_path / "bags"
    assert recorded_count(root) == (0, 0)  # no directory yet: a fresh learner
    root.mkdir()
    _damaged_copy(segment, root, keep=None)
    assert recorded_count(root) == (60, 0)
    second = _damaged_copy(segment, tmp_path / "other", keep=None, metadata=False)
    shutil.move(second, root / second.name.replace("seg_000000", "seg_000001"))
    assert recorded_count(root) == (60, 1)  # a writer killed before closing it
