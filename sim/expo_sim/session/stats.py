"""What a running sim session looks like from outside: episodes, success, control rate and
latency, from the graph's own messages. Pure Python (no ROS), fed by
:class:`expo_sim.session.monitor.SessionMonitor`; used by ``make sim`` (progress line and
summary) and ``make bench-ros`` (latency table).

Sources: ``env_feedback`` (one per env step; an episode ends at terminated or truncated), the
policy node's diagnostics status (``...: control loop``: its own latency, observation built ->
action published, the observation's age when each decision starts, holds, and its weights
version), the bridge's diagnostics status (``...: sim``: the closed loop, observation published
-> action received, over ROS, in lockstep and realtime; each command's age when it takes effect;
commands held, superseded and dropped, in total and for each finished episode: the bridge sends a
status at every episode end), the Franka adapter's (``...: franka adapter``, on the hardware path:
the policy's commands' ages when they reach it, and the ones it dropped) and ``otf_decision``
(one inference time per decision).

Timing figures in :meth:`SessionStats.summary` (NaN where nothing was measured):
``obs_age_p50_ms`` / ``obs_age_p99_ms`` (policy, node clock), ``obs_to_action_*`` (bridge, wall),
``action_age_p50_ms`` / ``action_age_p99_ms`` (bridge: when the command takes effect),
``adapter_action_age_*``, ``adapter_dropped``, ``adapter_plan_ticks`` and
``adapter_plan_rows_dropped`` (Franka adapter), ``holds`` (policy holds that
reached the sim), ``bridge_holds`` (periods without a new command nor a plan row),
``plan_periods`` (periods without a new command filled from a plan, ``plan_mode``),
``frame_sets_rendered`` / ``frame_sets_dropped`` (realtime cameras: observations whose frames went out,
and captures a newer one replaced before they were rendered),
``plan_rows_dropped`` (plan rows too old), ``stalled`` (commands given the injected stall),
``superseded``, ``dropped``
(and ``dropped_late`` / ``dropped_out_of_order`` / ``dropped_other_episode``),
``watchdog_holds``, and ``episode_commands`` (one dict per finished episode: episode, success,
steps and those counts).

Interventions (a session with ``--intervene``; the monitor then also hears ``transitions``):
``intervention_episodes`` (one dict per episode the policy acted in: episode, steps, operator
steps, takeovers = operator steps whose previous step was not one, step fraction), and over the
whole session ``intervention_steps``, ``intervention_takeovers``, ``intervention_step_fraction``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from expo_ros.latency import LatencyTracker

INFERENCE_WINDOW = 1_000_000  # decisions kept for the inference percentiles (every one of a session)
POLICY_STATUS = ": control loop"  # suffix of the policy node's diagnostics status name
BRIDGE_STATUS = ": sim"  # suffix of the sim bridge's
ADAPTER_STATUS = ": franka adapter"  # suffix of the Franka adapter's
#: Per-episode command counts the bridge reports (``last_episode_<key>``).
EPISODE_COUNTS = ("holds", "bridge_holds", "plan_periods", "superseded", "dropped")


def _float(values: Mapping[str, str], key: str) -> float:
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return math.nan


@dataclass
class SessionStats:
    """Running totals of one session; ``clock`` is injectable for tests."""

    target_episodes: int = 0  # 0 = open-ended
    clock: object = time.monotonic
    episodes: int = 0
    successes: int = 0
    env_steps: int = 0
    episode_lengths: list[int] = field(default_factory=list)
    # one OTF inference time per decision [s]; the window keeps every sample of a session
    inference: LatencyTracker = field(default_factory=lambda: LatencyTracker(window=INFERENCE_WINDOW))
    policy: dict[str, str] = field(default_factory=dict)  # newest policy diagnostics values
    bridge: dict[str, str] = field(default_factory=dict)  # newest bridge diagnostics values
    adapter: dict[str, str] = field(default_factory=dict)  # newest Franka adapter diagnostics values
    # one dict per episode the bridge finished: episode, success, steps and EPISODE_COUNTS
    episode_commands: list[dict[str, object]] = field(default_factory=list)
    learner: dict[str, float] = field(default_factory=dict)  # newest learner_stats (when learning)
    # (env steps so far, success, policy weights version) at the end of each episode
    episode_log: list[tuple[int, bool, str]] = field(default_factory=list)
    # episode -> [steps, operator steps, takeovers, last step was the operator's], from transitions
    interventions: dict[int, list[int]] = field(default_factory=dict)
    _first_step_s: float | None = None
    _last_step_s: float | None = None
    _steps_in_episode: int = 0

    # --- intake ----------------------------------------------------------------------------
    def feedback(self, step: int, terminated: bool, truncated: bool, success: bool) -> None:
        """One env step's feedback. ``step`` is the index the feedback echoes (the command's); the
        episode length is counted here, one step per feedback (in realtime a period without a
        new command echoes the previous command's index)."""
        now = self.clock()
        if self._first_step_s is None:
            self._first_step_s = now
        self._last_step_s = now
        self.env_steps += 1
        self._steps_in_episode += 1
        if terminated or truncated:
            self.episodes += 1
            self.successes += int(success)
            self.episode_lengths.append(self._steps_in_episode)
            self._steps_in_episode = 0
            self.episode_log.append((self.env_steps, bool(success), self.policy.get("weights_version", "0")))

    def status(self, name: str, values: Mapping[str, str]) -> None:
        """One diagnostics status; kept when it is the policy's or the bridge's."""
        if name.endswith(POLICY_STATUS):
            self.policy = dict(values)
        elif name.endswith(BRIDGE_STATUS):
            self.bridge = dict(values)
            self._episode_commands(values)
        elif name.endswith(ADAPTER_STATUS):
            self.adapter = dict(values)

    def _episode_commands(self, values: Mapping[str, str]) -> None:
        """Keep each finished episode's command counts once (the bridge repeats the last one)."""
        try:
            episode = int(values.get("last_episode", "-1"))
        except ValueError:
            return
        if episode < 0 or any(e["episode"] == episode for e in self.episode_commands[-3:]):
            return
        entry: dict[str, object] = {
            "episode": episode,
            "success": values.get("last_episode_success") == "true",
            "steps": int(_float(values, "last_episode_steps")) if "last_episode_steps" in values else -1,
        }
        for k in EPISODE_COUNTS:
            v = _float(values, f"last_episode_{k}")
            entry[k] = int(v) if math.isfinite(v) else -1
        self.episode_commands.append(entry)

    def transition(self, episode: int, intervention: bool) -> None:
        """One transition (one acted step) of the policy's ``episode``; ``intervention``: the
        operator's step (Transition.intervention)."""
        e = self.interventions.setdefault(int(episode), [0, 0, 0, 0])
        e[0] += 1
        if intervention:
            e[1] += 1
            e[2] += int(not e[3])
        e[3] = int(bool(intervention))

    def intervention_summary(self) -> dict[str, object]:
        """The intervention figures of the module doc ({} without transitions heard)."""
        if not self.interventions:
            return {}
        episodes = [
            {"episode": k, "steps": s, "operator_steps": o, "takeovers": t, "step_fraction": o / s}
            for k, (s, o, t, _) in sorted(self.interventions.items())
        ]
        steps = sum(e["steps"] for e in episodes)
        operator = sum(e["operator_steps"] for e in episodes)
        return {
            "intervention_steps": operator,
            "intervention_takeovers": sum(e["takeovers"] for e in episodes),
            "intervention_step_fraction": operator / steps if steps else math.nan,
            "intervention_episodes": episodes,
        }

    def learner_stats(self, updates: float, critic_steps: int, achieved_utd: float, version: int) -> None:
        """The newest learner_stats: agent updates, critic steps, achieved UTD, weights version."""
        self.learner = {
            "updates": float(updates),
            "critic_steps": float(critic_steps),
            "achieved_utd": float(achieved_utd),
            "weights_version": float(version),
        }

    def recent_success(self, window: int = 10) -> float:
        """Success rate over the last ``window`` episodes (NaN before the first)."""
        last = self.episode_log[-window:]
        return sum(s for _, s, _ in last) / len(last) if last else math.nan

    def decision(self, inference_latency_ms: float) -> None:
        if math.isfinite(inference_latency_ms):
            self.inference.record(max(float(inference_latency_ms), 0.0) * 1e-3)

    # --- views -----------------------------------------------------------------------------
    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else math.nan

    @property
    def steps_per_s(self) -> float:
        """Env steps per wall second between the first and the latest feedback."""
        if self._first_step_s is None or self.env_steps < 2:
            return math.nan
        return (self.env_steps - 1) / max(self._last_step_s - self._first_step_s, 1e-9)

    @property
    def done(self) -> bool:
        return bool(self.target_episodes) and self.episodes >= self.target_episodes

    def progress_line(self) -> str:
        """``episodes 3/10 | success 2/3 (67%) | 41.3 steps/s | policy p99 9.1 ms | ...``"""
        target = f"/{self.target_episodes}" if self.target_episodes else ""
        rate = f" ({100.0 * self.success_rate:.0f}%)" if self.episodes else ""
        parts = [
            f"episodes {self.episodes}{target}",
            f"success {self.successes}/{self.episodes}{rate}",
            f"{self.steps_per_s:.1f} steps/s",
            f"policy p99 {_float(self.policy, 'latency_p99_ms'):.1f} ms",
            f"obs->action p99 {_float(self.bridge, 'obs_to_action_p99_ms'):.1f} ms",
            f"age p99 obs {_float(self.policy, 'obs_age_p99_ms'):.0f} / act {self._action_age('p99'):.0f} ms",
            f"hold/sup/drop {self._count(self.policy, 'holds')}/{self._count(self.bridge, 'superseded')}/"
            f"{self._count(self.bridge, 'dropped')}",
            f"weights v{self.policy.get('weights_version', '?')}",
        ]
        if self.learner and self.episodes:
            parts[1] += f", last 10: {100.0 * self.recent_success():.0f}%"
        if self.interventions:
            s = self.intervention_summary()
            share = 100.0 * s["intervention_step_fraction"]
            parts.append(f"interventions {s['intervention_takeovers']} ({share:.0f}% of steps)")
        if self.learner:
            parts.append(f"UTD {self.learner['achieved_utd']:.2f} ({int(self.learner['updates'])} updates)")
        return " | ".join(parts)

    @staticmethod
    def _count(values: Mapping[str, str], key: str) -> str:
        v = _float(values, key)
        return str(int(v)) if math.isfinite(v) else "-"

    def _action_age(self, q: str) -> float:
        """The policy's commands' age when applied: the adapter's on the hardware path (the
        bridge there applies the emulated controller's commands), else the bridge's."""
        source = self.adapter if self.adapter else self.bridge
        return _float(source, f"action_age_{q}_ms")

    def timing(self) -> dict[str, object]:
        """The timing figures of the module doc."""
        out: dict[str, object] = {
            "obs_age_p50_ms": _float(self.policy, "obs_age_p50_ms"),
            "obs_age_p99_ms": _float(self.policy, "obs_age_p99_ms"),
            "action_age_p50_ms": _float(self.bridge, "action_age_p50_ms"),
            "action_age_p99_ms": _float(self.bridge, "action_age_p99_ms"),
            "action_age_count": _float(self.bridge, "action_age_count"),
            "holds": _float(self.bridge, "holds"),
            "bridge_holds": _float(self.bridge, "bridge_holds"),
            "superseded": _float(self.bridge, "superseded"),
            "dropped": _float(self.bridge, "dropped"),
            **{
                f"dropped_{k}": _float(self.bridge, f"dropped_{k}")
                for k in ("late", "out_of_order", "other_episode")
            },
            "watchdog_holds": _float(self.policy, "watchdog_holds"),
            "bridge_overruns": _float(self.bridge, "overruns"),
            "plan_periods": _float(self.bridge, "plan_periods"),
            "plan_rows_dropped": _float(self.bridge, "plan_rows_dropped"),
            "stalled": _float(self.bridge, "stalled"),
            "frame_sets_rendered": _float(self.bridge, "frame_sets_rendered"),
            "frame_sets_dropped": _float(self.bridge, "frame_sets_dropped"),
        }
        if self.adapter:
            out.update(
                adapter_action_age_p50_ms=_float(self.adapter, "action_age_p50_ms"),
                adapter_action_age_p99_ms=_float(self.adapter, "action_age_p99_ms"),
                adapter_dropped=_float(self.adapter, "actions_dropped"),
                adapter_plan_ticks=_float(self.adapter, "plan_ticks"),
                adapter_plan_rows_dropped=_float(self.adapter, "plan_rows_dropped"),
            )
        return out

    def summary(self) -> dict[str, object]:
        """Flat JSON-ready totals (NaN where nothing was measured)."""
        inference = self.inference.stats().as_dict()
        return {
            "episodes": self.episodes,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "env_steps": self.env_steps,
            "env_steps_per_s": self.steps_per_s,
            "mean_episode_length": float(np.mean(self.episode_lengths)) if self.episode_lengths else math.nan,
            "policy_latency_p50_ms": _float(self.policy, "latency_p50_ms"),
            "policy_latency_p99_ms": _float(self.policy, "latency_p99_ms"),
            "policy_deadline_misses": _float(self.policy, "deadline_misses"),
            "policy_holds": _float(self.policy, "holds"),
            "policy_gc_collections": _float(self.policy, "gc_collections"),
            "policy_gc_pause_max_ms": _float(self.policy, "gc_pause_max_ms"),
            "policy_gc_pause_total_ms": _float(self.policy, "gc_pause_total_ms"),
            "obs_to_action_p50_ms": _float(self.bridge, "obs_to_action_p50_ms"),
            "obs_to_action_p99_ms": _float(self.bridge, "obs_to_action_p99_ms"),
            "obs_to_action_count": _float(self.bridge, "obs_to_action_count"),
            "weights_version": self.policy.get("weights_version", ""),
            **{f"inference_{k}": inference[k] for k in ("count", "p50_ms", "p99_ms", "max_ms", "mean_ms")},
            **{f"learner_{k}": v for k, v in self.learner.items()},
            **self.timing(),
            "episode_log": [list(e) for e in self.episode_log],
            "episode_commands": list(self.episode_commands),
            **self.intervention_summary(),
        }
