"""EpisodeManager, the pure state machine: which command gets which feedback, and when."""

from __future__ import annotations

import pytest
from expo_franka.episode_manager import EpisodeConfig, EpisodeManager, Outcome, Phase
from expo_ros.transitions import Feedback


def run(m: EpisodeManager, episode: int, steps: range, hold: bool = False) -> list[Feedback]:
    """Commands (episode, s) stamped 1000 * (s + 1) ns; all feedback they complete."""
    out: list[Feedback] = []
    for s in steps:
        out += m.on_command(episode, s, hold, 1000 * (s + 1))
    return out


def test_commands_before_a_start_get_no_feedback() -> None:
    m = EpisodeManager()
    assert run(m, 0, range(5)) == [] and m.ignored == m.commands == 5 and m.phase is Phase.IDLE
    ok, msg, out = m.label(True, 1)
    assert not ok and "no episode is running" in msg and out == []


def test_each_step_is_closed_by_the_next_command_with_its_stamp() -> None:
    m = EpisodeManager()
    assert m.start()[0]
    out = run(m, 3, range(4))
    assert [(f.episode, f.step) for f in out] == [(3, 0), (3, 1), (3, 2)]  # step 3 still running
    # the next command answers the post-step observation: its stamp is the step's next_obs stamp
    assert [f.stamp_ns for f in out] == [2000, 3000, 4000]
    assert all(f.reward == 0.0 and not f.done and not f.success for f in out)
    assert m.steps == 4 and m.episode == 3


def test_success_label_closes_the_waiting_step_as_terminal() -> None:
    m = EpisodeManager()
    m.start()
    run(m, 0, range(3))
    ok, msg, out = m.label(True, now_ns=99_000)
    assert ok and "success" in msg
    (fb,) = out
    assert (fb.episode, fb.step, fb.stamp_ns) == (0, 2, 99_000)
    assert fb.reward == 1.0 and fb.terminated and fb.success and not fb.truncated
    assert m.phase is Phase.ENDED and m.outcome is Outcome.SUCCESS
    assert m.label(False, 1)[0] is False  # once only
    assert run(m, 0, range(3, 6)) == [] and run(m, 1, range(3)) == []  # ended: nothing until start


def test_failure_label_truncates() -> None:
    m = EpisodeManager()
    m.start()
    run(m, 0, range(2))
    _, _, (fb,) = m.label(False, 5)
    assert fb.step == 1 and fb.truncated and not fb.terminated and fb.reward == 0.0 and not fb.success
    assert m.outcome is Outcome.FAILURE


def test_horizon_truncates_the_last_step() -> None:
    m = EpisodeManager(EpisodeConfig(horizon=3))
    m.start()
    out = run(m, 0, range(5))
    assert [(f.step, f.truncated) for f in out] == [(0, False), (1, False), (2, True)]
    assert m.phase is Phase.ENDED and m.outcome is Outcome.TIMEOUT and m.ignored == 2


def test_next_episode_starts_only_on_start_and_skips_the_ended_index() -> None:
    m = EpisodeManager(EpisodeConfig(horizon=10))
    assert m.start()[0]
    assert m.start()[0] is False  # already running
    run(m, 0, range(2))
    m.label(True, 1)
    run(m, 1, range(20))  # the policy goes on acting while the scene is reset: ignored
    assert m.phase is Phase.ENDED
    assert m.start()[0]
    assert run(m, 0, range(2, 4)) == []  # late commands of the ended episode are not adopted
    out = run(m, 1, range(20, 23))
    assert [(f.episode, f.step) for f in out] == [(1, 20), (1, 21)]
    assert m.episode == 1 and m.steps == 3 and m.episodes_started == 2


def test_holds_close_a_step_but_get_no_feedback_of_their_own() -> None:
    m = EpisodeManager()
    m.start()
    assert run(m, 0, range(2), hold=True) == []  # holds cannot open an episode
    assert m.episode is None
    run(m, 0, range(2, 3))
    (fb,) = m.on_command(0, 3, True, 7777)
    assert (fb.step, fb.stamp_ns) == (2, 7777)
    assert m.label(True, 8)[2] == []  # nothing waiting: the episode ends without feedback
    assert m.outcome is Outcome.SUCCESS


def test_config_is_validated() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="EpisodeConfig.horizon"):
            EpisodeConfig(horizon=bad)
