"""An rclpy node on a context and ROS domain of its own, spun in a background thread: the
independent subscribers of the session integration tests. Plain rclpy only, so nothing of ours
decodes what they hear."""

from __future__ import annotations

import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor


class SpunNode:
    """Create subscriptions on ``self.node``, then :meth:`start`; :meth:`close` when done."""

    def __init__(self, name: str, domain_id: int) -> None:
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.ex.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
