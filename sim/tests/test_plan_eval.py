"""expo_sim.session.plan_eval: the virtual-time executor loop counts what happened to each period."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from expo_policy.backends import Decision
from expo_ros.action_plan import PlanConfig
from expo_sim.envs.robosuite_env import make_env
from expo_sim.session.plan_eval import Timing, run_episode


class _Constant:
    """A backend that always proposes a small +x move and a 3-row plan of the same."""

    def decide(self, obs: np.ndarray) -> Decision:
        a = np.array([0.2, 0, 0, 0, 0, 0, -1], np.float32)
        return Decision(a, a[None], np.zeros(1, np.float32), 0, plan=np.tile(a, (3, 1)))


@pytest.fixture(scope="module")
def env():
    e = make_env("lift", horizon=6)
    yield e
    e.close()


def test_on_time_commands_fill_every_period(env) -> None:
    r = run_episode(env, _Constant(), PlanConfig("receding"), Timing(0.0, 0.0), seed=0, horizon=6)
    assert r["steps"] == 6 and r["holds"] == 0 and r["plan_periods"] == 0 and r["dropped_late"] == 0


@dataclass(frozen=True)
class _EveryOther(Timing):
    """Every second command stalled: it arrives 150 ms after its observation (too old), the
    others 30 ms after."""

    calls: list = field(default_factory=list)

    def delay_ns(self, rng: np.random.Generator) -> tuple[int, bool]:
        self.calls.append(1)
        stalled = len(self.calls) % 2 == 0
        return (150_000_000 if stalled else 30_000_000), stalled


def test_stalled_commands_are_covered_by_the_plan_only_in_receding(env) -> None:
    """Periods 1, 3, 5 get no new command: off leaves them as they are (holds), receding fills
    them from the previous command's plan."""
    off = run_episode(env, _Constant(), PlanConfig("off"), _EveryOther(), seed=0, horizon=6)
    rec = run_episode(env, _Constant(), PlanConfig("receding"), _EveryOther(), seed=0, horizon=6)
    assert off["stalled"] == rec["stalled"] == 3
    assert (off["holds"], off["plan_periods"]) == (3, 0)
    assert (rec["holds"], rec["plan_periods"]) == (0, 3)
    # the first stalled command arrives at 200 ms behind a newer one; the others after the end
    assert off["dropped_late"] + off["dropped_out_of_order"] == 1
