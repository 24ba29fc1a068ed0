"""expo_sim.ros.trace_report: step traces joined by stamp into the step's segments."""

import json
from pathlib import Path

import pytest
from expo_sim.ros import trace_report


def _write(path: Path, rows) -> None:
    path.write_text("event,stamp_ns,t_ns\n" + "".join(f"{e},{s},{t}\n" for e, s, t in rows))


def _step(stamp: int, t0: int, hop1: int, infer: int):
    """One complete step starting at t0 (us -> ns): (bridge rows, node rows)."""
    us = 1000
    bridge = [
        ("feedback_out", stamp, t0),
        ("obs_first_out", stamp, t0 + 10 * us),
        ("obs_out", stamp, t0 + 100 * us),
    ]
    node = [
        ("feedback_in", stamp, t0 + 50 * us),
        ("in:joint_states", stamp, t0 + 60 * us),
        ("in:object_poses", stamp, t0 + (100 + hop1) * us),
        ("decide", stamp, t0 + (120 + hop1) * us),
        ("infer_start", stamp, t0 + (200 + hop1) * us),
        ("infer_end", stamp, t0 + (200 + hop1 + infer) * us),
        ("action_publish", stamp, t0 + (300 + hop1 + infer) * us),
        ("action_out", stamp, t0 + (400 + hop1 + infer) * us),
    ]
    bridge.append(("action_in", stamp, t0 + (700 + hop1 + infer) * us))
    return bridge, node


def _traces(tmp_path: Path) -> Path:
    bridge, node = [], []
    for k, (hop1, infer) in enumerate([(300, 1000), (500, 2000), (700, 3000)]):
        b, n = _step(1000 + k, k * 10**8, hop1, infer)
        bridge += b
        node += n
    # an incomplete step (no action came) and a re-publish after a timeout (no feedback before it)
    b, n = _step(2000, 5 * 10**8, 300, 1000)
    bridge += b[:-1]
    node += n
    b, n = _step(3000, 6 * 10**8, 300, 1000)
    bridge += b[1:]
    node += n[1:]
    node.append(("in:ee_pose", 1000, 10**9))  # a piece after the decision: not the trigger
    _write(tmp_path / "sim_bridge-1.csv", bridge)
    _write(tmp_path / "policy_node-2.csv", node + [("dropped", 4, 0)])
    return tmp_path


def test_segments_of_the_complete_steps(tmp_path: Path) -> None:
    summary = trace_report.report(_traces(tmp_path))
    assert summary["steps"] == 3 and summary["dropped_rows"] == 4
    seg = {s["name"]: s for s in summary["segments"]}
    hop1 = seg["first hop: observation out -> the node's last piece in"]
    assert hop1["p50_ms"] == pytest.approx(0.5) and hop1["max_ms"] == pytest.approx(0.7)
    assert seg["inference"]["p50_ms"] == pytest.approx(2.0)
    assert seg["inference"]["p99_ms"] == pytest.approx(2.98)  # np.percentile, linear
    assert seg["the node: last piece in -> decision start"]["max_ms"] == pytest.approx(0.02)
    assert seg["the action's publish() call"]["p50_ms"] == pytest.approx(0.1)
    assert seg["return hop: action published -> the bridge's callback"]["p50_ms"] == pytest.approx(0.3)
    total = seg["observation out -> action in"]
    assert total["p50_ms"] == pytest.approx(0.6 + 0.5 + 2.0) and total["max_ms"] == pytest.approx(4.3)
    assert seg["feedback hop: out -> the node's callback"]["p50_ms"] == pytest.approx(0.05)
    assert "3 complete steps (4 trace rows dropped" in trace_report.markdown_table(summary)
    line = {t["event"]: t for t in summary["timeline"]}
    assert [t["event"] for t in summary["timeline"]][:4] == [
        "feedback_out",
        "obs_first_out",
        "feedback_in",
        "in:joint_states",
    ]
    assert line["in:joint_states"]["p50_ms"] == pytest.approx(0.06) and line["in:joint_states"]["steps"] == 3
    assert line["in:object_poses"]["p50_ms"] == pytest.approx(0.6) and line["in:object_poses"][
        "p99_ms"
    ] == pytest.approx(0.796)
    assert line["in:ee_pose"]["steps"] == 1  # only one step got it (after its decision)
    assert line["action_in"]["p50_ms"] == pytest.approx(0.7 + 0.5 + 2.0)
    assert "pieces_in" not in line
    assert "| in:object_poses | 0.600 | 0.760 | 0.796 |" in trace_report.markdown_table(summary)


def test_the_cli_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.json"
    assert trace_report.main([str(_traces(tmp_path)), "--json", str(out)]) == 0
    assert "| inference | 2.000 |" in capsys.readouterr().out
    assert json.loads(out.read_text())["steps"] == 3


def test_bad_traces_are_refused_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert trace_report.main([str(tmp_path)]) == 2
    assert "no step traces (*.csv)" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="not a step trace"):
        trace_report.read_rows(tmp_path)
    (tmp_path / "x.csv").write_text("event,stamp_ns,t_ns\ndecide,1\n")
    with pytest.raises(ValueError, match=r"x.csv:2: 3 fields expected"):
        trace_report.read_rows(tmp_path)
    (tmp_path / "x.csv").write_text("event,stamp_ns,t_ns\ndecide,1,zz\n")
    with pytest.raises(ValueError, match=r"x.csv:2"):
        trace_report.read_rows(tmp_path)
    _write(tmp_path / "x.csv", [("decide", 1, 5)])
    with pytest.raises(ValueError, match="no complete step"):
        trace_report.report(tmp_path)


def test_two_runs_in_one_directory_are_refused(tmp_path: Path) -> None:
    """The sim clock restarts at 0: a second run's stamps would be joined with the first's."""
    _traces(tmp_path)
    (tmp_path / "sim_bridge-3.csv").write_text((tmp_path / "sim_bridge-1.csv").read_text())
    with pytest.raises(ValueError, match=r"2 bridge traces \(sim_bridge-1.csv, sim_bridge-3.csv\)"):
        trace_report.read_rows(tmp_path)
    (tmp_path / "sim_bridge-3.csv").unlink()
    (tmp_path / "policy_node-9.csv").write_text((tmp_path / "policy_node-2.csv").read_text())
    with pytest.raises(ValueError, match="2 policy node traces"):
        trace_report.report(tmp_path)
