"""The scripted intervener's decision rule (pure): stall and distance triggers, grace, hand-back,
cooldown, budget; and the helpers that feed the expert from the bridge's poses."""

from __future__ import annotations

import numpy as np
import pytest
from expo_sim.ros.intervener_rule import IntervenerConfig, InterventionRule

HOME = np.array([-0.1, 0.0, 1.0])
EXPERT = np.array([1.0, 0.0, -1.0, 0, 0, 0, -1.0])


def run(rule: InterventionRule, n: int, move: float = 0.0, policy=None, start: np.ndarray = HOME) -> list:
    """``n`` observations; the end effector moves ``move`` m along x per step."""
    return [rule.step(start + [move * k, 0, 0], EXPERT, policy) for k in range(n)]


def test_stall_triggers_after_grace_and_window_then_hands_back_and_cools_down() -> None:
    cfg = IntervenerConfig(
        stall_steps=5, stall_distance_m=0.01, disagreement=0.0, grace_steps=3, takeover_steps=4,
        cooldown_steps=2, max_takeovers=5, max_steps=100,
    )  # fmt: skip
    rule = InterventionRule(cfg)
    ds = run(rule, 6)  # 6 positions fill the 5-step window
    assert [d.engaged for d in ds] == [False] * 5 + [True]
    assert ds[-1].event.startswith("take over (stall: moved 0.0 mm in 5 steps")
    ds = run(rule, 4)  # engaged 4 steps in all, then hand back
    assert [d.engaged for d in ds] == [True, True, True, False]
    assert ds[-1].event == "hand back (after 4 steps)" and rule.steps_used == 4
    ds = run(rule, 6)  # a fresh window from the hand-back (cooldown steps count: the policy acts)
    assert [d.engaged for d in ds] == [False] * 5 + [True] and rule.takeovers == 2
    rule = InterventionRule(IntervenerConfig(**{**cfg.__dict__, "cooldown_steps": 8}))
    run(rule, 10)  # take over at 6, hand back at 10
    assert [d.engaged for d in run(rule, 9)] == [False] * 8 + [True]  # the cooldown is longer


def test_a_moving_policy_is_left_alone_and_grace_holds_even_when_stalled() -> None:
    rule = InterventionRule(IntervenerConfig(stall_steps=5, disagreement=0.0, grace_steps=50))
    assert not any(d.engaged for d in run(rule, 40))  # stalled, but within the grace period
    rule = InterventionRule(
        IntervenerConfig(stall_steps=5, stall_distance_m=0.01, disagreement=0.0, grace_steps=0)
    )
    assert not any(d.engaged for d in run(rule, 100, move=0.003))  # 1.5 cm per window


def test_distance_from_the_expert_needs_consecutive_steps() -> None:
    cfg = IntervenerConfig(stall_steps=0, disagreement=1.0, disagreement_steps=3, grace_steps=0)
    away = -EXPERT  # the policy goes the other way: |diff| over xyz = 2 * sqrt(2)
    rule = InterventionRule(cfg)
    ds = run(rule, 4, move=0.01, policy=away)  # the first step has no previous expert action
    assert [d.engaged for d in ds] == [False, False, False, True]
    assert "distance from the expert > 1 for 3 steps" in ds[-1].event
    rule = InterventionRule(cfg)
    for k in range(20):  # disagreeing every other step never builds a run of 3
        d = rule.step(HOME + [0.01 * k, 0, 0], EXPERT, away if k % 2 else EXPERT)
        assert not d.engaged
    rule = InterventionRule(cfg)
    assert not any(d.engaged for d in run(rule, 20, move=0.01, policy=None))  # unknown actions


def test_budget_per_episode_and_reset() -> None:
    cfg = IntervenerConfig(
        stall_steps=2, disagreement=0.0, grace_steps=0, takeover_steps=3, cooldown_steps=0,
        max_takeovers=2, max_steps=5,
    )  # fmt: skip
    rule = InterventionRule(cfg)
    engaged = [d.engaged for d in run(rule, 40)]
    assert sum(engaged) == 5 and rule.takeovers == 2  # 3 + 2: the step budget ends the second
    assert rule.total_steps == 5 and not rule.budget_left
    rule.reset()
    assert rule.budget_left and rule.total_takeovers == 2
    assert any(d.engaged for d in run(rule, 10))


def test_hand_back_when_the_expert_is_done() -> None:
    rule = InterventionRule(
        IntervenerConfig(stall_steps=2, disagreement=0.0, grace_steps=0, takeover_steps=50)
    )
    run(rule, 3)
    assert rule.engaged
    d = rule.step(HOME, EXPERT, None, expert_done=True)
    assert not d.engaged and "script is done" in d.event
    assert not any(rule.step(HOME, EXPERT, None, expert_done=True).engaged for _ in range(40))


@pytest.mark.parametrize(
    "bad",
    [dict(stall_steps=-1), dict(disagreement=-0.1), dict(takeover_steps=0), dict(stall_distance_m=np.nan)],
)
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        IntervenerConfig(**bad)


def test_expert_obs_and_start_holding() -> None:
    from expo_sim.envs.scripted import DemoStyle, LiftExpert
    from expo_sim.ros.intervener_expert import expert_obs, start_holding

    poses = (np.array([[0.0, 0.0, 0.83]]), np.array([[0.0, 0.0, 0.0, 1.0]]))
    obs = expert_obs("lift", np.array([0.0, 0.0, 0.835]), np.array([1.0, 0, 0, 0]), poses)
    assert set(obs) == {"robot0_eef_pos", "robot0_eef_quat", "cube_pos", "cube_quat"}
    expert = LiftExpert(None, DemoStyle("scripted", noise_std=0.0), np.random.default_rng(0))
    assert not start_holding(expert, "lift", obs, gripper=-1.0)  # open: not holding
    assert start_holding(expert, "lift", obs, gripper=1.0) and expert.phase == "lift"
    action = expert.act(obs)
    assert action[2] > 0.5 and action[6] == 1.0  # lifts, keeps the grip
    far = expert_obs("lift", np.array([0.0, 0.0, 1.0]), np.array([1.0, 0, 0, 0]), poses)
    fresh = LiftExpert(None, DemoStyle("scripted", noise_std=0.0), np.random.default_rng(0))
    assert not start_holding(fresh, "lift", far, gripper=1.0) and fresh.phase == "approach"


def test_shipped_intervener_yaml_sets_every_parameter() -> None:
    from pathlib import Path

    import expo_bringup
    import yaml
    from expo_sim.ros.intervener_node import PARAMETERS, IntervenerNodeConfig

    path = Path(expo_bringup.__file__).parent / "config" / "intervener.yaml"
    values = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMETERS}
    assert IntervenerNodeConfig.from_values(values).rule == IntervenerConfig()  # the YAML = the defaults
    with pytest.raises(ValueError, match="'task'"):
        IntervenerNodeConfig.from_values(values | {"task": "stack"})  # no scripted expert
