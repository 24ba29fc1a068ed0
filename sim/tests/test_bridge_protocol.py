"""Sim bridge bookkeeping (pure Python): parameters, sim clock, lockstep matching, realtime inbox,
episode statistics."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from expo_sim.ros.bridge_params import PARAMETERS, BridgeConfig
from expo_sim.ros.bridge_protocol import EpisodeStats, LearnerPacer, LockstepGate, RealtimeInbox, SimClock

DEFAULTS = {p.name: p.default for p in PARAMETERS}


def test_defaults_make_the_default_config() -> None:
    cfg = BridgeConfig.from_values(DEFAULTS)
    assert cfg == BridgeConfig()
    assert cfg.period_ns == 50_000_000
    assert cfg.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8)) + (
        "panda_finger_joint1",
        "panda_finger_joint2",
    )
    assert cfg.camera is None


def test_yaml_integers_for_floats_and_the_camera_are_accepted() -> None:
    cfg = BridgeConfig.from_values(
        {
            **DEFAULTS,
            "control_rate_hz": 20,
            "action_timeout_s": 2,
            "camera.enabled": True,
            "camera.width": 64,
            "camera.height": 64,
        }
    )
    assert cfg.control_rate_hz == 20.0 and cfg.action_timeout_s == 2.0
    assert (cfg.camera, cfg.camera_size) == ("agentview", 64)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("task", "towel", "parameter 'task'"),
        ("realtime", "yes", "parameter 'realtime'"),
        ("control_rate_hz", 10.0, "robosuite control frequency"),
        ("horizon", 0, "parameter 'horizon'"),
        ("num_episodes", -1, "parameter 'num_episodes'"),
        ("action_timeout_s", 0.0, "parameter 'action_timeout_s'"),
        ("action_timeout_s", float("nan"), "parameter 'action_timeout_s'"),
        ("frame_id", "", "parameter 'frame_id'"),
        ("arm_joint_names", ["a"] * 7, "parameter 'arm_joint_names'"),
        ("finger_joint_names", ["panda_joint1", "f2"], "overlaps 'arm_joint_names'"),
        ("camera.width", 100, "must be equal"),
        ("plan_mode", "chunky", "parameter 'plan_mode'"),
        ("plan_max_age_ms", -1.0, "parameter 'plan_max_age_ms'"),
        ("ensemble_decay", float("nan"), "parameter 'ensemble_decay'"),
        ("injected_stall_probability", 1.5, "parameter 'injected_stall_probability'"),
        ("injected_stall_ms", -1.0, "parameter 'injected_stall_ms'"),
        ("learner_wait_timeout_s", -1.0, "parameter 'learner_wait_timeout_s'"),
        ("learner_wait_timeout_s", float("inf"), "parameter 'learner_wait_timeout_s'"),
    ],
)
def test_bad_values_name_the_parameter(key: str, value: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        BridgeConfig.from_values({**DEFAULTS, key: value})


def test_plan_parameters() -> None:
    cfg = BridgeConfig.from_values(
        {**DEFAULTS, "plan_mode": "ensemble", "ensemble_decay": 0, "plan_max_age_ms": 150}
    )
    assert (cfg.plan.mode, cfg.plan.ensemble_decay, cfg.plan.max_age_ns) == ("ensemble", 0, 150_000_000)
    assert BridgeConfig.from_values({**DEFAULTS, "plan_mode": False}).plan.mode == "off"  # YAML's off


def test_bad_camera_name_only_matters_when_enabled() -> None:
    BridgeConfig.from_values({**DEFAULTS, "camera.name": "nope"})
    with pytest.raises(ValueError, match="parameter 'camera.name'"):
        BridgeConfig.from_values({**DEFAULTS, "camera.name": "nope", "camera.enabled": True})


def test_sim_clock_advances_in_whole_periods() -> None:
    clock = SimClock(50_000_000)
    assert [clock.advance() for _ in range(3)] == [50_000_000, 100_000_000, 150_000_000]
    with pytest.raises(ValueError):
        SimClock(0)


def test_gate_accepts_one_answer_for_any_stamp_of_the_current_state() -> None:
    gate = LockstepGate()
    assert not gate.accept(0) and gate.stale == 1  # nothing published yet
    gate.published(100, new_state=True, now=0.0)
    gate.published(150, new_state=False, now=1.0)  # a re-publish of the same state
    assert not gate.accept(50)  # answers an older state
    assert not gate.accept(200)  # a stamp never published
    assert gate.accept(100)  # the first stamp of this state is still a valid answer
    assert not gate.accept(150)  # only one answer per wait
    assert gate.stale == 4
    gate.published(200, new_state=True, now=2.0)
    assert not gate.accept(150)  # the previous state's re-publish stamp is stale now
    assert gate.accept(200)


def test_gate_overdue_only_while_waiting() -> None:
    gate = LockstepGate()
    assert not gate.overdue(1.0, now=100.0)
    gate.published(100, new_state=True, now=10.0)
    assert not gate.overdue(1.0, now=10.5)
    assert gate.overdue(1.0, now=11.5)
    gate.accept(100)
    assert not gate.overdue(1.0, now=20.0)


@dataclass
class Cmd:
    stamp_ns: int
    hold: bool = False


MS = 1_000_000


def test_inbox_applies_the_newest_arrived_command_and_counts_the_rest() -> None:
    inbox = RealtimeInbox()
    assert inbox.take(0.0, 0, 100 * MS) is None
    inbox.put(Cmd(50 * MS), now=1.000)
    inbox.put(Cmd(100 * MS), now=1.001)
    inbox.put(Cmd(150 * MS), now=1.002, injected_s=0.030)  # arrives at 1.032
    got = inbox.take(1.010, 110 * MS, 100 * MS)
    assert got.cmd.stamp_ns == 100 * MS and got.age_ns == 10 * MS and inbox.superseded == 1
    assert inbox.pending == 1 and inbox.take(1.020, 120 * MS, 100 * MS) is None  # still on its way
    got = inbox.take(1.040, 160 * MS, 100 * MS)
    assert got.cmd.stamp_ns == 150 * MS and got.injected_s == pytest.approx(0.030)
    inbox.put(Cmd(120 * MS), now=1.041)  # older than the command in effect
    assert inbox.take(1.050, 170 * MS, 100 * MS) is None and inbox.dropped["out_of_order"] == 1


def test_inbox_drops_late_commands_but_never_holds_and_forgets_previous_episodes() -> None:
    inbox = RealtimeInbox()
    inbox.put(Cmd(0), now=0.0)
    assert inbox.take(0.2, 200 * MS, 100 * MS) is None and inbox.dropped["late"] == 1
    inbox.put(Cmd(50 * MS, hold=True), now=0.2)
    assert inbox.take(0.3, 300 * MS, 100 * MS).cmd.hold  # a stale hold still stops the arm
    inbox.put(Cmd(400 * MS), now=0.45)  # answers the terminal observation of an ended episode
    assert inbox.take(0.5, 500 * MS, 100 * MS, min_stamp_ns=450 * MS) is None
    assert inbox.dropped == {"late": 1, "out_of_order": 0, "other_episode": 1}


def test_episode_stats_records_returns_and_summary() -> None:
    stats = EpisodeStats()
    assert "no episodes" in stats.summary() and stats.steps_per_s() == 0.0
    for r in (0.0, 0.0, 1.0):
        stats.step(r)
    rec = stats.end_episode(0, 3, True)
    assert (rec.episode, rec.steps, rec.success, rec.ret) == (0, 3, True, 1.0)
    stats.step(0.0)
    assert stats.end_episode(1, 1, False).ret == 0.0
    assert stats.successes == 1 and stats.env_steps == 4
    assert stats.summary().startswith("2 episodes, 1/2 successes (50 %), 4 env steps")
    for work, wait in ((0.002, 0.010), (0.004, 0.030)):
        stats.answered(wait)
        stats.timing(work)
    assert "bridge work 1.5 ms, policy answer 20.0 ms" in stats.summary()  # work over 4 steps
    assert set(stats.records[0].counts.values()) == {0}
    stats.took_effect(20 * MS)
    stats.superseded, stats.dropped["late"] = 3, 2
    stats.step(0.0)
    rec = stats.end_episode(2, 1, False)
    assert rec.counts["superseded"] == 3 and rec.counts["dropped"] == 2 and rec.counts["holds"] == 0
    values = stats.diagnostics_values()
    assert (values["last_episode"], values["last_episode_superseded"], values["last_episode_dropped"]) == (
        2,
        3,
        2,
    )
    assert values["action_age_p50_ms"] == pytest.approx(20.0) and values["dropped_late"] == 2
    assert (values["episodes"], values["successes"], values["env_steps"]) == (3, 1, 5)
    assert values["success_rate"] == pytest.approx(1 / 3) and values["obs_to_action_count"] == 2
    assert values["obs_to_action_p50_ms"] == pytest.approx(20.0)
    assert values["obs_to_action_max_ms"] == pytest.approx(30.0)


def test_learner_pacer_holds_while_the_learner_owes_too_much() -> None:
    pacer = LearnerPacer(limit=5)
    assert not pacer.should_hold(100)  # no report yet: the learner is still loading
    pacer.report(backlog=3, warmed_up=True, env_steps=100)
    assert not pacer.should_hold(101) and not pacer.should_hold(102)  # 3 + 2 <= 5
    assert pacer.should_hold(103)  # 3 + 3 steps since the report > 5
    pacer.report(backlog=0, warmed_up=True, env_steps=103)
    assert not pacer.should_hold(103)
    pacer.report(backlog=50, warmed_up=False, env_steps=200)  # warming up: never hold
    assert not pacer.should_hold(500)
    assert not LearnerPacer(limit=0).should_hold(10**6)  # off


def test_learner_pacer_is_ready_for_episode_0_once_the_learner_reported() -> None:
    """wait_for_learner (a learner in the graph): episode 0 waits for the learner's first report,
    since a transition published before the learner subscribed would be lost."""
    pacer = LearnerPacer(limit=5, wait=True)
    assert not pacer.ready
    pacer.report(backlog=0, warmed_up=False, env_steps=0)  # warming up still counts as heard
    assert pacer.ready
    assert LearnerPacer(limit=0, wait=True).ready is False  # real time: no pacing, still waits
    assert LearnerPacer(limit=5).ready and LearnerPacer(limit=0).ready  # no learner to wait for
