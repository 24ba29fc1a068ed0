"""The sim bridge's bookkeeping, pure Python (no ROS, no env): which command to apply, episode
statistics. The node (:mod:`expo_sim.ros.bridge_node`) wires these to topics and the env.

Lockstep protocol (``realtime: false``), as the policy node expects it:

1. The bridge publishes one observation set (joint_states, ee_pose, object_poses, all with one
   header stamp, after a ``/clock`` message of that time) and waits.
2. It accepts the first ActionCommand whose stamp is one of the stamps published for the current
   state (a re-publish gives the same state a later stamp); commands with other stamps are stale
   answers and are counted, not applied. :class:`LockstepGate` does this matching.
3. A policy action is applied with ``env.step``; sim time advances one control period; the new
   observation set and the step's EnvFeedback (same stamp, echoing the command's episode and step)
   are published. A hold (``hold=True``) is not stepped: sim time still advances one period (the
   arm held still for that long), the same state is re-published with the new stamp, and a no-op
   feedback (reward 0, not done) echoes the hold's indices, because the policy waits for the
   feedback of every command it sent.
4. When an episode ends, the final step's feedback and observation go out first; the reset takes
   one more control period, so the first observation of the next episode is strictly later than
   the terminal one (the policy never acts on a terminal observation).
5. If no answer comes within ``action_timeout_s`` of wall time, the bridge warns and re-publishes
   the current state with a new stamp (e.g. a policy that started after the first observation).

Realtime protocol (``realtime: true``): every control period of wall time sim time advances one
period and the env is stepped once, with the newest command received since the previous tick
(:class:`RealtimeInbox`) or a hold when there is none; stepping starts with the first command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from expo_ros.latency import LatencyTracker

ROUND_TRIP_WINDOW = 100_000  # lockstep answers kept for the obs -> action percentiles


class SimClock:
    """Sim time in integer nanoseconds, advanced in whole control periods."""

    def __init__(self, period_ns: int, start_ns: int = 0) -> None:
        if period_ns <= 0 or start_ns < 0:
            raise ValueError(f"SimClock needs period_ns > 0 and start_ns >= 0, got {period_ns}, {start_ns}")
        self.period_ns = int(period_ns)
        self.now_ns = int(start_ns)

    def advance(self) -> int:
        self.now_ns += self.period_ns
        return self.now_ns


class LockstepGate:
    """Which ActionCommand answers the observation the bridge waits on (see the module doc)."""

    def __init__(self) -> None:
        self._state_ns: int | None = None  # first stamp of the current state
        self._latest_ns: int | None = None  # latest stamp published for it
        self.waiting = False
        self.published_at = 0.0  # time.monotonic() of the latest publish
        self.stale = 0  # commands that answered no stamp of the current state

    def published(self, ns: int, new_state: bool, now: float | None = None) -> None:
        """An observation set stamped ``ns`` went out; ``new_state``: the env changed since the
        previous one (a step or a reset), False for a re-publish of the same state."""
        if new_state or self._state_ns is None:
            self._state_ns = ns
        self._latest_ns = ns
        self.waiting = True
        self.published_at = time.monotonic() if now is None else now

    def accept(self, stamp_ns: int) -> bool:
        """True (and stop waiting) when a command stamped ``stamp_ns`` answers the current state."""
        if self.waiting and self._state_ns is not None and self._state_ns <= stamp_ns <= self._latest_ns:
            self.waiting = False
            return True
        self.stale += 1
        return False

    def overdue(self, timeout_s: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.waiting and now - self.published_at > timeout_s


class LearnerPacer:
    """Lockstep pacing for online learning: hold the next env step while the learner owes more
    than ``limit`` updates, so that it keeps its update-to-data ratio however fast the sim runs.

    The learner reports its backlog (owed updates not yet done) in ``learner_stats`` every stats
    period; the steps taken since that report owe one update each too, so the estimate
    ``backlog + steps since the report`` can only over-count and the learner's own backlog cap is
    never reached. Until the first report (the learner loading its data) nothing is held: the
    learner's warm-up needs the transitions.
    """

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._backlog: int | None = None
        self._steps_at_report = 0
        self.held = 0  # steps that had to wait
        self.held_s = 0.0  # wall time spent waiting [s]

    def report(self, backlog: int, warmed_up: bool, env_steps: int) -> None:
        """A learner_stats arrived when the bridge had taken ``env_steps`` steps."""
        self._backlog = int(backlog) if warmed_up else None
        self._steps_at_report = int(env_steps)

    def should_hold(self, env_steps: int) -> bool:
        if self.limit <= 0 or self._backlog is None:
            return False
        return self._backlog + (env_steps - self._steps_at_report) > self.limit


class RealtimeInbox:
    """Newest command received since the previous control tick; older unapplied ones are
    counted as superseded (the policy answered twice within one period)."""

    def __init__(self) -> None:
        self._cmd: Any = None
        self.superseded = 0

    def put(self, cmd: Any) -> None:
        if self._cmd is not None:
            self.superseded += 1
        self._cmd = cmd

    def take(self) -> Any:
        cmd, self._cmd = self._cmd, None
        return cmd


@dataclass(frozen=True)
class EpisodeRecord:
    episode: int
    steps: int
    success: bool
    ret: float
    wall_s: float


@dataclass
class EpisodeStats:
    """Per-episode outcomes and counters for the bridge's log lines."""

    records: list[EpisodeRecord] = field(default_factory=list)
    env_steps: int = 0
    holds: int = 0  # hold commands (realtime: stepped with the hold action; lockstep: not stepped)
    own_holds: int = 0  # realtime ticks without a new command (stepped with a hold)
    rejected: int = 0  # commands env.check_action refused (wrong shape, NaN): treated as holds
    timeouts: int = 0  # lockstep waits that ran past action_timeout_s
    work_s: float = 0.0  # wall time in the bridge's own step work (env step, publishing)
    wait_s: float = 0.0  # lockstep: wall time from publishing an observation to its answer
    answers: int = 0  # lockstep: answered observations (the count behind wait_s)
    # lockstep: the same waits one by one (observation published -> its action received), the
    # closed-loop latency through ROS; the window keeps every sample of a benchmark-sized run
    round_trip: LatencyTracker = field(default_factory=lambda: LatencyTracker(window=ROUND_TRIP_WINDOW))
    _ret: float = 0.0
    _start: float = field(default_factory=time.monotonic)
    _first: float | None = None

    def step(self, reward: float) -> None:
        if self._first is None:  # the first episode starts with the first step, not activation
            self._first = self._start = time.monotonic()
        self.env_steps += 1
        self._ret += float(reward)

    def timing(self, work_s: float) -> None:
        """One handled command: the bridge's own work (env step, publishing) [s]."""
        self.work_s += work_s

    def answered(self, wait_s: float) -> None:
        """Lockstep: the current observation's action arrived ``wait_s`` after it was published
        (recorded before stepping, so a final status sent from that step already counts it)."""
        self.wait_s += wait_s
        self.answers += 1
        self.round_trip.record(max(wait_s, 0.0))

    def end_episode(self, episode: int, steps: int, success: bool) -> EpisodeRecord:
        now = time.monotonic()
        rec = EpisodeRecord(episode, steps, success, self._ret, now - self._start)
        self.records.append(rec)
        self._ret, self._start = 0.0, now
        return rec

    @property
    def successes(self) -> int:
        return sum(r.success for r in self.records)

    def steps_per_s(self) -> float:
        """Env steps per wall second since the first step (0 before two steps)."""
        if self._first is None:
            return 0.0
        return self.env_steps / max(time.monotonic() - self._first, 1e-9)

    def diagnostics_values(self) -> dict[str, float | int]:
        """Flat scalars for the bridge's diagnostics status (``obs_to_action_*`` in ms over the
        last :data:`ROUND_TRIP_WINDOW` lockstep answers; NaN before the first)."""
        n = len(self.records)
        rt = self.round_trip.stats().as_dict()
        return {
            "episodes": n,
            "successes": self.successes,
            "success_rate": self.successes / n if n else float("nan"),
            "env_steps": self.env_steps,
            "env_steps_per_s": self.steps_per_s(),
            **{f"obs_to_action_{k}": rt[k] for k in ("count", "p50_ms", "p99_ms", "max_ms", "mean_ms")},
            "holds": self.holds,
            "bridge_holds": self.own_holds,
            "rejected": self.rejected,
            "timeouts": self.timeouts,
        }

    def summary(self) -> str:
        n = len(self.records)
        rate = f"{self.successes}/{n} successes ({100.0 * self.successes / n:.0f} %)" if n else "no episodes"
        handled = max(self.answers, self.env_steps, 1)
        waits = f", policy answer {1e3 * self.wait_s / self.answers:.1f} ms" if self.answers else ""
        return (
            f"{n} episodes, {rate}, {self.env_steps} env steps at {self.steps_per_s():.1f} steps/s wall "
            f"(mean per command: bridge work {1e3 * self.work_s / handled:.1f} ms{waits}), "
            f"{self.holds} holds, {self.own_holds} bridge holds, {self.rejected} rejected, "
            f"{self.timeouts} timeouts"
        )
