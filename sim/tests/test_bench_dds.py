"""bench_dds: the middleware's round trip between two processes (the floor under bench_ros's
ROS overhead). Runs for real, briefly; timings are not asserted, only that every echo came back
and that the echo process is gone afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from expo_sim.ros import bench_dds


def _echo_processes(namespace: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "--echo" in cmd and namespace in cmd:
            pids.append(int(pid))
    return pids


def test_round_trips_come_back_and_the_echo_process_ends(tmp_path: Path, capfd) -> None:
    assert bench_dds.main(["--gap-ms", "0", "3", "--seconds", "1", "--out", str(tmp_path)]) == 0
    out = json.loads(next(tmp_path.glob("bench-dds-*.json")).read_text())
    assert [r["gap_ms"] for r in out["rows"]] == [0.0, 3.0]
    for r in out["rows"]:
        assert r["lost"] == 0 and r["sent"] > 20
        assert 0 < r["rtt_p50_ms"] <= r["rtt_p90_ms"] <= r["rtt_p99_ms"] <= r["rtt_max_ms"]
    assert out["rows"][0]["sent"] > out["rows"][1]["sent"]  # back to back sends more per second
    assert "| 0 |" in capfd.readouterr().out
    assert _echo_processes(f"/expo_bench_dds_{os.getpid()}") == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seconds", "0"], "--seconds must be > 0"),
        (["--gap-ms", "-1"], "--gap-ms must be >= 0"),
        (["--sched-fifo", "100"], "--sched-fifo must be in [0, 99]"),
    ],
)
def test_bad_arguments_are_refused(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit):
        bench_dds.main(argv)
    assert message in capsys.readouterr().err


def test_a_refused_real_time_priority_starts_nothing(monkeypatch, tmp_path: Path, capsys) -> None:
    from expo_ros import realtime

    def refuse(priority: int, tid: int = 0) -> None:
        raise realtime.RealtimeError(f"SCHED_FIFO priority {priority} refused (Operation not permitted)")

    monkeypatch.setattr(realtime, "set_fifo", refuse)
    monkeypatch.setattr(bench_dds.subprocess, "Popen", lambda *a, **k: pytest.fail("started a process"))
    assert bench_dds.main(["--sched-fifo", "10", "--seconds", "1", "--out", str(tmp_path)]) == 1
    assert "bench-dds: SCHED_FIFO priority 10 refused" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_the_echo_process_ends_when_its_parent_dies() -> None:
    """A parent killed without cleaning up (SIGKILL) leaves no echo process behind for long, even
    when it dies while the child is still starting (the parent's pid comes on the command line)."""
    import subprocess
    import sys
    import time

    namespace = f"/expo_bench_dds_orphan_{os.getpid()}"
    parent = subprocess.Popen(  # a parent that starts the echo child and is then killed
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time; subprocess.Popen([sys.executable, '-m', "
            f"'expo_sim.ros.bench_dds', '--echo', '{namespace}', '--parent', str(os.getpid()), "
            "'--seconds', '120']); time.sleep(60)",
        ]
    )
    deadline = time.monotonic() + 20
    while not _echo_processes(namespace) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _echo_processes(namespace), "the echo process did not start"
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while _echo_processes(namespace) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _echo_processes(namespace) == []


def test_row_percentiles_interpolate_as_the_other_benches() -> None:
    import math

    import numpy as np

    rtt = [float(v) for v in range(1, 11)]  # 1..10 ms
    row = bench_dds._stats(rtt, sent=12, gap_ms=7.0)
    assert row["lost"] == 2 and row["rtt_max_ms"] == 10.0
    assert row["rtt_p50_ms"] == 5.5 and row["rtt_p90_ms"] == np.percentile(rtt, 90) == 9.1
    assert row["rtt_p99_ms"] == np.percentile(rtt, 99)
    empty = bench_dds._stats([], sent=3, gap_ms=0.0)
    assert empty["lost"] == 3
    assert all(math.isnan(empty[k]) for k in ("rtt_p50_ms", "rtt_p99_ms", "rtt_max_ms"))
