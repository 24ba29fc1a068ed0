"""expo_sim.session.intervention_report on synthetic run directories: episode wall times from the
bridge's log lines, the first episode reaching the success level, CSV, table, figure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from expo_sim.session.intervention_report import load_run, main, reached


def make_run(root: Path, successes: list[bool], fractions: list[float] | None) -> Path:
    root.mkdir(parents=True)
    log = [(100 * (i + 1), s, "1") for i, s in enumerate(successes)]
    summary: dict = {"episode_log": log}
    if fractions is not None:
        summary["intervention_episodes"] = [
            {"episode": i, "steps": 100, "operator_steps": int(100 * f), "takeovers": 1, "step_fraction": f}
            for i, f in enumerate(fractions)
        ]
    (root / "summary.json").write_text(json.dumps(summary))
    bridge, learner = "[sim_bridge-1] [INFO]", "[learner_node-3] [INFO]"
    lines = [
        f"{bridge} [1000.000000000] [sim_bridge]: configured: task lift",
        f"{bridge} [1002.500000000] [sim_bridge]: active: waiting for the policy",
        f"{learner} [1003.000000000] [learner_node]: episode 0: not a bridge line",
    ]
    for i, s in enumerate(successes):
        word = "success" if s else "failure"
        lines.append(
            f"{bridge} [{1002.5 + 10 * (i + 1):.9f}] [sim_bridge]: episode {i}: {word} after 100 steps (x)"
        )
    (root / "nodes.log").write_text("\n".join(lines) + "\n")
    return root


def test_reached_wall_times_csv_table_and_figure(tmp_path: Path, capsys) -> None:
    on = make_run(tmp_path / "on", [False] * 3 + [True] * 10, [0.5, 0.4, 0.3] + [0.1] * 10)
    off = make_run(tmp_path / "off", [False, True] * 6, None)
    eps = load_run(on)
    assert [e.env_steps for e in eps[:2]] == [100, 200] and eps[0].wall_s == pytest.approx(10.0)
    assert eps[0].intervention_fraction == 0.5 and load_run(off)[0].intervention_fraction == 0.0
    r = reached(eps)  # episodes 3..12 all successful: the last 10 reach 1.0 at episode 12 ...
    assert r is not None and r.index == 11  # ... and 0.9 already at 11 (9 of episodes 2..11)
    assert reached(load_run(off)) is None
    out_csv, png = tmp_path / "r.csv", tmp_path / "r.png"
    assert main([f"off={off}", f"on={on}", "--csv", str(out_csv), "--png", str(png)]) == 0
    table = capsys.readouterr().out
    assert "| on | 13 | 10/13 | 1300 | 130 | episode 11: 1200 env steps, 120 s |" in table
    assert "| off | 12 | 6/12 | 1200 | 120 | not in 12 episodes |" in table
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 25 and rows[-1]["run"] == "on" and rows[-1]["intervention_fraction"] == "0.100"
    assert png.stat().st_size > 0
    with pytest.raises(SystemExit):
        main([str(on)])  # no NAME=
