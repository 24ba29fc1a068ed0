"""The teardown half of the project's lifecycle nodes, written once.

Every node that acts or records defines two methods and gets the four teardown transitions:

- ``_stop(reason)``: stop acting (timers, threads); while the lifecycle publishers are still
  enabled it may send a last message, e.g. a hold command ("safety is always a stop in
  deactivate/finally", STYLE.md);
- ``_destroy()``: release publishers, subscriptions, timers and resources.

deactivate -> ``_stop("deactivated")``; cleanup -> ``_destroy()``; shutdown and error ->
``_stop`` then ``_destroy()`` (error is logged). Used by the policy node, the Franka adapter,
the learner, the sim bridge and the Franka emulator.
"""

from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

SUCCESS = TransitionCallbackReturn.SUCCESS


class TeardownLifecycleNode(LifecycleNode):
    """A LifecycleNode whose deactivate/cleanup/shutdown/error transitions call ``_stop`` and
    ``_destroy`` (module doc); subclasses implement both."""

    def _stop(self, reason: str) -> None:
        raise NotImplementedError

    def _destroy(self) -> None:
        raise NotImplementedError

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
