"""bench_ros's goal line (issue 15): obs -> action p99 against the decision's p99 + 2 ms."""

from expo_sim.ros.bench_ros import GOAL_MARGIN_MS, goal_lines, markdown_table


def _row(inference_p99: float, obs_to_action_p99: float) -> dict:
    r = {
        "preset": "published",
        "backend": "auto",
        "obs_to_action_count": 1600,
        "inference_p50_ms": 3.0,
        "inference_p99_ms": inference_p99,
        "policy_latency_p50_ms": 3.5,
        "policy_latency_p99_ms": inference_p99 + 0.5,
        "obs_to_action_p50_ms": 5.0,
        "obs_to_action_p99_ms": obs_to_action_p99,
        "env_steps_per_s": 40.0,
    }
    r["ros_overhead_p50_ms"] = r["obs_to_action_p50_ms"] - r["inference_p50_ms"]
    r["ros_overhead_p99_ms"] = obs_to_action_p99 - inference_p99
    r["goal_obs_to_action_p99_met"] = obs_to_action_p99 < inference_p99 + GOAL_MARGIN_MS
    return r


def test_goal_lines_say_met_or_not() -> None:
    met, missed = _row(4.0, 5.9), _row(4.0, 6.1)
    lines = goal_lines([met, missed])
    assert lines[0].endswith("-> met") and "5.90 ms < inference p99 4.00 + 2 ms" in lines[0]
    assert lines[1].endswith("-> NOT met") and "backend auto" in lines[1]
    table = markdown_table([met])
    assert "| published | 1600 | 3.00 / 4.00 |" in table and "2.00 / 1.90" in table
    assert table.splitlines()[-1].endswith("| - |")  # a row without its load average
    loaded = {**met, "loadavg_before": (1.25, 1.0, 0.5), "loadavg_after": (2.5, 1.5, 0.75)}
    assert markdown_table([loaded]).splitlines()[-1].endswith("| 1.25 -> 2.50 |")
    assert "| 2.00 / 1.90 | - | 40.0 |" in table  # no GC figures from the node: a dash
    paused = {**met, "policy_gc_collections": 12.0, "policy_gc_pause_max_ms": 1.714}
    assert "| 2.00 / 1.90 | 12, 1.71 | 40.0 |" in markdown_table([paused])


def test_random_policies_of_both_kinds(tmp_path) -> None:
    """The bench's random checkpoints: a state agent, and with --pixels a pixel agent of that
    encoder in front of the same preset's networks, which the session's --obs pixels loads."""
    from expo_core.checkpoint import load_checkpoint, load_pixel_checkpoint
    from expo_core.pixel_agent import encoder_preset
    from expo_sim.ros.bench_ros import random_policy

    state = random_policy("tiny", "lift", tmp_path)
    agent, _ = load_checkpoint(state)
    assert agent.cfg.obs_dim == 19
    pix = random_policy("tiny", "lift", tmp_path, pixels="cpu")
    assert pix != state
    pagent, _ = load_pixel_checkpoint(pix)
    assert pagent.encoder_cfg == encoder_preset("cpu")
    assert pagent.cfg.diffusion == agent.cfg.diffusion  # the preset's networks behind the encoder


def test_the_goal_line_names_the_executor() -> None:
    row = _row(4.0, 5.0)
    assert "Executor" not in goal_lines([row])[0]
    row["executor"] = "events"
    assert "backend auto, EventsExecutor)" in goal_lines([row])[0]
    row["executor"] = "single"
    assert "backend auto, SingleThreadedExecutor)" in goal_lines([row])[0]


def test_render_parallel_goes_to_the_bridge_and_the_goal_line() -> None:
    from expo_sim.ros.bench_ros import _overrides

    assert _overrides(False) == {}
    assert _overrides(True) == {"sim_bridge": {"observation.render_parallel": True}}
    row = {**_row(4.0, 5.9), "render_parallel": True}
    assert "cameras rendered in parallel" in goal_lines([row])[0]


def test_gc_freeze_off_goes_to_the_policy_node_and_the_goal_line() -> None:
    from expo_sim.ros.bench_ros import _overrides

    assert _overrides(False, gc_freeze=True) == {}
    assert _overrides(False, gc_freeze=False) == {"policy_node": {"gc_freeze": False}}
    assert "gc_freeze" not in goal_lines([{**_row(4.0, 5.9), "gc_freeze": True}])[0]
    assert "policy gc_freeze off" in goal_lines([{**_row(4.0, 5.9), "gc_freeze": False}])[0]


def test_the_goal_line_names_a_real_time_graph() -> None:
    row = _row(4.0, 5.9)
    assert "scheduling" not in goal_lines([{**row, "graph_sched": "normal"}])[0]
    line = goal_lines([{**row, "graph_sched": "fifo 10"}])[0]
    assert "backend auto, graph scheduling fifo 10)" in line


