"""expo_ros.lifecycle_teardown: a last message waits for its acknowledgements, bounded, and says
when they did not come; autostart follows the parameter; _destroy_entities removes what it is given."""

from __future__ import annotations

import rclpy
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from std_msgs.msg import Header
from std_srvs.srv import Trigger


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


class Recorder(TeardownLifecycleNode):
    """A node with the ``autostart`` parameter and one of each entity; transitions recorded."""

    def __init__(self, autostart: bool, configure_ok: bool = True, activate_ok: bool = True, **kw) -> None:
        super().__init__("teardown_autostart_test", **kw)
        self.declare_parameter("autostart", autostart)
        self.configure_ok, self.activate_ok, self.calls = configure_ok, activate_ok, []

    def on_configure(self, state):
        self.calls.append("configure")
        if not self.configure_ok:
            return TransitionCallbackReturn.FAILURE
        self.timer = self.create_timer(10.0, lambda: None, autostart=False)
        self.sub = self.create_subscription(Header, "teardown_in", lambda m: None, 1)
        self.srv = self.create_service(Trigger, "teardown_srv", lambda req, res: res)
        self.pub = self.create_lifecycle_publisher(Header, "teardown_out", 1)
        return super().on_configure(state)

    def on_activate(self, state):
        self.calls.append("activate")
        if not self.activate_ok:
            return TransitionCallbackReturn.FAILURE
        return super().on_activate(state)

    def _stop(self, reason: str) -> None:
        self.calls.append(f"stop {reason}")

    def _destroy(self) -> None:
        self._destroy_entities([self.timer], [self.sub], [self.pub], [self.srv])


def test_autostart_follows_the_parameter_and_reports_a_failed_transition() -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        off = Recorder(autostart=False, context=context)
        assert off.autostart() and off.calls == []  # nothing done: a manager will configure it
        off.destroy_node()
        on = Recorder(autostart=True, context=context)
        assert on.autostart() and on.calls == ["configure", "activate"]
        on.destroy_node()
        bad = Recorder(autostart=True, configure_ok=False, context=context)
        assert not bad.autostart() and bad.calls == ["configure"]  # never activated
        bad.destroy_node()
        inactive = Recorder(autostart=True, activate_ok=False, context=context)
        assert not inactive.autostart() and inactive.calls == ["configure", "activate"]
        inactive.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_destroy_entities_removes_every_kind_from_the_node() -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Recorder(autostart=True, context=context)
        assert node.autostart()
        # rclpy's entity properties are generators
        assert node.timer in list(node.timers) and node.srv in list(node.services)
        assert node.sub in list(node.subscriptions) and node.pub in list(node.publishers)
        assert node.pub in node._managed_entities  # a lifecycle publisher: activated with the node
        node.trigger_deactivate()
        node.trigger_cleanup()  # -> _destroy -> _destroy_entities
        assert node.calls[-1] == "stop deactivated"
        assert node.timer not in list(node.timers) and node.srv not in list(node.services)
        assert node.sub not in list(node.subscriptions) and node.pub not in list(node.publishers)
        assert node.pub not in node._managed_entities  # destroyed as a lifecycle publisher
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
