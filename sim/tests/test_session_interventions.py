"""``expo-sim session --intervene`` without ROS: the configuration, the launch arguments, the
intervention rates per episode in the stats and the summary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from expo_sim.cli import main as expo_sim_main
from expo_sim.session.run import SessionConfig, format_summary, launch_arguments
from expo_sim.session.stats import SessionStats


def test_intervention_rates_per_episode_from_the_transition_flags() -> None:
    stats = SessionStats(target_episodes=2)
    assert stats.intervention_summary() == {} and "intervention_steps" not in stats.summary()
    # episode 0: P P O O P O P (two takeovers, 3 of 7 steps); episode 1: all policy
    for flag in (False, False, True, True, False, True, False):
        stats.transition(0, flag)
    for _ in range(5):
        stats.transition(1, False)
    s = stats.summary()
    assert s["intervention_steps"] == 3 and s["intervention_takeovers"] == 2
    assert s["intervention_step_fraction"] == pytest.approx(3 / 12)
    assert s["intervention_episodes"] == [
        {"episode": 0, "steps": 7, "operator_steps": 3, "takeovers": 2, "step_fraction": 3 / 7},
        {"episode": 1, "steps": 5, "operator_steps": 0, "takeovers": 0, "step_fraction": 0.0},
    ]
    assert "interventions 2 (25% of steps)" in stats.progress_line()
    stats.transition(2, True)  # a takeover at an episode's first step counts
    assert stats.intervention_summary()["intervention_takeovers"] == 3


def test_summary_row_and_launch_arguments(tmp_path: Path) -> None:
    cfg = SessionConfig(checkpoint=tmp_path / "x.safetensors", intervene=True, seed=4, out=tmp_path)
    args = launch_arguments(cfg, tmp_path / "x.safetensors", None, tmp_path)
    assert args["intervene"] == "true"
    params = yaml.safe_load(Path(args["params_file"]).read_text())
    assert params["intervener"] == {"ros__parameters": {"seed": 4}}
    plain = launch_arguments(SessionConfig(out=tmp_path), tmp_path / "x.safetensors", None, tmp_path)
    assert plain["intervene"] == "false"
    assert "intervener" not in yaml.safe_load(Path(plain["params_file"]).read_text())
    summary = {
        "episodes": 1,
        "successes": 0,
        "success_rate": 0.0,
        "env_steps": 10,
        "wall_s_total": 1.0,
        "wall_s_episodes": 1.0,
        "run_dir": "r",
        "error": "",
        "intervention_takeovers": 2,
        "intervention_step_fraction": 0.25,
    }
    assert "2 takeovers, 0.250 of the steps" in format_summary(summary)
    plain_summary = {k: v for k, v in summary.items() if not k.startswith("intervention_")}
    assert "interventions" not in format_summary(plain_summary)


def test_intervene_needs_a_task_with_a_scripted_expert(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="--intervene needs a task with a scripted expert"):
        SessionConfig(task="stack", intervene=True)
    code = expo_sim_main(["session", "--task", "threading", "--intervene", "--out", str(tmp_path)])
    assert code == 2 and "--intervene needs a task with a scripted expert" in capsys.readouterr().err