def test_sched_fifo_goes_to_every_session_and_the_rows(monkeypatch, tmp_path, capsys) -> None:
    import json

    import pytest
    from expo_sim.ros import bench_ros

    with pytest.raises(SystemExit):
        bench_ros.main(["--sched-fifo", "100"])
    assert "--sched-fifo must be in [0, 99]" in capsys.readouterr().err

    asked = []

    def session(preset, *args, sched_fifo, gc_freeze) -> dict:
        asked.append((preset, sched_fifo, gc_freeze))
        return {**_row(4.0, 5.9), "preset": preset, "error": ""}

    monkeypatch.setattr(bench_ros, "bench_preset", session)
    assert bench_ros.main(["--presets", "tiny", "cpu", "--sched-fifo", "10", "--out", str(tmp_path)]) == 0
    assert asked == [("tiny", 10, True), ("cpu", 10, True)]
    rows = json.loads(next(tmp_path.glob("bench-ros-*.json")).read_text())["rows"]
    assert [r["graph_sched"] for r in rows] == ["fifo 10", "fifo 10"]
    assert "graph scheduling fifo 10" in capsys.readouterr().out
    asked.clear()
    assert bench_ros.main(["--presets", "cpu", "--no-gc-freeze", "--out", str(tmp_path)]) == 0
    assert asked == [("cpu", 0, False)]
    capsys.readouterr()

    from expo_ros import realtime

    def refuse(priority: int, tid: int = 0) -> None:
        raise realtime.RealtimeError(f"SCHED_FIFO priority {priority} refused (Operation not permitted)")

    monkeypatch.setattr(realtime, "set_fifo", refuse)
    monkeypatch.setattr(bench_ros, "bench_preset", lambda *a, **k: pytest.fail("a session ran"))
    assert bench_ros.main(["--presets", "cpu", "--sched-fifo", "10", "--out", str(tmp_path)]) == 2
    assert "bench-ros: --sched-fifo 10: SCHED_FIFO priority 10 refused" in capsys.readouterr().err
    assert bench_ros.main(["--presets", "cpu", "--rt-priority", "12", "--out", str(tmp_path)]) == 2
    assert "bench-ros: --rt-priority 12: SCHED_FIFO priority 12 refused" in capsys.readouterr().err


def test_trace_gives_each_row_its_step_split(monkeypatch, tmp_path, capsys) -> None:
    import json
    import os

    import pytest
    from expo_ros.step_trace import ENV, StepTrace
    from expo_sim.ros import bench_ros

    events = [("feedback_out", 0), ("obs_first_out", 1), ("obs_out", 2), ("feedback_in", 3)]
    events += [("in:joint_states", 4), ("decide", 5), ("infer_start", 6), ("infer_end", 9)]
    events += [("action_publish", 10), ("action_out", 11), ("action_in", 13)]

    def session(preset, *args, **kwargs) -> dict:
        trace = StepTrace("graph", os.environ[ENV])  # what the launched nodes get
        for event, t_ms in events:
            trace.mark(event, 100, t_ms * 10**6)
        trace.write()
        return {**_row(4.0, 5.9), "preset": preset, "error": ""}

    monkeypatch.setattr(bench_ros, "bench_preset", session)
    monkeypatch.setenv(ENV, "/users/own")
    out = tmp_path / "out"
    assert bench_ros.main(["--presets", "tiny", "--trace", str(tmp_path / "tr"), "--out", str(out)]) == 0
    assert os.environ[ENV] == "/users/own"  # the bench's own environment is left as it was
    (row,) = json.loads(next(out.glob("bench-ros-*.json")).read_text())["rows"]
    seg = {s["name"]: s["p50_ms"] for s in row["step_trace"]["segments"]}
    assert seg["inference"] == 3.0 and seg["observation out -> action in"] == 11.0
    assert "| inference | 3.000 |" in capsys.readouterr().out
    assert list((tmp_path / "tr" / "tiny").glob("graph-*.csv"))
    # a second run into the same directory would join two runs' stamps: refused before any session
    monkeypatch.setattr(bench_ros, "bench_preset", lambda *a, **k: pytest.fail("a session ran"))
    assert bench_ros.main(["--presets", "tiny", "--trace", str(tmp_path / "tr"), "--out", str(out)]) == 2
    assert "already holds step traces" in capsys.readouterr().err

    def failing(preset, *args, **kwargs) -> dict:
        raise RuntimeError("the graph died")

    monkeypatch.setattr(bench_ros, "bench_preset", failing)
    with pytest.raises(RuntimeError, match="the graph died"):
        bench_ros.main(["--presets", "tiny", "--trace", str(tmp_path / "tr2"), "--out", str(out)])
    assert os.environ[ENV] == "/users/own"


def test_rt_priority_goes_through_the_session_config(monkeypatch, tmp_path) -> None:
    """--rt-priority reaches the session as ``SessionConfig.rt_priority`` (probed before its work),
    not as a graph override of the bench's own."""
    from expo_sim.ros import bench_ros
    from expo_sim.session import run

    seen = []

    def session(cfg, progress=True) -> dict:
        seen.append(cfg)
        return {
            "obs_to_action_p50_ms": 2.0,
            "obs_to_action_p99_ms": 3.0,
            "inference_p50_ms": 1.0,
            "inference_p99_ms": 2.0,
        }

    monkeypatch.setattr(run, "run_session", session)
    monkeypatch.setattr(bench_ros, "random_policy", lambda *a, **k: tmp_path / "ckpt.safetensors")
    row = bench_ros.bench_preset("cpu", 10, "lift", 400, tmp_path, None, rt_priority=12, gc_freeze=False)
    assert seen[0].rt_priority == 12 and seen[0].sched_fifo == 0
    assert seen[0].graph_overrides == {"policy_node": {"gc_freeze": False}}
    assert row["policy_rt_priority"] == 12 and row["goal_obs_to_action_p99_met"]
