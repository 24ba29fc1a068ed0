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

Realtime protocol (``realtime: true``), a model of an arm that does not wait for its policy:

1. Physics advances on wall time in sub-steps: each control period (50 ms) is ``realtime_substeps``
   chunks (10 ms each by default) of MuJoCo steps (:mod:`expo_sim.envs.substep_physics`), each
   computed when its wall time has passed (late chunks are caught up, at most one period at a
   time; sim time follows wall time). ``/clock`` advances every chunk.
2. At each period end the observation set (and the step's EnvFeedback) goes out, stamped with
   the sim time of that instant.
3. A command takes effect at the first chunk boundary after it *arrives*: when it was received
   plus the injected delay (``injected_latency_ms`` +- uniform ``injected_jitter_ms``, seeded).
   :class:`RealtimeInbox` picks the newest arrived command (by stamp); older ones that arrived
   with it are *superseded*, ones older than the command already in effect are dropped
   (*out of order*), as are commands older than ``max_action_age_ms`` when they would take
   effect (*late*, holds excepted: a hold always applies) and commands answering an observation
   of a previous episode. Every count is per episode too.
4. While no new command takes effect the controller keeps its last goal (franka's impedance
   controller keeps its last equilibrium; a policy hold sets the goal to the pose of the moment).
   The period after an episode end is the reset (no physics), so the next episode's first
   observation is one period after the terminal one. An episode's stepping starts at the first
   period boundary where a command for it would take effect (its observations keep coming
   meanwhile): every stepped period's feedback then echoes a command of that episode.
5. Action chunks (``plan_mode``, :mod:`expo_ros.action_plan`): with ``receding`` a chunk
   boundary without a new command applies the newest command's plan row due then (row i at its
   stamp + (i + 1) periods, while at most ``plan_max_age_ms`` old); with ``ensemble`` the
   weighted mean of every command's row for the period. A period without a new command in
   which a plan row took effect counts as ``plan_periods``, not as a bridge hold. When the
   action in effect at a period's end is not the echoed command's own (a plan row, a blend),
   the feedback carries it in ``applied_action``: the transition records what was applied.
   ``off`` (default) ignores plans. ``injected_stall_probability`` / ``injected_stall_ms``
   delay a random share of the commands further (a late decision, counted as ``stalled``).

