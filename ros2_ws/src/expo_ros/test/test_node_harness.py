"""NodeHarness: bounded waits fail with what was awaited; close destroys every node;
harness_factory closes what it made."""

from __future__ import annotations

import pytest
import rclpy
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from rclpy.exceptions import InvalidHandle
from std_msgs.msg import String

pytestmark = pytest.mark.ros

DOMAIN_ID = 40  # apart from the other test files' ranges


def test_spin_until_times_out_naming_the_wait_and_close_destroys_nodes() -> None:
    with ros_context(DOMAIN_ID) as ctx:
        h = NodeHarness()
        node = rclpy.create_node("harness_probe", context=ctx)
        h.attach(ctx, node)
        ticks = []
        node.create_timer(0.01, lambda: ticks.append(1))
        h.spin_until(lambda: len(ticks) >= 3, "three timer ticks", timeout=5.0)
        with pytest.raises(AssertionError, match="timed out after 0.1 s waiting for never"):
            h.spin_until(lambda: False, "never", timeout=0.1)
        h.close()
        with pytest.raises(InvalidHandle):  # destroyed by close()
            node.create_publisher(String, "t", 1)
    assert not ctx.ok()  # ros_context shut its context down


def test_harness_factory_closes_every_harness_it_made() -> None:
    closed: list[int] = []

    class Probe:
        def __init__(self, k: int) -> None:
            self.k = k

        def close(self) -> None:
            closed.append(self.k)

    gen = harness_factory(lambda k: Probe(k))
    make = next(gen)
    assert [make(k=1).k, make(k=2).k] == [1, 2]
    with pytest.raises(StopIteration):
        next(gen)  # the fixture's teardown
    assert closed == [1, 2]
