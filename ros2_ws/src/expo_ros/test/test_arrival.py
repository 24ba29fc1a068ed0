"""ArrivalPredictor and spin_timeout: the poll window before the next observation."""

import pytest
from expo_ros.arrival import ArrivalPredictor, spin_timeout


def test_the_window_opens_lead_before_the_shortest_recent_gap():
    p = ArrivalPredictor(lead_s=0.001, max_poll_s=0.003)
    assert p.window() is None
    p.arrived(1.000)
    p.arrived(1.040)
    assert p.window() is None  # one gap is not a pattern yet
    p.arrived(1.085)  # gaps 40 and 45 ms
    start, end = p.window()
    assert start == pytest.approx(1.085 + 0.040 - 0.001) and end == pytest.approx(start + 0.003)
    for t in (1.2, 1.3):  # slower observations: the shortest gap in the window still rules
        p.arrived(t)
    assert p.window()[0] == pytest.approx(1.3 + 0.040 - 0.001)


def test_old_gaps_leave_the_window():
    p = ArrivalPredictor(lead_s=0.0, max_poll_s=0.001, window=3)
    for t in (0.0, 0.01, 0.11, 0.21, 0.31):  # a 10 ms gap, then three of 100 ms
        p.arrived(t)
    assert p.window()[0] == pytest.approx(0.41)


def test_spin_timeout_polls_inside_blocks_before_and_idles_after():
    w = (10.0, 10.003)
    assert spin_timeout(None, 5.0, 0.1) == 0.1
    assert spin_timeout(w, 9.95, 0.1) == pytest.approx(0.05)  # sleep until the window opens
    assert spin_timeout(w, 9.0, 0.1) == 0.1  # never longer than the idle timeout
    assert spin_timeout(w, 10.001, 0.1) == 0.0
    assert spin_timeout(w, 10.003, 0.1) == 0.1  # the observation did not come: block again


def test_bad_settings_are_refused():
    for kwargs in ({"lead_s": -1.0, "max_poll_s": 0.001}, {"lead_s": 0.0, "max_poll_s": 0.0}):
        with pytest.raises(ValueError):
            ArrivalPredictor(**kwargs)