Times: the observation -> command round trip (received minus published, wall clock) and the age
of each command when it takes effect (sim time at that chunk boundary minus its stamp, the
observation's time: in realtime sim time is wall time, to a chunk) are recorded per command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from expo_ros.latency import LatencyTracker

ROUND_TRIP_WINDOW = 100_000  # lockstep answers kept for the obs -> action percentiles


class SimClock:
    """Sim time in integer nanoseconds, advanced in whole control periods (or given steps)."""

    def __init__(self, period_ns: int, start_ns: int = 0) -> None:
        if period_ns <= 0 or start_ns < 0:
            raise ValueError(f"SimClock needs period_ns > 0 and start_ns >= 0, got {period_ns}, {start_ns}")
        self.period_ns = int(period_ns)
        self.now_ns = int(start_ns)

    def advance(self, step_ns: int | None = None) -> int:
        """Advance one period (or ``step_ns``, > 0); returns the new time."""
        step = self.period_ns if step_ns is None else int(step_ns)
        if step <= 0:
            raise ValueError(f"SimClock.advance needs a step > 0 ns, got {step}")
        self.now_ns += step
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
    never reached. Until the learner has warmed up nothing is held: its warm-up needs the
    transitions. With ``wait`` (a learner in the graph, ``wait_for_learner``) the bridge does not
    start before the first report (the learner loading its data): a transition published before
    the learner subscribed would be lost (``ready``).
    """

    def __init__(self, limit: int, wait: bool = False) -> None:
        self.limit = int(limit)
        self.wait = bool(wait)
        self._backlog: int | None = None
        self._steps_at_report = 0
        self.heard = False  # a learner_stats report arrived: the learner is active and listening
        self.held = 0  # steps that had to wait
        self.held_s = 0.0  # wall time spent waiting [s]

    def report(self, backlog: int, warmed_up: bool, env_steps: int) -> None:
        """A learner_stats arrived when the bridge had taken ``env_steps`` steps."""
        self.heard = True
        self._backlog = int(backlog) if warmed_up else None
        self._steps_at_report = int(env_steps)

    @property
    def ready(self) -> bool:
        """Whether episode 0 may start: no learner to wait for, or it reported."""
        return not self.wait or self.heard

    def should_hold(self, env_steps: int) -> bool:
        if self.limit <= 0 or self._backlog is None:
            return False
        return self._backlog + (env_steps - self._steps_at_report) > self.limit


#: Why a received command never took effect (the realtime inbox's counters, per episode too).
DROP_REASONS = ("late", "out_of_order", "other_episode")


@dataclass(frozen=True)
class Arrival:
    """A command that took effect: ``age_ns`` (sim time at the chunk boundary minus its stamp)
    and the delay injected before it counted as arrived [s]."""

    cmd: Any
    age_ns: int
    injected_s: float


class RealtimeInbox:
    """Commands on their way to the simulated arm (module doc, realtime step 3).

    ``put`` at reception (wall clock ``now``) with the injected delay; ``take`` at each chunk
    boundary (its nominal wall time, the sim time of that instant) returns the command that takes
    effect there, if any. Commands carry ``stamp_ns`` (the observation they answer) and ``hold``.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[float, int, Any, float]] = []  # (due wall, order, cmd, injected)
        self._order = 0
        self.applied_stamp_ns = -1  # stamp of the command in effect
        self.superseded = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def put(self, cmd: Any, now: float, injected_s: float = 0.0) -> None:
        """A command received at wall time ``now`` that arrives ``injected_s`` later."""
        self._pending.append((now + max(injected_s, 0.0), self._order, cmd, max(injected_s, 0.0)))
        self._order += 1

    def ready(self, boundary: float, sim_now_ns: int, max_age_ns: int, min_stamp_ns: int = -1) -> bool:
        """Whether :meth:`take` with the same arguments would return a command (nothing consumed)."""
        return any(
            p[0] <= boundary
            and p[2].stamp_ns >= min_stamp_ns
            and p[2].stamp_ns > self.applied_stamp_ns
            and (sim_now_ns - p[2].stamp_ns <= max_age_ns or p[2].hold)
            for p in self._pending
        )

    def take(
        self, boundary: float, sim_now_ns: int, max_age_ns: int, min_stamp_ns: int = -1
    ) -> Arrival | None:
        """The command taking effect at a chunk boundary of wall time ``boundary`` and sim time
        ``sim_now_ns``; counts what is superseded or dropped. ``min_stamp_ns``: the current
        episode's first observation (older stamps answer a previous episode)."""
        due = [p for p in self._pending if p[0] <= boundary]
        if not due:
            return None
        self._pending = [p for p in self._pending if p[0] > boundary]
        fresh = []
        for p in due:
            stamp = p[2].stamp_ns
            if stamp < min_stamp_ns:
                self.dropped["other_episode"] += 1
            elif stamp <= self.applied_stamp_ns:
                self.dropped["out_of_order"] += 1
            else:
                fresh.append(p)
        if not fresh:
            return None
        newest = max(fresh, key=lambda p: (p[2].stamp_ns, p[1]))
        self.superseded += len(fresh) - 1
        cmd, age = newest[2], sim_now_ns - newest[2].stamp_ns
        if age > max_age_ns and not cmd.hold:
            self.dropped["late"] += 1
            return None
        self.applied_stamp_ns = cmd.stamp_ns
        return Arrival(cmd, age, newest[3])

    def clear(self) -> None:
        """Forget waiting commands (deactivate); counters stay."""
        self._pending = []


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode; ``counts``: what happened to commands during it (the keys of
    :meth:`EpisodeStats.counts`)."""

    episode: int
    steps: int
    success: bool
    ret: float
    wall_s: float
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class EpisodeStats:
    """Per-episode outcomes and counters for the bridge's log lines and diagnostics."""

    records: list[EpisodeRecord] = field(default_factory=list)
    env_steps: int = 0
    holds: int = 0  # hold commands (realtime: the goal set to the pose of the moment; lockstep: not stepped)
    own_holds: int = 0  # realtime periods without a new command (the controller kept its goal)
    rejected: int = 0  # commands env.check_action refused (wrong shape, NaN): treated as holds
    timeouts: int = 0  # lockstep waits that ran past action_timeout_s
    superseded: int = 0  # realtime: commands replaced by a newer one before taking effect
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    overruns: int = 0  # realtime: the bridge fell more than a period behind wall time (skipped ahead)
    plan_periods: int = 0  # realtime: periods without a new command filled from a plan (plan_mode)
    plan_rows_dropped: int = 0  # realtime: plan rows due but older than plan_max_age_ms
    stalled: int = 0  # realtime: commands given the injected stall
    work_s: float = 0.0  # wall time in the bridge's own step work (env step, publishing)
    wait_s: float = 0.0  # wall time from publishing an observation to its answer
    answers: int = 0  # answered observations (the count behind wait_s)
    # observation published -> its command received (wall clock), every answer: the closed-loop
    # latency through ROS; the window keeps every sample of a benchmark-sized run
    round_trip: LatencyTracker = field(default_factory=lambda: LatencyTracker(window=ROUND_TRIP_WINDOW))
    # a command's age when it takes effect: sim time then minus its stamp (realtime; lockstep: 0)
    action_age: LatencyTracker = field(default_factory=lambda: LatencyTracker(window=ROUND_TRIP_WINDOW))
    _ret: float = 0.0
    _start: float = field(default_factory=time.monotonic)
    _first: float | None = None
    _at_start: dict[str, int] = field(default_factory=dict)  # counts() when the episode began

    def step(self, reward: float) -> None:
        if self._first is None:  # the first episode starts with the first step, not activation
            self._first = self._start = time.monotonic()
        self.env_steps += 1
        self._ret += float(reward)

    def timing(self, work_s: float) -> None:
        """One handled command: the bridge's own work (env step, publishing) [s]."""
        self.work_s += work_s

    def answered(self, wait_s: float) -> None:
        """The command for an observation arrived ``wait_s`` after that observation was published
        (lockstep: recorded before stepping, so a final status sent from that step counts it)."""
        self.wait_s += wait_s
        self.answers += 1
        self.round_trip.record(max(wait_s, 0.0))

    def took_effect(self, age_ns: int) -> None:
        """A command took effect ``age_ns`` after the time of the observation it answers."""
        self.action_age.record(max(age_ns, 0) * 1e-9)

    def counts(self) -> dict[str, int]:
        """Cumulative command counts: holds, bridge_holds, superseded, dropped (and per reason),
        rejected, plan_periods, plan_rows_dropped, stalled."""
        return {
            "holds": self.holds,
            "bridge_holds": self.own_holds,
            "superseded": self.superseded,
            "dropped": sum(self.dropped.values()),
            **{f"dropped_{k}": v for k, v in self.dropped.items()},
            "rejected": self.rejected,
            "plan_periods": self.plan_periods,
            "plan_rows_dropped": self.plan_rows_dropped,
            "stalled": self.stalled,
        }

    def end_episode(self, episode: int, steps: int, success: bool) -> EpisodeRecord:
        now = time.monotonic()
        counts = self.counts()
        per_episode = {k: v - self._at_start.get(k, 0) for k, v in counts.items()}
        rec = EpisodeRecord(episode, steps, success, self._ret, now - self._start, per_episode)
        self.records.append(rec)
        self._ret, self._start, self._at_start = 0.0, now, counts
        return rec

    @property
    def successes(self) -> int:
        return sum(r.success for r in self.records)

    def steps_per_s(self) -> float:
        """Env steps per wall second since the first step (0 before two steps)."""
        if self._first is None:
            return 0.0
        return self.env_steps / max(time.monotonic() - self._first, 1e-9)

    def diagnostics_values(self) -> dict[str, float | int | bool]:
        """Flat scalars for the bridge's diagnostics status: ``obs_to_action_*`` and
        ``action_age_*`` in ms over the last :data:`ROUND_TRIP_WINDOW` commands (NaN before the
        first), the command counts, and ``last_episode_*`` (the newest finished episode: its
        index, success, steps and command counts; -1 / absent before the first)."""
        n = len(self.records)
        rt = self.round_trip.stats().as_dict()
        age = self.action_age.stats().as_dict()
        keys = ("count", "p50_ms", "p99_ms", "max_ms", "mean_ms")
        values: dict[str, float | int | bool] = {
            "episodes": n,
            "successes": self.successes,
            "success_rate": self.successes / n if n else float("nan"),
            "env_steps": self.env_steps,
            "env_steps_per_s": self.steps_per_s(),
            **{f"obs_to_action_{k}": rt[k] for k in keys},
            **{f"action_age_{k}": age[k] for k in keys},
            **self.counts(),
            "timeouts": self.timeouts,
            "overruns": self.overruns,
            "last_episode": self.records[-1].episode if self.records else -1,
        }
        if self.records:
            last = self.records[-1]
            values.update(last_episode_success=last.success, last_episode_steps=last.steps)
            values.update({f"last_episode_{k}": v for k, v in last.counts.items()})
        return values

    def summary(self) -> str:
        n = len(self.records)
        rate = f"{self.successes}/{n} successes ({100.0 * self.successes / n:.0f} %)" if n else "no episodes"
        handled = max(self.answers, self.env_steps, 1)
        waits = f", policy answer {1e3 * self.wait_s / self.answers:.1f} ms" if self.answers else ""
        dropped = sum(self.dropped.values())
        return (
            f"{n} episodes, {rate}, {self.env_steps} env steps at {self.steps_per_s():.1f} steps/s wall "
            f"(mean per command: bridge work {1e3 * self.work_s / handled:.1f} ms{waits}), "
            f"{self.holds} holds, {self.own_holds} bridge holds, {self.superseded} superseded, "
            f"{dropped} dropped, {self.rejected} rejected, {self.timeouts} timeouts"
            + (f", {self.plan_periods} periods from plans" if self.plan_periods else "")
            + (f", {self.plan_rows_dropped} plan rows too old" if self.plan_rows_dropped else "")
            + (f", {self.stalled} stalled" if self.stalled else "")
        )
