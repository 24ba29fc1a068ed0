"""NodeHarness: bounded waits fail with what was awaited; close destroys every node."""

from __future__ import annotations

import os

import pytest
import rclpy
from expo_policy.node_harness import NodeHarness
from rclpy.exceptions import InvalidHandle
from std_msgs.msg import String

pytestmark = pytest.mark.ros


def test_spin_until_times_out_naming_the_wait_and_close_destroys_nodes() -> None:
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=40 + os.getpid() % 1)  # 40: apart from the other files' ranges
    try:
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
    finally:
        rclpy.try_shutdown(context=ctx)
