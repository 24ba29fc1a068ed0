"""Safety filter: every rule fires when it should, never when it should not, and never raises."""

from __future__ import annotations

import numpy as np
import pytest
from expo_policy.safety import SafetyLimits, filter_action, hold_action

LIMITS = SafetyLimits(workspace_low=(-0.5, -0.5, 0.8), workspace_high=(0.5, 0.5, 1.3))
CENTER = np.array([0.0, 0.0, 1.0])


def act(*vals: float) -> np.ndarray:
    return np.array(vals, dtype=np.float32)


def test_safe_action_passes_unchanged() -> None:
    a = act(0.1, -0.2, 0.3, 0.0, 0.05, -0.1, 1.0)
    res = filter_action(a, a, CENTER, LIMITS)
    assert not res.modified and not res.rejected and res.reasons == ()
    assert res.action.dtype == np.float32
    np.testing.assert_array_equal(res.action, a)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_is_rejected_with_hold(bad: float) -> None:
    prev = act(0.2, 0.2, 0.2, 0.0, 0.0, 0.0, 0.7)
    a = prev.copy()
    a[4] = bad
    res = filter_action(a, prev, CENTER, LIMITS)
    assert res.rejected and res.modified
    np.testing.assert_array_equal(res.action, act(0, 0, 0, 0, 0, 0, 0.7))
    assert "non-finite" in res.reasons[0] and "4" in res.reasons[0]


def test_bad_shape_and_bad_ee_pos_reject_instead_of_raising() -> None:
    prev = act(0, 0, 0, 0, 0, 0, -1.0)
    res = filter_action(np.zeros(6), prev, CENTER, LIMITS)
    assert res.rejected and "shape" in res.reasons[0]
    assert res.action.shape == (7,) and res.action[-1] == -1.0
    res = filter_action(np.zeros(7), prev, np.array([0.0, np.nan, 1.0]), LIMITS)
    assert res.rejected and "end-effector" in res.reasons[0]
    res = filter_action(["a"] * 7, prev, CENTER, LIMITS)  # type: ignore[arg-type]
    assert res.rejected and "not numeric" in res.reasons[0]


def test_hold_action_keeps_gripper_or_zero_without_history() -> None:
    np.testing.assert_array_equal(
        hold_action(act(0.3, 0.3, 0.3, 0.1, 0.1, 0.1, 1.0)), act(0, 0, 0, 0, 0, 0, 1)
    )
    np.testing.assert_array_equal(hold_action(None), np.zeros(7, np.float32))
    np.testing.assert_array_equal(hold_action(act(0, 0, 0, 0, 0, 0, np.nan)), np.zeros(7, np.float32))
    assert hold_action(None).dtype == np.float32


def test_clip_to_bounds_with_per_dim_limits() -> None:
    limits = SafetyLimits(action_low=-0.5, action_high=(0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 1.0))
    res = filter_action(act(2.0, -3.0, 0.1, 0.3, 0, 0, 1.0), None, CENTER, limits)
    np.testing.assert_allclose(res.action, act(0.5, -0.5, 0.1, 0.2, 0, 0, 1.0))
    assert res.modified and not res.rejected
    assert res.reasons == ("clipped to bounds: dims 0,1,3",)


def test_delta_limit_against_previous_action() -> None:
    prev = act(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    res = filter_action(act(0.9, -0.9, 0.4, 0.0, 0.0, 0.0, 1.0), prev, CENTER, LIMITS)
    # Pose dims move at most 0.5 per step; the gripper (limit 2.0) flips freely.
    np.testing.assert_allclose(res.action, act(0.5, -0.5, 0.4, 0.0, 0.0, 0.0, 1.0))
    assert res.reasons == ("delta limited: dims 0,1",)
    # Without history there is nothing to limit against.
    res = filter_action(act(0.9, 0, 0, 0, 0, 0, 1.0), None, CENTER, LIMITS)
    assert not res.modified


def test_workspace_clips_only_outward_motion() -> None:
    near_top = np.array([0.0, 0.49, 1.29])  # 1 cm below z max, 1 cm inside y max
    res = filter_action(act(0.0, 1.0, 1.0, 0, 0, 0, 0), None, near_top, LIMITS)
    # 1 cm room / 0.05 m per unit -> at most 0.2 of action; the target lands on the wall.
    np.testing.assert_allclose(res.action[:3], [0.0, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(near_top + 0.05 * res.action[:3], [0.0, 0.5, 1.3], atol=1e-6)
    assert res.reasons[0].startswith("workspace: yz")
    # Moving back inside is untouched.
    res = filter_action(act(0.0, -1.0, -1.0, 0, 0, 0, 0), None, near_top, LIMITS)
    assert not res.modified


def test_workspace_outside_box_never_pushes_further_out() -> None:
    below = np.array([0.0, 0.0, 0.7])  # 10 cm under the floor of the box
    res = filter_action(act(0.3, 0.0, -0.4, 0, 0, 0, 0), None, below, LIMITS)
    assert res.action[2] == 0.0 and res.action[0] == pytest.approx(0.3)
    assert res.modified and "z" in res.reasons[0]
    res = filter_action(act(0.0, 0.0, 0.4, 0, 0, 0, 0), None, below, LIMITS)
    assert not res.modified  # climbing back is allowed at full speed


def test_rules_compose_in_order_and_result_stays_in_bounds() -> None:
    rng = np.random.default_rng(0)
    prev = np.zeros(7, np.float32)
    for _ in range(500):
        a = rng.uniform(-3, 3, 7).astype(np.float32)
        pos = rng.uniform(-0.7, 0.7, 3) + np.array([0.0, 0.0, 1.05])
        res = filter_action(a, prev, pos, LIMITS)
        out = res.action
        assert np.all(out >= -1) and np.all(out <= 1)
        assert np.all(np.abs(out[3:6] - prev[3:6]) <= 0.5 + 1e-6)
        # Translations obey the delta limit unless the workspace shrank them toward zero.
        delta_limited = np.clip(np.clip(a, -1, 1), prev - 0.5, prev + 0.5)[:3]
        shrunk = (np.abs(out[:3]) < np.abs(delta_limited)) & (out[:3] * delta_limited >= 0)
        assert np.all((out[:3] == delta_limited) | shrunk)
        target = pos + 0.05 * out[:3].astype(np.float64)
        lo, hi = np.array(LIMITS.workspace_low), np.array(LIMITS.workspace_high)
        # Never further outside the box than where the end effector already is.
        assert np.all(np.maximum(target - hi, 0) <= np.maximum(pos - hi, 0) + 1e-6)
        assert np.all(np.maximum(lo - target, 0) <= np.maximum(lo - pos, 0) + 1e-6)
        assert res.modified == bool(np.any(out != a))
        prev = out


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"action_low": 0.5}, "action_low/high[0]"),
        ({"action_high": (1.0,) * 6}, "action_high"),
        ({"max_delta": 0.0}, "max_delta"),
        ({"max_delta": 3.0}, "max_delta"),
        ({"workspace_low": (0.0, 0.0, 2.0)}, "workspace_low.z"),
        ({"workspace_high": (1.0, np.nan, 1.0)}, "workspace_high"),
        ({"pos_scale": -0.05}, "pos_scale"),
        ({"action_dim": 3}, "action_dim"),
    ],
)
def test_limits_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        SafetyLimits(**kwargs)


