"""SessionStats: the numbers behind ``make sim``'s progress line and summary (pure, no ROS)."""

from __future__ import annotations

import math

import pytest
from expo_sim.session.stats import SessionStats


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_episodes_success_and_rate_from_feedback() -> None:
    clock = FakeClock()
    s = SessionStats(target_episodes=2, clock=clock)
    assert math.isnan(s.success_rate) and math.isnan(s.steps_per_s) and not s.done
    for step in range(3):  # episode 0: success at step 2
        s.feedback(step, terminated=step == 2, truncated=False, success=step == 2)
        clock.t += 0.1
    for step in range(5):  # episode 1: truncated at the horizon
        s.feedback(step, terminated=False, truncated=step == 4, success=False)
        clock.t += 0.1
    assert (s.episodes, s.successes, s.env_steps, s.episode_lengths) == (2, 1, 8, [3, 5])
    assert s.success_rate == 0.5 and s.done
    assert s.steps_per_s == pytest.approx(7 / 0.7)  # 7 intervals between 8 feedbacks


def test_statuses_are_routed_by_name_and_shown() -> None:
    s = SessionStats(target_episodes=10)
    s.status("/policy_node: control loop", {"latency_p99_ms": "4.2", "weights_version": "3"})
    s.status("/sim_bridge: sim", {"obs_to_action_p99_ms": "7.5", "obs_to_action_p50_ms": "5"})
    s.status("/other: thing", {"latency_p99_ms": "999"})
    line = s.progress_line()
    assert "episodes 0/10" in line and "policy p99 4.2 ms" in line
    assert "obs->action p99 7.5 ms" in line and "weights v3" in line
    summary = s.summary()
    assert summary["policy_latency_p99_ms"] == 4.2 and summary["obs_to_action_p50_ms"] == 5.0
    assert math.isnan(summary["policy_latency_p50_ms"])  # absent key -> NaN, not an error


def test_inference_percentiles() -> None:
    s = SessionStats()
    for v in range(1, 101):
        s.decision(float(v))
    s.decision(float("nan"))  # ignored
    out = s.summary()
    assert out["inference_count"] == 100 and out["inference_max_ms"] == 100.0
    assert out["inference_p50_ms"] == pytest.approx(50.5)
    empty = SessionStats().summary()
    assert empty["inference_count"] == 0 and math.isnan(empty["inference_p99_ms"])


def test_learner_stats_add_recent_success_and_utd_to_the_line() -> None:
    s = SessionStats(target_episodes=5)
    s.learner_stats(updates=12, critic_steps=24, achieved_utd=1.5, version=3)
    assert "last 10" not in s.progress_line() and "UTD 1.50 (12 updates)" in s.progress_line()
    s.status("/policy_node: control loop", {"weights_version": "3"})
    for ok in (True, False, True, True):
        s.feedback(0, terminated=ok, truncated=not ok, success=ok)
    assert "last 10: 75%" in s.progress_line()
    assert s.episode_log[-1] == (4, True, "3") and s.recent_success(window=2) == 1.0
    out = s.summary()
    assert out["learner_updates"] == 12.0 and out["learner_weights_version"] == 3.0


def test_timing_figures_and_each_episodes_command_counts() -> None:
    s = SessionStats(target_episodes=3)
    s.status("/policy_node: control loop", {"obs_age_p50_ms": "1", "obs_age_p99_ms": "9", "holds": "2"})
    bridge = {"action_age_p50_ms": "12", "action_age_p99_ms": "31", "superseded": "1", "dropped": "4"}
    s.status("/sim_bridge: sim", {**bridge, "last_episode": "-1"})
    assert s.episode_commands == []
    ep0 = {"last_episode": "0", "last_episode_success": "true", "last_episode_steps": "40"}
    counts = {"last_episode_holds": "0", "last_episode_bridge_holds": "3", "last_episode_plan_periods": "2"}
    counts |= {"last_episode_superseded": "1", "last_episode_dropped": "4"}
    s.status("/sim_bridge: sim", {**bridge, **ep0, **counts})
    s.status("/sim_bridge: sim", {**bridge, **ep0, **counts})  # the periodic status repeats it
    assert s.episode_commands == [
        {
            "episode": 0,
            "success": True,
            "steps": 40,
            "holds": 0,
            "bridge_holds": 3,
            "plan_periods": 2,
            "superseded": 1,
            "dropped": 4,
        }
    ]
    line = s.progress_line()
    assert "age p99 obs 9 / act 31 ms" in line and "hold/sup/drop 2/1/4" in line
    out = s.summary()
    assert (out["obs_age_p99_ms"], out["action_age_p50_ms"], out["dropped"]) == (9.0, 12.0, 4.0)
    assert "adapter_action_age_p99_ms" not in out and math.isnan(out["dropped_late"])
    assert math.isnan(out["plan_periods"])  # the bridge's cumulative count: not in this status
    # On the hardware path the adapter's ages are the policy commands' ages.
    s.status("/franka_adapter: franka adapter", {"action_age_p99_ms": "22", "actions_dropped": "1"})
    assert "act 22 ms" in s.progress_line()
    assert s.summary()["adapter_action_age_p99_ms"] == 22.0 and s.summary()["adapter_dropped"] == 1.0
