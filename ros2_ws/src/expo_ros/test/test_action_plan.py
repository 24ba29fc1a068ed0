"""The chunk executor (expo_ros.action_plan) on a deterministic clock: integer nanoseconds."""

from __future__ import annotations

import numpy as np
import pytest
from expo_ros.action_plan import PlanConfig, PlanExecutor, ensemble_weights, plan_mode
from expo_ros.conversions import Command

P = 50_000_000  # 50 ms control period [ns]
MS = 1_000_000


def _cmd(stamp_ns: int, base: float, rows: int = 3, hold: bool = False) -> Command:
    """A command whose action is ``base`` everywhere and whose plan row i is ``base + i + 1``."""
    action = np.full(7, base, np.float32)
    plan = (
        None if rows == 0 or hold else np.stack([np.full(7, base + i + 1, np.float32) for i in range(rows)])
    )
    return Command(
        action=action, stamp_ns=stamp_ns, hold=hold, plan=plan, plan_period_ns=P if plan is not None else 0
    )


def _walk(ex: PlanExecutor, start_ns: int, end_ns: int, step_ns: int = 10 * MS) -> list[tuple[int, float]]:
    """``due`` at every 10 ms tick in [start, end): (time in ms, first element) of each change."""
    out = []
    for t in range(start_ns, end_ns, step_ns):
        a = ex.due(t)
        if a is not None:
            out.append((t // MS, float(a[0])))
    return out


def test_off_ignores_plans_exactly() -> None:
    ex = PlanExecutor(PlanConfig("off"))
    a = ex.command(_cmd(0, 0.0), 20 * MS)
    np.testing.assert_array_equal(a, np.zeros(7, np.float32))
    assert _walk(ex, 30 * MS, 400 * MS) == [] and ex.plan_steps == 0
    assert ex.command(_cmd(50 * MS, 0.0, hold=True), 60 * MS) is None  # a hold: the executor's own


def test_receding_covers_a_stalled_decision_row_by_row_in_order() -> None:
    """One command at 0 (action + 3 rows), then the next decision stalls for 170 ms: rows 1, 2, 3
    take effect at 50, 100, 150 ms, each once; then nothing (the plan is used up: keep the last)."""
    ex = PlanExecutor(PlanConfig("receding", max_age_ms=500.0))
    np.testing.assert_array_equal(ex.command(_cmd(0, 0.0), 20 * MS), np.zeros(7))
    assert _walk(ex, 20 * MS, 300 * MS) == [(50, 1.0), (100, 2.0), (150, 3.0)]
    assert ex.plan_steps == 3 and ex.plan_rows_dropped == 0
    # a fresh command replaces the plan; its own rows follow from its stamp
    np.testing.assert_array_equal(ex.command(_cmd(300 * MS, 10.0), 330 * MS), np.full(7, 10.0))
    assert _walk(ex, 340 * MS, 400 * MS) == [(350, 11.0)]
    # a command taking effect more than a period after its observation starts at its row for now
    np.testing.assert_array_equal(ex.command(_cmd(400 * MS, 20.0), 460 * MS), np.full(7, 21.0))
    assert _walk(ex, 470 * MS, 700 * MS) == [(500, 22.0), (550, 23.0)]


def test_receding_drops_rows_past_the_age_bound() -> None:
    ex = PlanExecutor(PlanConfig("receding", max_age_ms=120.0))
    ex.command(_cmd(0, 0.0), 20 * MS)
    assert _walk(ex, 20 * MS, 300 * MS) == [(50, 1.0), (100, 2.0)]  # row 3 due at 150 ms > 120 ms
    assert ex.plan_rows_dropped == 1 and ex.plan_steps == 2


def test_receding_hold_ends_the_plan_and_reset_forgets_it() -> None:
    ex = PlanExecutor(PlanConfig("receding"))
    ex.command(_cmd(0, 0.0), 10 * MS)
    assert ex.command(_cmd(50 * MS, 0.0, hold=True), 60 * MS) is None
    assert _walk(ex, 60 * MS, 300 * MS) == []  # the plan of the command before the hold never runs
    ex.command(_cmd(300 * MS, 5.0), 310 * MS)
    ex.reset()  # episode end
    assert _walk(ex, 310 * MS, 500 * MS) == []


def test_ensemble_weights_oldest_first() -> None:
    np.testing.assert_allclose(ensemble_weights(1, 0.5), [1.0])
    w = ensemble_weights(3, np.log(2.0))  # 1, 1/2, 1/4 normalized
    np.testing.assert_allclose(w, np.array([1.0, 0.5, 0.25]) / 1.75)
    np.testing.assert_allclose(ensemble_weights(4, 0.0), np.full(4, 0.25))
    assert ensemble_weights(2, -1.0)[1] > ensemble_weights(2, -1.0)[0]  # negative: newest weighs more
    with pytest.raises(ValueError, match="n >= 1"):
        ensemble_weights(0, 0.1)


def test_ensemble_blends_every_prediction_for_the_period() -> None:
    """Commands at 0 and 50 ms: at 50 ms the first's row 1 (value 1) and the second's row 0
    (value 10) blend with weights 1 : e^-d (oldest first); at 100 ms rows 2 (2) and 1 (11)."""
    d = np.log(2.0)
    ex = PlanExecutor(PlanConfig("ensemble", max_age_ms=500.0, ensemble_decay=d))
    np.testing.assert_allclose(ex.command(_cmd(0, 0.0), 10 * MS), np.zeros(7))
    np.testing.assert_allclose(ex.due(50 * MS), np.full(7, 1.0))  # the first's row 1 alone
    blend = ex.command(_cmd(50 * MS, 10.0), 60 * MS)
    np.testing.assert_allclose(blend, np.full(7, (1.0 * 1 + 10.0 * 0.5) / 1.5), rtol=1e-6)
    assert ex.due(70 * MS) is None  # nothing changed within the period
    np.testing.assert_allclose(ex.due(100 * MS), np.full(7, (2.0 + 11.0 * 0.5) / 1.5), rtol=1e-6)
    assert ex.plan_steps == 2
    # 200 ms: the first plan is used up (rows to 150 ms); the second's row 3 (13) alone
    np.testing.assert_allclose(ex.due(200 * MS), np.full(7, 13.0))


def test_ensemble_age_bound_and_commands_without_plans() -> None:
    ex = PlanExecutor(PlanConfig("ensemble", max_age_ms=120.0, ensemble_decay=0.0))
    ex.command(_cmd(0, 0.0), 10 * MS)
    ex.command(_cmd(100 * MS, 10.0), 110 * MS)  # blends the first's row 2 (2) and 10: mean 6
    np.testing.assert_allclose(ex.due(150 * MS), np.full(7, 11.0))  # first's row 3 is 150 ms old
    assert ex.plan_rows_dropped == 1
    # a command without a plan counts until the next command only (no moving average of actions)
    ex = PlanExecutor(PlanConfig("ensemble", ensemble_decay=0.0))
    np.testing.assert_allclose(ex.command(_cmd(0, 1.0, rows=0), 10 * MS), np.full(7, 1.0))
    np.testing.assert_allclose(ex.command(_cmd(50 * MS, 3.0, rows=0), 60 * MS), np.full(7, 3.0))
    assert _walk(ex, 60 * MS, 300 * MS) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "chunky"}, "plan_mode"),
        ({"max_age_ms": 0.0}, "plan_max_age_ms"),
        ({"max_age_ms": float("nan")}, "plan_max_age_ms"),
        ({"ensemble_decay": float("inf")}, "ensemble_decay"),
        ({"ensemble_decay": 99.0}, "ensemble_decay"),
    ],
)
def test_bad_config_names_the_parameter(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PlanConfig(**kwargs)


def test_plan_mode_reads_yaml_off() -> None:
    assert plan_mode(False) == "off" and plan_mode("receding") == "receding"
    with pytest.raises(ValueError, match="plan_mode"):
        PlanConfig(plan_mode(True))
