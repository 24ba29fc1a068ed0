"""Driving another node's lifecycle from a test or session process: the part of a lifecycle
manager that the pip-mode stack needs (configure, then activate once the caller is listening).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lifecycle_msgs.msg import Transition as LifecycleTransition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import Executor
from rclpy.node import Node


def spin_until(executor: Executor, done: Callable[[], object], what: str, timeout: float) -> None:
    """Spin ``executor`` until ``done()``; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


class LifecycleClient:
    """``change_state`` calls to the lifecycle node ``target`` (a name relative to ``node``'s
    namespace, e.g. ``sim_bridge``), spun on ``executor``."""

    def __init__(self, node: Node, executor: Executor, target: str) -> None:
        self.target = target
        self._executor = executor
        self._client = node.create_client(ChangeState, f"{target}/change_state")

    def change(self, transition: int, timeout: float) -> None:
        """Request ``transition``; RuntimeError when refused, TimeoutError when unanswered."""
        spin_until(self._executor, self._client.service_is_ready, f"{self.target}'s change_state", timeout)
        future = self._client.call_async(ChangeState.Request(transition=LifecycleTransition(id=transition)))
        what = f"lifecycle transition {transition} of {self.target}"
        spin_until(self._executor, future.done, what, timeout)
        if not future.result().success:
            raise RuntimeError(f"{self.target} refused lifecycle transition {transition}")

    def configure(self, timeout: float = 60.0) -> None:
        self.change(LifecycleTransition.TRANSITION_CONFIGURE, timeout)

    def activate(self, timeout: float = 60.0) -> None:
        self.change(LifecycleTransition.TRANSITION_ACTIVATE, timeout)
