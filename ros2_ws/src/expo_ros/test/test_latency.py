"""Latency tracker: percentiles over a rolling window, deadline misses, loop rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from expo_ros.latency import LatencyTracker


def test_empty_tracker_reports_nan() -> None:
    st = LatencyTracker().stats()
    assert st.count == 0 and st.deadline_misses == 0
    assert math.isnan(st.p50_s) and math.isnan(st.p99_s) and math.isnan(st.rate_hz)


def test_percentiles_match_numpy_over_window() -> None:
    tr = LatencyTracker(window=100)
    rng = np.random.default_rng(0)
    samples = rng.exponential(0.01, size=250)
    for s in samples:
        tr.record(float(s))
    st = tr.stats()
    last = samples[-100:]  # only the window counts for percentiles
    assert st.count == 250
    assert st.p50_s == pytest.approx(np.percentile(last, 50))
    assert st.p99_s == pytest.approx(np.percentile(last, 99))
    assert st.max_s == pytest.approx(last.max()) and st.mean_s == pytest.approx(last.mean())


def test_deadline_misses_are_cumulative() -> None:
    tr = LatencyTracker(window=2, deadline_s=0.05)
    assert tr.record(0.06) is True
    assert tr.record(0.01) is False
    tr.record(0.02)
    tr.record(0.051)
    st = tr.stats()
    assert st.deadline_misses == 2  # the first miss left the window but still counts
    assert st.max_s == pytest.approx(0.051)
    assert st.as_dict()["p50_ms"] == pytest.approx((0.02 + 0.051) / 2 * 1e3)


def test_rate_from_ticks_and_clock_jump_back() -> None:
    tr = LatencyTracker(window=50)
    for i in range(101):
        tr.tick(10.0 + i * 0.05)  # 20 Hz
    assert tr.stats().rate_hz == pytest.approx(20.0)
    tr.tick(0.0)  # sim time restarted
    assert math.isnan(tr.rate_hz)
    tr.tick(0.1)
    assert tr.rate_hz == pytest.approx(10.0)


def test_measure_records_elapsed_time_even_on_error() -> None:
    tr = LatencyTracker()
    with tr.measure():
        sum(range(1000))
    with pytest.raises(RuntimeError), tr.measure():
        raise RuntimeError("inference failed")
    st = tr.stats()
    assert st.count == 2 and 0.0 <= st.max_s < 1.0


def test_validation_and_reset() -> None:
    with pytest.raises(ValueError, match="window"):
        LatencyTracker(window=1)
    with pytest.raises(ValueError, match="deadline_s"):
        LatencyTracker(deadline_s=0.0)
    tr = LatencyTracker(deadline_s=0.01)
    with pytest.raises(ValueError, match="latency"):
        tr.record(-1.0)
    with pytest.raises(ValueError, match="latency"):
        tr.record(math.nan)
    tr.record(0.5)
    tr.reset()
    assert tr.stats().count == 0 and tr.stats().deadline_misses == 0