def test_limits_broadcast_scalars_to_tuples() -> None:
    lim = SafetyLimits(action_low=-0.8, max_delta=0.3)
    assert lim.action_low == (-0.8,) * 7 and lim.max_delta == (0.3,) * 7
    assert lim.action_high == (1.0,) * 7


def _reference(action, prev, pos, lim: SafetyLimits) -> tuple[np.ndarray, bool, int]:
    """The rules in their plainest form (np.clip on the tuples, one rule after another); the
    filter computes them with cached arrays and cheaper ops. Returns (sent, modified, reasons)."""
    a = np.array(action, dtype=np.float64)
    proposed = a.astype(np.float32)
    low, high = np.asarray(lim.action_low), np.asarray(lim.action_high)
    n = int(((a < low) | (a > high)).any())
    a = np.clip(a, low, high)
    if prev is not None:
        md = np.asarray(lim.max_delta)
        n += int((np.abs(a - prev) > md).any())
        a = np.clip(a, prev - md, prev + md)
    up = np.maximum(np.asarray(lim.workspace_high) - pos, 0.0) / lim.pos_scale
    down = np.maximum(pos - np.asarray(lim.workspace_low), 0.0) / lim.pos_scale
    t = np.clip(a[:3], -down, up)
    n += int((t != a[:3]).any())
    a[:3] = t
    sent = np.clip(a, low, high).astype(np.float32)
    return sent, bool((sent != proposed).any()), n


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the huge values overflow, in both alike
def test_the_filter_equals_the_plain_rules_on_random_cases() -> None:
    rng = np.random.default_rng(7)
    limits = [
        SafetyLimits(),
        SafetyLimits(action_low=(-0.5, -1, -1, -0.2, -1, -1, -1), action_high=0.8, max_delta=0.1),
        SafetyLimits(workspace_low=(-0.1, -0.1, 0.9), workspace_high=(0.1, 0.1, 1.0), pos_scale=0.2),
    ]
    for i in range(3000):
        lim = limits[i % len(limits)]
        action = rng.uniform(-1.5, 1.5, 7)
        prev = None if i % 4 == 0 else rng.uniform(-1.2, 1.2, 7)  # a history may lie outside today's bounds
        pos = rng.uniform((-0.6, -0.6, 0.7), (0.5, 0.6, 1.5))  # inside and outside the box
        if i % 5 == 0:  # ties with the bounds, signed zeros, huge values
            action[rng.integers(7)] = rng.choice([0.0, -0.0, 1.0, -1.0, 0.8, -0.5, 1e308, -1e308])
        if i % 11 == 0:
            pos[rng.integers(3)] = rng.choice([1e308, -1e308, 0.8, 1.35])
        res = filter_action(action, prev, pos, lim)
        sent, modified, n_rules = _reference(action, prev, pos, lim)
        assert res.action.dtype == np.float32 and not res.rejected
        np.testing.assert_array_equal(res.action, sent)
        assert res.modified == modified and len(res.reasons) == n_rules


def test_limits_stay_plain_data_that_copies_and_pickles() -> None:
    import copy
    import dataclasses
    import pickle

    lim = SafetyLimits(max_delta=0.1, workspace_low=(-0.5, -0.5, 0.8))
    assert [f.name for f in dataclasses.fields(lim)] == [
        "action_dim",
        "action_low",
        "action_high",
        "max_delta",
        "workspace_low",
        "workspace_high",
        "pos_scale",
    ]
    action, prev = np.full(7, 0.9), np.zeros(7)
    want = filter_action(action, prev, CENTER, lim)
    for other in (pickle.loads(pickle.dumps(lim)), copy.deepcopy(lim), dataclasses.replace(lim)):
        assert other == lim and hash(other) == hash(lim)
        got = filter_action(action, prev, CENTER, other)
        np.testing.assert_array_equal(got.action, want.action)
        assert got.reasons == want.reasons
    wider = dataclasses.replace(lim, max_delta=0.5)
    assert filter_action(action, prev, CENTER, wider).action[0] == pytest.approx(0.5)
