"""Input watchdog: missing, stale, future and optional inputs; stale-event counting."""

from __future__ import annotations

import pytest
from expo_ros.watchdog import InputSpec, InputWatchdog


def make() -> InputWatchdog:
    return InputWatchdog(
        [
            InputSpec("joint_states", 0.2),
            InputSpec("ee_pose", 0.2),
            InputSpec("image_raw", 0.5, required=False),
        ]
    )


def test_missing_required_inputs_block_and_optional_do_not() -> None:
    wd = make()
    st = wd.check(10.0)
    assert not st.ok and st.missing == ("joint_states", "ee_pose") and st.stale == ()
    assert "joint_states never received" in st.reason and st.reason.startswith("hold:")
    wd.mark("joint_states", 10.0)
    wd.mark("ee_pose", 10.05)
    st = wd.check(10.1)
    assert st.ok and st.missing == () and st.stale == () and st.reason == ""


def test_stale_required_input_holds_with_age_in_reason() -> None:
    wd = make()
    wd.mark("joint_states", 1.0)
    wd.mark("ee_pose", 1.3)
    st = wd.check(1.35)
    assert not st.ok and st.stale == ("joint_states",)
    assert "joint_states 0.350 s old > 0.200 s" in st.reason
    assert wd.age("joint_states", 1.35) == pytest.approx(0.35)
    assert wd.age("image_raw", 1.35) is None


def test_stale_optional_input_degrades_without_blocking() -> None:
    wd = make()
    for name in ("joint_states", "ee_pose", "image_raw"):
        wd.mark(name, 5.0)
    wd.mark("joint_states", 5.9)
    wd.mark("ee_pose", 5.9)
    st = wd.check(6.0)
    assert st.ok and st.stale == ("image_raw",)
    assert st.reason.startswith("degraded:") and "(optional)" in st.reason


def test_future_stamp_beyond_max_age_is_stale() -> None:
    """Sim time jumping back (bridge restart) must not make old receipts look fresh."""
    wd = make()
    wd.mark("joint_states", 100.0)
    wd.mark("ee_pose", 100.0)
    assert wd.check(100.1).ok
    st = wd.check(2.0)
    assert not st.ok and set(st.stale) == {"joint_states", "ee_pose"}
    assert "in the future" in st.reason


def test_stale_events_count_transitions_not_checks() -> None:
    wd = make()
    wd.mark("joint_states", 0.0)
    wd.mark("ee_pose", 0.0)
    for t in (0.5, 0.6, 0.7):  # one stale episode, checked three times
        wd.check(t)
    wd.mark("joint_states", 0.8)
    wd.check(0.85)
    wd.check(1.5)  # second episode
    assert wd.stale_events["joint_states"] == 2
    assert wd.stale_events["ee_pose"] == 1  # never refreshed: one long episode
    assert wd.stale_events["image_raw"] == 0


def test_reset_forgets_receipts_but_keeps_counts() -> None:
    wd = make()
    wd.mark("joint_states", 0.0)
    wd.mark("ee_pose", 0.0)
    wd.check(1.0)
    wd.reset()
    st = wd.check(1.0)
    assert st.missing == ("joint_states", "ee_pose")
    assert wd.stale_events["joint_states"] == 1


def test_configuration_errors() -> None:
    wd = make()
    with pytest.raises(KeyError, match="not watched"):
        wd.mark("joint_state", 1.0)  # typo must not silently disable the watchdog
    with pytest.raises(ValueError, match="already watched"):
        wd.add_input("ee_pose", 0.1)
    with pytest.raises(ValueError, match="max_age_s"):
        InputSpec("x", 0.0)
    assert [s.name for s in wd.inputs] == ["joint_states", "ee_pose", "image_raw"]
