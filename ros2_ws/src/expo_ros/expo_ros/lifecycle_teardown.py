"""The teardown half of the project's lifecycle nodes, written once.

Every node that acts or records defines two methods and gets the four teardown transitions:

- ``_stop(reason)``: stop acting (timers, threads); while the lifecycle publishers are still
  enabled it may send a last message, e.g. a hold command ("safety is always a stop in
  deactivate/finally", STYLE.md);
- ``_destroy()``: release publishers, subscriptions, timers and resources
  (:meth:`TeardownLifecycleNode._destroy_entities` destroys the ROS ones).

deactivate -> ``_stop("deactivated")``; cleanup -> ``_destroy()``; shutdown and error ->
``_stop`` then ``_destroy()`` (error is logged). Used by the policy node, the Franka adapter,
the learner, the sim bridge, the Franka emulator, the teleop node and the intervener.
:meth:`TeardownLifecycleNode.autostart` is what :func:`expo_ros.node_main.run_lifecycle_node`
calls at start: configure and activate when the node's ``autostart`` parameter is true.

A last message sent in ``_stop`` goes through :meth:`TeardownLifecycleNode._flush`: it waits
(bounded) until the reliable subscribers acknowledge it, since a process stopped by Ctrl-C exits
right after and would otherwise take an unsent hold with it on a loaded machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

SUCCESS = TransitionCallbackReturn.SUCCESS
#: How long a last message waits for the reliable subscribers' acknowledgements.
FLUSH_TIMEOUT_S = 2.0


class TeardownLifecycleNode(LifecycleNode):
    """A LifecycleNode whose deactivate/cleanup/shutdown/error transitions call ``_stop`` and
    ``_destroy`` (module doc); subclasses implement both."""

    def _stop(self, reason: str) -> None:
        raise NotImplementedError

    def _destroy(self) -> None:
        raise NotImplementedError

    def autostart(self) -> bool:
        """Configure and activate when the ``autostart`` parameter (which the subclass declares)
        is true; False when either transition failed."""
        if not self.get_parameter("autostart").value:
            return True
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def _destroy_entities(
        self,
        timers: Iterable[Any] = (),
        subs: Iterable[Any] = (),
        pubs: Iterable[Any] = (),
        services: Iterable[Any] = (),
    ) -> None:
        """Destroy these timers, subscriptions, services and lifecycle publishers (``_destroy``'s
        ROS half; the caller forgets them)."""
        for t in timers:
            self.destroy_timer(t)
        for s in subs:
            self.destroy_subscription(s)
        for s in services:
            self.destroy_service(s)
        for p in pubs:
            self.destroy_lifecycle_publisher(p)

    def _flush(self, publisher: Any, what: str, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait at most ``timeout_s`` until every reliable subscriber of ``publisher`` has
        acknowledged what it sent (best-effort ones need nothing); False, logged with ``what``,
        when that did not happen in time."""
        if publisher.wait_for_all_acked(Duration(nanoseconds=int(timeout_s * 1e9))):
            return True
        self.get_logger().warning(f"{what} was not acknowledged by every subscriber within {timeout_s:g} s")
        return False

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop("shutdown")
        self._destroy()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in state {state.label}: stopping and cleaning up")
        self._stop("error")
        self._destroy()
        return SUCCESS
