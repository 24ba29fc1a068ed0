"""expo_ros.heap: freezing the heap out of the collector's passes, and timing its pauses."""

from __future__ import annotations

import gc
import itertools
import weakref

import pytest
from expo_ros.heap import PauseMeter, freeze, unfreeze


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_keeps_frozen_objects_out_of_collections_until_the_next_freeze() -> None:
    obj = _Cycle()
    ref = weakref.ref(obj)
    frozen, took_s = freeze()
    assert frozen == gc.get_freeze_count() > 0 and took_s >= 0
    del obj  # unreachable now, but frozen: no pass looks at it
    gc.collect()
    assert ref() is not None
    freeze()  # unfreezes first: the collection in it frees the cycle
    assert ref() is None
    assert unfreeze() > 0 and gc.get_freeze_count() == 0 and unfreeze() == 0


def test_objects_created_after_the_freeze_are_collected() -> None:
    freeze()
    obj = _Cycle()
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is None


def test_pause_meter_counts_pauses_with_its_clock() -> None:
    ticks = itertools.count()
    meter = PauseMeter(clock=lambda: next(ticks) * 0.001)  # every clock read 1 ms later
    assert meter.values() == {
        "gc_collections": 0,
        "gc_pause_max_ms": 0.0,
        "gc_pause_total_ms": 0.0,
        "gc_pause_max_generation": -1,
    }
    meter("start", {"generation": 0})
    meter("stop", {"generation": 0})  # 1 ms
    meter("start", {"generation": 2})
    next(ticks)
    meter("stop", {"generation": 2})  # 2 ms
    meter("stop", {"generation": 1})  # no start: not a pause
    v = meter.values()
    assert v["gc_collections"] == 2 and v["gc_pause_max_generation"] == 2
    assert v["gc_pause_max_ms"] == pytest.approx(2.0) and v["gc_pause_total_ms"] == pytest.approx(3.0)


def test_pause_meter_hears_the_collector_while_installed() -> None:
    meter = PauseMeter().install().install()  # a second install is the same one
    try:
        assert gc.callbacks.count(meter) == 1
        gc.collect()
        assert meter.collections >= 1 and meter.max_s > 0 and meter.max_generation == 2
    finally:
        meter.uninstall()
    seen = meter.collections
    gc.collect()
    assert meter.collections == seen and meter not in gc.callbacks
