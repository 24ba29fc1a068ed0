"""Executor-side freshness of the policy's commands: apply the newest, drop what is too old.

Pure Python, no ROS. Every ActionCommand carries the stamp of the observation it answers. An
executor (the Franka adapter here; the sim bridge has its own realtime inbox with the same rules,
:class:`expo_sim.ros.bridge_protocol.RealtimeInbox`) asks :meth:`ActionFreshness.admit` for each
command as it arrives, on its own clock:

- a command whose stamp is not newer than the newest one applied is dropped (*out of order*: a
  newer decision already took effect);
- a command older than ``max_age_s`` (now minus its stamp) is dropped (*late*: the state it
  answered is gone);
- holds are never dropped as late (stopping on old information is still safe), only out of order.

Admitted commands' ages are kept for diagnostics (``action_age_*``); drops are counted.

Plans (action chunks): ``executor.plan_mode`` (off, receding, ensemble), with
``executor.plan_max_age_ms`` and ``executor.ensemble_decay``, hands the admitted commands to an
:class:`expo_ros.action_plan.PlanExecutor` (the same rules as the sim bridge's): with receding or
ensemble a tick without a new command applies the plan's row due then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from expo_ros.action_plan import PlanConfig, plan_mode
from expo_ros.latency import LatencyTracker
from expo_ros.params import ParamSpec, as_bool, as_float

#: Parameters an executor node declares beside its own (names under ``executor.``).
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "executor.max_action_age_ms",
        100.0,
        "drop a policy command whose observation is older than this when it arrives (node clock; "
        "holds always apply) [ms]",
    ),
    ParamSpec(
        "executor.plan_mode",
        "off",
        "the commands' plans (action chunks, expo_ros.action_plan): off (ignored), receding (a tick "
        "without a new command applies the newest command's row due then), ensemble (the weighted "
        "mean of every command's row for the period)",
    ),
    ParamSpec(
        "executor.plan_max_age_ms",
        200.0,
        "plan_mode receding/ensemble: a plan row is used only while its observation is at most "
        "this old (node clock) [ms]",
    ),
    ParamSpec(
        "executor.ensemble_decay",
        0.01,
        "plan_mode ensemble: the i-th oldest prediction weighs exp(-decay * i)",
    ),
    ParamSpec(
        "executor.anchor_deltas",
        True,
        "apply a command's pose delta to the pose measured at the stamp of the observation it "
        "answers (expo_franka.pose_anchor), not the pose measured when it arrives; holds and plan "
        "rows use the latest measured pose",
    ),
    ParamSpec(
        "executor.anchor_tolerance_ms",
        60.0,
        "anchor_deltas: the remembered pose must be at most this much older than the command's "
        "stamp; otherwise the latest measured pose is used and counted (anchor_misses) [ms]",
    ),
)


def max_age_s(value: object) -> float:
    """The ``executor.max_action_age_ms`` parameter value, checked, in seconds."""
    return as_float("executor.max_action_age_ms", value, 0.0) * 1e-3


def plan_config(value: Callable[[str], Any]) -> PlanConfig:
    """The ``executor.plan_*`` parameters (``value(name)``) as a checked PlanConfig."""
    return PlanConfig(
        plan_mode(value("executor.plan_mode")),
        value("executor.plan_max_age_ms"),
        value("executor.ensemble_decay"),
    )


def anchor_config(value: Callable[[str], Any]) -> tuple[bool, int]:
    """``executor.anchor_deltas`` and ``executor.anchor_tolerance_ms`` (``value(name)``), checked:
    (anchor, tolerance in ns)."""
    anchor = as_bool("executor.anchor_deltas", value("executor.anchor_deltas"))
    tolerance_ms = as_float("executor.anchor_tolerance_ms", value("executor.anchor_tolerance_ms"), 0.0)
    return anchor, round(tolerance_ms * 1e6)


class ActionFreshness:
    """Newest-wins gate with an age bound; see the module doc."""

    def __init__(self, max_age_s: float, window: int = 1000) -> None:
        if not (math.isfinite(max_age_s) and max_age_s > 0.0):
            raise ValueError(f"ActionFreshness.max_age_s must be > 0 s, got {max_age_s}")
        self.max_age_s = float(max_age_s)
        self.age = LatencyTracker(window)  # ages of the admitted commands [s]
        self.dropped = {"late": 0, "out_of_order": 0}
        self._newest_ns = -1

    def admit(self, stamp_ns: int, now_ns: int, hold: bool = False) -> str:
        """'' when the command may take effect now, else why it is dropped ('late', 'out_of_order')."""
        if stamp_ns <= self._newest_ns:
            self.dropped["out_of_order"] += 1
            return "out_of_order"
        age_s = (now_ns - stamp_ns) * 1e-9
        if age_s > self.max_age_s and not hold:
            self.dropped["late"] += 1
            return "late"
        self._newest_ns = stamp_ns
        self.age.record(max(age_s, 0.0))
        return ""

    def reset(self) -> None:
        """Forget the newest stamp (deactivate: a restarted source may count from anywhere)."""
        self._newest_ns = -1

    def values(self) -> dict[str, float | int]:
        """Diagnostics key/values: ``action_age_{count,p50_ms,p99_ms,max_ms}``, ``dropped_*``."""
        a = self.age.stats().as_dict()
        return {
            **{f"action_age_{k}": a[k] for k in ("count", "p50_ms", "p99_ms", "max_ms")},
            **{f"actions_dropped_{k}": v for k, v in self.dropped.items()},
            "actions_dropped": sum(self.dropped.values()),
        }
