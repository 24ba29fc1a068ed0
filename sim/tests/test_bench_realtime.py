"""bench_realtime's table and its argument errors (the sessions themselves run in
test_bridge_pixels / test_session; the bench's figures are in docs/results.md)."""

import math

import pytest
from expo_sim.ros.bench_realtime import main, markdown_table


def _row(**over: object) -> dict:
    r = {
        "preset": "published+pixels-cpu",
        "env_steps": 600,
        "env_steps_per_s": 19.8,
        "bridge_overruns": 0.0,
        "obs_age_p50_ms": 50.0,
        "obs_age_p99_ms": 80.0,
        "obs_to_action_p50_ms": 22.3,
        "obs_to_action_p99_ms": 39.25,
        "action_age_p50_ms": 80.0,
        "action_age_p99_ms": 100.0,
        "action_age_count": 582.0,
        "dropped_late": 17.0,
        "bridge_holds": 34.0,
        "frame_sets_dropped": 4.0,
    }
    return r | over


def test_table_rows() -> None:
    table = markdown_table([_row(loadavg_before=(1.12, 1, 1), loadavg_after=(1.6, 1, 1))])
    head, rule, row = table.splitlines()
    assert head.count("|") == rule.count("|") == row.count("|")
    assert row == (
        "| published+pixels-cpu | 600 | 19.8 | 0 | 50.0 / 80.0 | 22.3 / 39.2 | 80.0 / 100.0 "
        "| 582 | 17 | 34 | 4 | 1.12 -> 1.60 |"
    )
    # a state row: no frames (NaN from the diagnostics), no load average recorded
    state = markdown_table([_row(preset="published", frame_sets_dropped=math.nan)]).splitlines()[-1]
    assert state.endswith("| 34 | - | - |")


def test_bad_arguments_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--no-state", "--pixels"])
    assert "nothing to run" in capsys.readouterr().err
