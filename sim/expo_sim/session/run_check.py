"""Consistency checks of a recorded lockstep run of the sim graph (bridge + policy node).

Pure Python + numpy over decoded messages (:mod:`expo_ros.conversions` dataclasses), no ROS:
the integration tests (runner and launch_pytest) record ``env_feedback``, ``action`` and
``transitions`` from a test-side node and assert that :func:`check_lockstep_run` finds nothing.
Each problem is one line naming what is wrong and where.

What a correct lockstep run looks like:

- sim time (feedback stamps) strictly increases in whole control periods;
- episodes ``0..n-1``; in each, feedback for steps ``0..k-1`` and exactly one end (the last),
  terminated only on success (reward 1) and otherwise truncated at the horizon;
- one policy action per env step, with the indices of its feedback, in order (no holds); a
  monitor's record (``all_commands=False``) may miss copies, never reorder or invent them;
- one transition per step, with that step's action, reward and done flags; ``obs_dim`` values;
  ``next_obs`` equal to the next step's ``obs`` within an episode, and different from the next
  episode's first ``obs`` at an episode end (a reset, not a continuation).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from expo_ros.conversions import Command
from expo_ros.transitions import Feedback, TransitionData


def _feedback_problems(
    feedback: Sequence[Feedback], episodes: int, horizon: int, period_ns: int
) -> list[str]:
    out = []
    stamps = [f.stamp_ns for f in feedback]
    if any(b <= a for a, b in zip(stamps, stamps[1:])):
        out.append("feedback stamps do not strictly increase")
    if any(s % period_ns for s in stamps):
        out.append(f"feedback stamps are not whole control periods of {period_ns} ns")
    by_episode: dict[int, list[Feedback]] = defaultdict(list)
    for f in feedback:
        by_episode[f.episode].append(f)
    if sorted(by_episode) != list(range(episodes)):
        out.append(f"episodes {sorted(by_episode)}, expected 0..{episodes - 1}")
    for ep, fbs in sorted(by_episode.items()):
        if [f.step for f in fbs] != list(range(len(fbs))):
            out.append(f"episode {ep}: steps {[f.step for f in fbs]} are not 0..{len(fbs) - 1}")
        if [f.done for f in fbs] != [False] * (len(fbs) - 1) + [True]:
            out.append(f"episode {ep}: does not end exactly once, at its last step")
        last = fbs[-1]
        if not last.terminated == last.success == (last.reward == 1.0):
            out.append(f"episode {ep}: terminated/success/reward disagree: {last}")
        if not (last.terminated or (last.truncated and len(fbs) == horizon)):
            out.append(f"episode {ep}: ended after {len(fbs)} steps without success (horizon {horizon})")
    return out


def _in_order_within(got: list, steps: list) -> bool:
    """Whether ``got`` is ``steps`` with some items left out (none repeated or reordered)."""
    it = iter(steps)
    return all(any(g == s for s in it) for g in got)


def _transition_problems(feedback: Sequence[Feedback], actions: dict, trans: dict, obs_dim: int) -> list[str]:
    out = []
    for f in feedback:
        key = (f.episode, f.step)
        t = trans.get(key)
        if t is None:
            out.append(f"no transition for step {key}")
            continue
        if t.obs.shape != (obs_dim,) or t.next_obs.shape != (obs_dim,):
            shapes = f"obs {t.obs.shape}, next_obs {t.next_obs.shape}"
            out.append(f"transition {key}: {shapes}, expected ({obs_dim},)")
            continue
        if key in actions and not np.array_equal(t.action, actions[key].action):
            out.append(f"transition {key}: action differs from the command sent")
        if (t.reward, t.terminated, t.truncated) != (f.reward, f.terminated, f.truncated):
            out.append(f"transition {key}: reward/done differ from the feedback")
        nxt = trans.get((f.episode, f.step + 1))
        if nxt is not None and not np.array_equal(t.next_obs, nxt.obs):
            out.append(f"transition {key}: next_obs is not the next step's obs")
        first = trans.get((f.episode + 1, 0))
        if f.done and first is not None and np.array_equal(t.next_obs, first.obs):
            out.append(f"transition {key}: terminal next_obs is the next episode's first obs")
    return out


def check_lockstep_run(
    feedback: Sequence[Feedback],
    commands: Sequence[Command],
    transitions: Sequence[TransitionData],
    *,
    episodes: int,
    horizon: int,
    obs_dim: int,
    period_ns: int = 50_000_000,
    all_commands: bool = True,
) -> list[str]:
    """Problems found in one recorded run (empty when it is consistent); see the module doc.

    ``commands`` may end with the policy's final ``deactivated`` hold (sent at shutdown).
    ``all_commands`` False: ``commands`` is what a monitoring node received, which on a loaded
    machine may miss copies (the policy's action publisher keeps its last 100 for a reliable
    reader that lags): they must still carry feedback indices in step order and match their
    transitions, but need not cover every step (the bridge's own count says whether each step
    was answered: ``obs_to_action_count`` in its diagnostics)."""
    out = _feedback_problems(feedback, episodes, horizon, period_ns)
    holds = [c for c in commands if c.hold and c.hold_reason != "deactivated"]
    if holds:
        out.append(f"{len(holds)} holds in lockstep, first: {holds[0].hold_reason}")
    stepped = [c for c in commands if not c.hold]
    got, steps = [(c.episode, c.step) for c in stepped], [(f.episode, f.step) for f in feedback]
    if all_commands and got != steps:
        out.append(f"{len(stepped)} actions do not match the {len(feedback)} feedback indices one to one")
    elif not all_commands and not _in_order_within(got, steps):
        out.append(f"{len(stepped)} actions are not in step order among the {len(feedback)} feedback indices")
    if any(c.action.shape != (7,) or not np.all(np.abs(c.action) <= 1.0) for c in stepped):
        out.append("an action is not 7 values in [-1, 1]")
    trans = {(t.episode, t.step): t for t in transitions}
    if len(trans) != len(transitions):
        out.append("duplicate transitions for one (episode, step)")
    if len(transitions) != len(feedback):
        out.append(f"{len(transitions)} transitions for {len(feedback)} env steps")
    actions = {(c.episode, c.step): c for c in stepped}
    return out + _transition_problems(feedback, actions, trans, obs_dim)
