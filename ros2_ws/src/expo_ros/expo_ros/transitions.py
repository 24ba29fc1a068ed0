"""Transition assembly: (obs, action) + env feedback + next observation -> one learner sample.

Pure Python + numpy, no ROS. The policy node reports three kinds of events, in any order:

- :meth:`TransitionAssembler.add_step`: an action was sent for an observation (holds are not
  recorded: nobody chose them); ``StepRecord.intervention`` marks an operator's action (teleop or
  the scripted intervener, see ``expo_policy.intervention``) and is carried to the transition;
- :meth:`TransitionAssembler.add_feedback`: the robot / sim finished the step ``(episode,
  step)``, echoing the indices of the command it executed, stamped with the time the step ended;
  when it applied something else than the command's action (``Feedback.applied_action``: a plan
  row or a temporal-ensemble blend of the commands' plans), the transition records that;
- :meth:`TransitionAssembler.add_observation`: an observation was assembled, stamped with its
  oldest piece (with its camera messages, for a pixel policy: they become ``next_images``).

Real time: a command stays in effect until a newer one lands, so the executor may report several
periods with the same ``(episode, step)`` (the policy skipped an observation, or its next command
was late or dropped). Each such repeated feedback is one more period of the arm under that action:
with ``continue_repeats`` (the policy node sets it in real time) it becomes a transition of its
own (:attr:`TransitionAssembler.continued`), from the observation that ended the previous period
of the command to the one at the feedback's stamp, with the action applied then, so no period's
reward (a success above all) is lost. In lockstep a repeat is only the bridge's report of an
interrupted episode (the same state again, no physics), so it stays unmatched there.

A step is complete when its feedback has arrived and an observation stamped at or after the
feedback's stamp exists: the earliest such observation is ``next_obs``. The sim bridge stamps
the post-step observation with the feedback's stamp and gives every later observation (e.g. the
first one after a reset) a strictly later stamp, so a terminal step gets the terminal
observation, not the reset one. All stamps are integer nanoseconds on the node clock (exact
comparisons: a float in seconds cannot hold today's epoch to the nanosecond).

Bounded memory: at most ``max_pending`` steps wait for feedback and as many feedbacks wait for
an observation; older ones are dropped and counted (``dropped``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StepRecord:
    """An action that was sent. ``obs`` (obs_dim,) and ``action`` (act_dim,) float32;
    ``stamp_ns``: the observation's stamp; ``images``: camera messages of ``obs``, passed through;
    ``intervention``: an operator chose the action, not the policy."""

    episode: int
    step: int
    obs: np.ndarray
    action: np.ndarray
    policy_version: int
    stamp_ns: int
    images: tuple[Any, ...] = ()
    intervention: bool = False


@dataclass(frozen=True)
class Feedback:
    """Outcome of step ``(episode, step)``; ``stamp_ns``: when the step ended;
    ``applied_action`` (act_dim,): what the executor applied instead of the command's action (a
    plan row or an ensemble blend, EnvFeedback.applied_action), None = the command's action."""

    episode: int
    step: int
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    stamp_ns: int
    applied_action: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass(frozen=True)
class TransitionData:
    """One (s, a, r, s', terminated, truncated) sample; ``stamp_ns``: the next observation's;
    ``intervention``: the action was an operator's (Transition.intervention), default False;
    ``images`` / ``next_images``: camera messages of s and s' (empty for a low-dim policy)."""

    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    episode: int
    step: int
    policy_version: int
    stamp_ns: int
    images: tuple[Any, ...] = field(default=())
    intervention: bool = False
    next_images: tuple[Any, ...] = field(default=())


