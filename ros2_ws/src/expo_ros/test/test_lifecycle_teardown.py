"""expo_ros.lifecycle_teardown: a last message waits for its acknowledgements, bounded, and says
when they did not come."""

from __future__ import annotations

import rclpy
from expo_ros.lifecycle_teardown import TeardownLifecycleNode


class FakePublisher:
    def __init__(self, acked: bool) -> None:
        self.acked, self.waited = acked, []

    def wait_for_all_acked(self, timeout) -> bool:
        self.waited.append(timeout.nanoseconds)
        return self.acked


def test_flush_waits_bounded_and_reports_a_missing_acknowledgement(monkeypatch) -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = TeardownLifecycleNode("teardown_flush_test", context=context)
        warnings: list[str] = []
        monkeypatch.setattr(type(node.get_logger()), "warning", lambda self, msg, **kw: warnings.append(msg))
        ok, lost = FakePublisher(True), FakePublisher(False)
        assert node._flush(ok, "the final hold") and not warnings
        assert not node._flush(lost, "the final hold (deactivated)", timeout_s=0.5)
        assert lost.waited == [500_000_000]
        what = "the final hold (deactivated)"
        assert warnings == [f"{what} was not acknowledged by every subscriber within 0.5 s"]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
