"""What the learner does with intervention transitions, and how often they happen.

No ROS. A transition whose ``intervention`` flag is set was chosen by an operator (teleop, or the
sim's scripted intervener), not by the policy. The learner uses them the way human-in-the-loop RL
does (HIL-SERL: intervention steps go to the RL buffer *and* the demonstration buffer; Sirius /
RLIF-style: the corrections are imitation targets):

- replay (``InterventionUse.replay``): they go into the online buffer like every transition, so
  the critic learns their values (and they appear in the mixed minibatches of every update);
- base imitation (``InterventionUse.bc_steps``): they also go into a separate intervention buffer,
  and after each agent update the base takes ``bc_steps`` extra imitation (denoising) steps on a
  minibatch drawn from it (``ExpoAgent.pretrain_step``: the online base, its EMA copy follows), so
  the base learns the corrections. Those steps also advance the base's learning-rate schedule
  (cosine over ``lr_decay_steps`` base steps).

:class:`InterventionStats` counts them per episode: the fraction of steps an operator acted,
takeovers (an intervention step whose previous step in the episode was not one) per episode and
per hour of the actors' clock (stamps; sim time in lockstep), over the last completed episodes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class InterventionUse:
    """How intervention transitions are trained on (learner parameters ``intervention_*``).

    replay: also into the online buffer (critic and the mixed batches); False keeps them out of
        it (they are still recorded in the bags and used for imitation).
    bc_steps: extra base imitation steps per agent update on intervention rows (0 = off).
    bc_batch_size: rows of each such step; 0 = the agent's ``batch_size``.
    bc_min_rows: no imitation step until the intervention buffer holds this many rows (a batch
        drawn with replacement from a handful of rows would only memorize them).
    capacity: rows the intervention buffer keeps (oldest overwritten).
    stats_episodes: completed episodes the rates are computed over.
    """

    replay: bool = True
    bc_steps: int = 1
    bc_batch_size: int = 0
    bc_min_rows: int = 64
    capacity: int = 100_000
    stats_episodes: int = 10

    def __post_init__(self) -> None:
        lows = {"bc_steps": 0, "bc_batch_size": 0, "bc_min_rows": 1, "capacity": 1, "stats_episodes": 1}
        for name, lo in lows.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"InterventionUse.{name} must be an integer >= {lo}, got {v!r}")
        if not isinstance(self.replay, bool):
            raise ValueError(f"InterventionUse.replay must be True or False, got {self.replay!r}")


@dataclass
class _Episode:
    steps: int = 0
    intervention_steps: int = 0
    takeovers: int = 0
    first_ns: int = 0
    last_ns: int = 0
    last_intervention: bool = False

    def duration_s(self) -> float:
        """Span of the episode's stamps, extended by one mean step (n stamps = n steps)."""
        if self.steps < 2:
            return 0.0
        return (self.last_ns - self.first_ns) * 1e-9 * self.steps / (self.steps - 1)


class InterventionStats:
    """Per-episode intervention counts of every source (actor); one thread (the caller's lock).

    Rows are given in arrival order; an episode of a source ends with its done row
    (terminated or truncated) or when a row of another episode of that source arrives.
    """

    def __init__(self, window_episodes: int = 10) -> None:
        self._open: dict[str, tuple[int, _Episode]] = {}
        self._done: deque[_Episode] = deque(maxlen=int(window_episodes))
        self.steps_total = 0
        self.intervention_steps_total = 0
        self.takeovers_total = 0
        self.episodes_total = 0
        self.last: _Episode | None = None

    def add(self, source: str, episode: int, intervention: bool, stamp_ns: int, done: bool) -> None:
        """One transition of ``source``'s ``episode`` (its next observation stamped ``stamp_ns``)."""
        current = self._open.get(source)
        if current is not None and current[0] != episode:
            self._close(source)
            current = None
        if current is None:
            current = (episode, _Episode(first_ns=int(stamp_ns)))
            self._open[source] = current
        ep = current[1]
        ep.steps += 1
        ep.last_ns = int(stamp_ns)
        self.steps_total += 1
        if intervention:
            ep.intervention_steps += 1
            self.intervention_steps_total += 1
            if not ep.last_intervention:
                ep.takeovers += 1
                self.takeovers_total += 1
        ep.last_intervention = bool(intervention)
        if done:
            self._close(source)

    def _close(self, source: str) -> None:
        _, ep = self._open.pop(source)
        self._done.append(ep)
        self.episodes_total += 1
        self.last = ep

    def scalars(self) -> dict[str, float]:
        """Flat named values (``interventions/...``) for learner_stats, TensorBoard, diagnostics.

        Totals count every row seen (reloaded ones too); the rates cover the last
        ``window_episodes`` completed episodes and are absent before the first one completes:
        ``step_fraction`` (operator steps / steps), ``per_episode`` (takeovers per episode),
        ``episode_fraction`` (episodes with a takeover), ``per_hour`` (takeovers per hour of the
        actors' clock), ``last_episode_step_fraction``.
        """
        out = {
            "interventions/steps_total": float(self.intervention_steps_total),
            "interventions/takeovers_total": float(self.takeovers_total),
            "interventions/episodes_total": float(self.episodes_total),
        }
        window = list(self._done)
        if not window:
            return out
        steps = sum(e.steps for e in window)
        hours = sum(e.duration_s() for e in window) / 3600.0
        takeovers = sum(e.takeovers for e in window)
        out["interventions/step_fraction"] = sum(e.intervention_steps for e in window) / max(steps, 1)
        out["interventions/per_episode"] = takeovers / len(window)
        out["interventions/episode_fraction"] = sum(e.takeovers > 0 for e in window) / len(window)
        if hours > 0:
            out["interventions/per_hour"] = takeovers / hours
        last = self.last
        out["interventions/last_episode_step_fraction"] = last.intervention_steps / max(last.steps, 1)
        return out