class TransitionAssembler:
    """Matches steps, feedback and observations; see the module docstring."""

    def __init__(
        self, max_pending: int = 64, max_observations: int = 16, continue_repeats: bool = False
    ) -> None:
        if max_pending < 1 or max_observations < 1:
            raise ValueError("TransitionAssembler.max_pending and max_observations must be >= 1")
        self.max_pending = int(max_pending)
        self.continue_repeats = bool(continue_repeats)
        self._steps: OrderedDict[tuple[int, int], StepRecord] = OrderedDict()
        self._waiting: deque[tuple[StepRecord, Feedback]] = deque()
        self._observations: deque[tuple[int, np.ndarray, tuple[Any, ...]]] = deque(
            maxlen=int(max_observations)
        )
        self.dropped = 0  # steps or feedbacks evicted before they completed
        self.unmatched_feedback = 0  # feedback for no recorded step (holds, restarts)
        self.continued = 0  # repeated feedbacks of a command still in effect, turned into transitions
        # the last transitions completed: (episode, step) -> its record as it would continue
        self._completed: OrderedDict[tuple[int, int], StepRecord] = OrderedDict()

    @property
    def pending(self) -> int:
        """Steps waiting for feedback plus feedbacks waiting for an observation."""
        return len(self._steps) + len(self._waiting)

    def is_pending(self, episode: int, step: int) -> bool:
        """Whether step (episode, step) waits for its feedback or, with it, for the next
        observation (False once its transition completed, or for a step never recorded)."""
        return (episode, step) in self._steps or any(
            (r.episode, r.step) == (episode, step) for r, _ in self._waiting
        )

    def add_step(self, record: StepRecord) -> None:
        key = (record.episode, record.step)
        self._steps.pop(key, None)
        self._steps[key] = record
        while len(self._steps) > self.max_pending:
            self._steps.popitem(last=False)
            self.dropped += 1

    def add_feedback(self, fb: Feedback) -> list[TransitionData]:
        record = self._steps.pop((fb.episode, fb.step), None)
        if record is None:
            record = self._completed.pop((fb.episode, fb.step), None)  # a command still in effect
            if record is None:
                self.unmatched_feedback += 1
                return []
            self.continued += 1
        nxt = self._next_observation(fb.stamp_ns)
        if nxt is not None:
            return [self._complete(record, fb, *nxt)]
        self._waiting.append((record, fb))
        while len(self._waiting) > self.max_pending:
            self._waiting.popleft()
            self.dropped += 1
        return []

    def add_observation(
        self, stamp_ns: int, obs: np.ndarray, images: tuple[Any, ...] = ()
    ) -> list[TransitionData]:
        """``images``: the observation's camera messages (a pixel policy's); a transition whose
        next observation this is carries them as ``next_images``."""
        obs = np.asarray(obs, dtype=np.float32)
        self._observations.append((int(stamp_ns), obs, tuple(images)))
        done, still = [], deque()
        for record, fb in self._waiting:
            nxt = self._next_observation(fb.stamp_ns)
            if nxt is None:
                still.append((record, fb))
            else:
                done.append(self._complete(record, fb, *nxt))
        self._waiting = still
        return done

    def reset(self) -> None:
        """Forget everything pending (counts are kept)."""
        self._steps.clear()
        self._waiting.clear()
        self._observations.clear()
        self._completed.clear()

    def _next_observation(self, after: int) -> tuple[int, np.ndarray, tuple[Any, ...]] | None:
        later = [o for o in self._observations if o[0] >= after]
        return min(later, key=lambda o: o[0]) if later else None

    def _complete(
        self,
        record: StepRecord,
        fb: Feedback,
        stamp_ns: int,
        next_obs: np.ndarray,
        next_images: tuple[Any, ...],
    ) -> TransitionData:
        applied = record.action if fb.applied_action is None else np.asarray(fb.applied_action, np.float32)
        if self.continue_repeats and not fb.done:  # the command may stay in effect next period
            key = (record.episode, record.step)
            self._completed.pop(key, None)
            self._completed[key] = StepRecord(
                record.episode,
                record.step,
                next_obs,
                applied,
                record.policy_version,
                stamp_ns,
                next_images,
                record.intervention,
            )
            while len(self._completed) > self.max_pending:
                self._completed.popitem(last=False)
        return TransitionData(
            obs=record.obs,
            action=applied,
            reward=float(fb.reward),
            next_obs=next_obs,
            terminated=bool(fb.terminated),
            truncated=bool(fb.truncated),
            episode=record.episode,
            step=record.step,
            policy_version=record.policy_version,
            stamp_ns=stamp_ns,
            images=record.images,
            intervention=bool(record.intervention),
            next_images=next_images,
        )
