"""expo_ros.step_trace: off by default, rows in memory, one CSV per process at exit."""

import os
import subprocess
import sys

import pytest
from expo_ros import step_trace
from expo_ros.step_trace import StepTrace


def test_off_without_a_directory_marks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(step_trace.ENV, raising=False)
    trace = StepTrace.from_env("policy_node")
    trace.mark("decide", 5)
    assert not trace.enabled and trace.rows == [] and trace.write() is None and trace.path is None


def test_marks_are_written_with_a_header_and_the_given_times(tmp_path) -> None:
    trace = StepTrace("/ns/policy node", tmp_path / "t")
    trace.mark("decide", 10, 1234)
    trace.mark("in:joint_states", 10, 1000)
    trace.mark("action_out", 10)  # now
    path = trace.write()
    assert path == tmp_path / "t" / f"ns_policy_node-{os.getpid()}.csv"
    lines = path.read_text().splitlines()
    assert lines[:3] == ["event,stamp_ns,t_ns", "decide,10,1234", "in:joint_states,10,1000"]
    event, stamp, t = lines[3].split(",")
    assert (event, stamp) == ("action_out", "10") and int(t) > 0
    trace.mark("later", 11, 1)
    assert len(trace.write().read_text().splitlines()) == 5  # rewritten whole
    assert not list((tmp_path / "t").glob("*.tmp"))


def test_a_full_trace_keeps_its_first_rows_and_counts_the_rest(tmp_path) -> None:
    trace = StepTrace("n", tmp_path, capacity=2)
    for i in range(5):
        trace.mark("e", i, i)
    assert trace.rows == [("e", 0, 0), ("e", 1, 1)] and trace.dropped == 3
    assert trace.write().read_text().splitlines()[-1] == "dropped,3,0"
    with pytest.raises(ValueError, match="capacity must be > 0"):
        StepTrace("n", tmp_path, capacity=0)


def test_a_process_writes_its_trace_when_it_exits(tmp_path) -> None:
    code = (
        "from expo_ros.step_trace import StepTrace\n"
        "t = StepTrace.from_env('sim_bridge')\n"
        "t.mark('obs_out', 7, 70)\n"
        "t.mark('action_in', 7, 90)\n"
    )
    env = {**os.environ, step_trace.ENV: str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    (path,) = tmp_path.glob("sim_bridge-*.csv")
    assert path.read_text().splitlines() == ["event,stamp_ns,t_ns", "obs_out,7,70", "action_in,7,90"]
