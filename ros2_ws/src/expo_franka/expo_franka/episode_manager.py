"""Real-world episodes: operator labels + the policy's commands -> one env feedback per step.

Pure Python, no ROS. On the arm nothing computes a reward: a person watches the cell, says when
an episode starts (after resetting the scene) and how it ended. :class:`EpisodeManager` turns
that into the feedback the policy node needs to complete transitions
(:mod:`expo_ros.transitions`): one :class:`~expo_ros.transitions.Feedback` per policy
command, echoing the command's ``(episode, step)``.

States: ``idle`` -> (start) -> ``running`` -> (label success | label failure | horizon) ->
``ended`` -> (start) -> ``running`` ... Only an operator's start begins an episode; commands that
arrive while idle or ended (the policy keeps acting on its timer while the scene is reset) get no
feedback and are counted in ``ignored``.

Which command a feedback closes, and when. A step ends when the arm has executed the command for
one control period, i.e. when the *next* command arrives; that next command's header stamp is
the stamp of the observation it answers, which is the post-step observation of the previous
step, so the feedback carries it and the policy's assembler pairs the step with exactly that
``next_obs``. So the feedback of step k is emitted when command k+1 (hold or not) arrives, with
reward 0 and not done; or at once when a label arrives, stamped with the label's time (the
policy's next observation becomes ``next_obs``):

- success: reward 1, ``terminated``, ``success`` (a true terminal state: no bootstrapping);
- failure / operator reset: reward 0, ``truncated`` (the learner bootstraps through it);
- horizon: the ``horizon``-th step of the episode is ``truncated`` (outcome ``timeout``).

A label while no step is waiting (the policy sent nothing this episode) ends the episode without
feedback. Holds are not policy decisions: they get no feedback of their own (the policy records
no step for them) but they do close the previous step. The episode index is the policy's: the
first policy command after a start fixes it (any index but the one that just ended, whose last
commands may still be in flight); commands of other episodes are ignored while running.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from expo_ros.transitions import Feedback


class Phase(Enum):
    IDLE = "idle"
    RUNNING = "running"
    ENDED = "ended"


class Outcome(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class EpisodeConfig:
    """``horizon``: policy steps per episode (>= 1) before it is truncated (20 Hz: 400 = 20 s)."""

    horizon: int = 400

    def __post_init__(self) -> None:
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"EpisodeConfig.horizon must be an integer >= 1, got {self.horizon!r}")


class EpisodeManager:
    """The episode state machine; see the module docstring. Not thread-safe (one executor)."""

    def __init__(self, config: EpisodeConfig = EpisodeConfig()) -> None:
        self.config = config
        self.phase = Phase.IDLE
        self.outcome: Outcome | None = None  # of the last ended episode
        self.episode: int | None = None  # the policy's index of the current episode, once seen
        self.steps = 0  # policy steps accepted in the current episode
        self.episodes_started = 0
        self.commands = 0  # every command seen
        self.ignored = 0  # commands outside a running episode or of another episode
        self._pending: tuple[int, int] | None = None  # (episode, step) waiting for its feedback
        self._ended_episode: int | None = None

    def start(self) -> tuple[bool, str]:
        """Operator: the scene is reset, begin the next episode. (accepted, message)."""
        if self.phase is Phase.RUNNING:
            return False, f"episode {self._name()} is running: label it first"
        self.phase, self.outcome = Phase.RUNNING, None
        self.episode, self.steps, self._pending = None, 0, None
        self.episodes_started += 1
        return True, f"episode started (#{self.episodes_started}); horizon {self.config.horizon} steps"

    def label(self, success: bool, now_ns: int) -> tuple[bool, str, list[Feedback]]:
        """Operator: the running episode ended in success (True) or failure / reset (False).
        Returns (accepted, message, the feedback closing the last step, if one is waiting)."""
        if self.phase is not Phase.RUNNING:
            return False, f"no episode is running ({self.phase.value})", []
        outcome = Outcome.SUCCESS if success else Outcome.FAILURE
        out = [self._close(now_ns, outcome)] if self._pending is not None else []
        self._end(outcome)
        return True, f"episode {self._name()} labelled {outcome.value} after {self.steps} steps", out

    def on_command(self, episode: int, step: int, hold: bool, stamp_ns: int) -> list[Feedback]:
        """A command of the policy arrived; returns the feedback it completes (0 or 1)."""
        self.commands += 1
        if self.phase is not Phase.RUNNING:
            self.ignored += 1
            return []
        if self.episode is None:
            if hold or episode == self._ended_episode:
                self.ignored += 1  # nothing to adopt yet / in flight from the ended episode
                return []
            self.episode = episode
        if episode != self.episode:
            self.ignored += 1
            return []
        out: list[Feedback] = []
        if self._pending is not None:
            last = self.steps >= self.config.horizon
            out.append(self._close(stamp_ns, Outcome.TIMEOUT if last else None))
            if last:
                self._end(Outcome.TIMEOUT)
                self.ignored += 1  # this command belongs to no running episode any more
                return out
        if not hold:
            self._pending = (episode, step)
            self.steps += 1
        return out

    def _close(self, stamp_ns: int, outcome: Outcome | None) -> Feedback:
        episode, step = self._pending
        self._pending = None
        success = outcome is Outcome.SUCCESS
        return Feedback(
            episode=episode,
            step=step,
            reward=1.0 if success else 0.0,
            terminated=success,
            truncated=outcome in (Outcome.FAILURE, Outcome.TIMEOUT),
            success=success,
            stamp_ns=int(stamp_ns),
        )

    def _end(self, outcome: Outcome) -> None:
        self.phase, self.outcome = Phase.ENDED, outcome
        self._ended_episode = self.episode

    def _name(self) -> str:
        return f"#{self.episodes_started}" + (
            "" if self.episode is None else f" (policy episode {self.episode})"
        )
