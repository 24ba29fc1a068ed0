"""check_lockstep_run: a consistent synthetic run passes; each kind of inconsistency is reported."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from expo_ros.conversions import Command
from expo_ros.transitions import Feedback, TransitionData
from expo_sim.session.run_check import check_lockstep_run

pytestmark = pytest.mark.ros  # expo_ros.conversions imports the message types

P = 50_000_000
DIM = 4


def make_run(lengths=(3, 2), horizon=3, success_last=True):
    """Episodes of the given lengths; the last one ends in success when shorter than horizon."""
    fbs, cmds, trans = [], [], []
    t = P
    rng = np.random.default_rng(0)
    for ep, n in enumerate(lengths):
        obs = rng.normal(size=DIM).astype(np.float32)
        for k in range(n):
            t += P
            end = k == n - 1
            success = end and n < horizon and success_last
            fb = Feedback(ep, k, float(success), success, end and not success, success, t)
            action = rng.uniform(-1, 1, 7).astype(np.float32)
            nxt = rng.normal(size=DIM).astype(np.float32)
            fbs.append(fb)
            cmds.append(Command(action=action, stamp_ns=t - P, episode=ep, step=k))
            done = (fb.terminated, fb.truncated)
            trans.append(TransitionData(obs, action, fb.reward, nxt, *done, ep, k, 0, t))
            obs = nxt
        t += P  # the reset
    return fbs, cmds, trans


def check(fbs, cmds, trans, episodes=2, horizon=3):
    return check_lockstep_run(fbs, cmds, trans, episodes=episodes, horizon=horizon, obs_dim=DIM, period_ns=P)


def test_consistent_run_passes_and_the_final_deactivated_hold_is_ignored() -> None:
    fbs, cmds, trans = make_run()
    final = Command(action=np.zeros(7, np.float32), stamp_ns=0, hold=True, hold_reason="deactivated")
    assert check(fbs, [*cmds, final], trans) == []


def at(seq: list, i: int, **changes) -> list:
    """``seq`` with item ``i`` replaced by a copy carrying ``changes``."""
    return [*seq[:i], dataclasses.replace(seq[i], **changes), *seq[i + 1 :]]


@pytest.mark.parametrize(
    ("corrupt", "needle"),
    [
        (lambda f, c, t: (f[:-1], c[:-1], t[:-1]), "does not end exactly once"),
        (lambda f, c, t: (f, c, t[:-1]), "4 transitions for 5 env steps"),
        (lambda f, c, t: (at(f, 1, step=5), c, t), "steps [0, 5, 2]"),
        (lambda f, c, t: (at(f, 1, stamp_ns=f[0].stamp_ns), c, t), "strictly"),
        (lambda f, c, t: (at(f, 1, stamp_ns=f[1].stamp_ns + 1), c, t), "whole"),
        (lambda f, c, t: (f, at(c, 1, hold=True, hold_reason="stale"), t), "holds"),
        (lambda f, c, t: (f, at(c, 1, action=c[1].action * 3), t), "7 values"),
        (lambda f, c, t: (f, c, at(t, 1, obs=t[1].obs + 1)), "not the next step's obs"),
        (lambda f, c, t: (f, c, at(t, 1, reward=1.0)), "reward/done"),
        (lambda f, c, t: (f, c, at(t, 1, action=t[2].action)), "action differs"),
        (lambda f, c, t: (f, c, at(t, 2, next_obs=t[3].obs)), "first obs"),
    ],
)
def test_each_inconsistency_is_reported(corrupt, needle: str) -> None:
    problems = check(*corrupt(*make_run()))
    assert any(needle in p for p in problems), problems


def test_episode_ending_early_without_success_is_reported() -> None:
    fbs, cmds, trans = make_run(lengths=(3, 2), success_last=False)
    assert any("without success" in p for p in check(fbs, cmds, trans))
    assert any("expected 0..2" in p for p in check(fbs, cmds, trans, episodes=3))


def test_a_monitor_record_may_miss_action_copies_but_not_reorder_or_repeat_them() -> None:
    fbs, cmds, trans = make_run()
    partial = [cmds[0], *cmds[2:]]  # a lagging monitor missed the copy of step (0, 1)
    assert (
        check_lockstep_run(
            fbs, partial, trans, episodes=2, horizon=3, obs_dim=DIM, period_ns=P, all_commands=False
        )
        == []
    )
    assert any("one to one" in p for p in check(fbs, partial, trans))  # a complete record must have it
    for bad in ([cmds[1], cmds[0], *cmds[2:]], [cmds[0], cmds[0], *cmds[1:]]):  # reordered, repeated
        problems = check_lockstep_run(
            fbs, bad, trans, episodes=2, horizon=3, obs_dim=DIM, period_ns=P, all_commands=False
        )
        assert any("not in step order" in p for p in problems), problems
    wrong = at(partial, 1, action=-partial[1].action)  # a received copy must still match its transition
    problems = check_lockstep_run(
        fbs, wrong, trans, episodes=2, horizon=3, obs_dim=DIM, period_ns=P, all_commands=False
    )
    assert any("action differs" in p for p in problems), problems
