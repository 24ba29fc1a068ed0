"""Action chunks in the session tools: ``expo-sim session --plan-mode`` and the timing study's
``--plan-mode`` / ``--stall-*`` flags reach the executor's parameters (no ROS graph is started)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from expo_sim.cli import main as expo_sim_main
from expo_sim.session.run import SessionConfig, launch_arguments
from expo_sim.session.timing_study import study_graph


def test_session_plan_mode_goes_to_the_bridge(tmp_path: Path) -> None:
    cfg = SessionConfig(checkpoint=tmp_path / "k4.safetensors", realtime=True, plan_mode="ensemble")
    args = launch_arguments(cfg, tmp_path / "k4.safetensors", None, tmp_path)
    params = yaml.safe_load(Path(args["params_file"]).read_text())
    assert params["sim_bridge"]["ros__parameters"]["plan_mode"] == "ensemble"
    off = launch_arguments(
        SessionConfig(checkpoint=tmp_path / "b.safetensors"), tmp_path / "b", None, tmp_path
    )
    assert (
        "plan_mode"
        not in yaml.safe_load(Path(off["params_file"]).read_text())["sim_bridge"]["ros__parameters"]
    )
    with pytest.raises(ValueError, match="plan_mode"):
        SessionConfig(realtime=True, plan_mode="chunky")


def test_session_cli_plan_mode_needs_realtime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert expo_sim_main(["session", "--plan-mode", "receding", "--out", str(tmp_path)]) == 2
    assert "--plan-mode applies in real time only" in capsys.readouterr().err


def test_study_graph_puts_plan_parameters_on_the_executor() -> None:
    g = study_graph("franka", "/k4.safetensors", adapter={"executor.plan_mode": "receding"})
    assert g.node("franka_adapter").parameters["executor.plan_mode"] == "receding"
    g = study_graph(
        "realtime", "/k4.safetensors", bridge={"plan_mode": "receding"}, policy={"plan.max_steps": 2}
    )
    assert g.node("sim_bridge").parameters["plan_mode"] == "receding"
    assert g.node("policy_node").parameters["plan.max_steps"] == 2
    with pytest.raises(ValueError, match="mode 'franka'"):
        study_graph("realtime", "/k4.safetensors", adapter={"executor.plan_mode": "receding"})
