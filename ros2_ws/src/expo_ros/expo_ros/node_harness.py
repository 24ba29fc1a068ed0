"""Test support for node tests: the node under test and test-side nodes on one executor, with
bounded waits. Used by the node tests of expo_policy, expo_learner and expo_sim (an importable
module, so no test imports another test file)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

H = TypeVar("H", bound="NodeHarness")


@contextmanager
def ros_context(domain_id: int) -> Iterator[rclpy.Context]:
    """An rclpy context of its own on ROS domain ``domain_id``, shut down on exit."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


def harness_factory(build: Callable[..., H]) -> Iterator[Callable[..., H]]:
    """Body of a pytest fixture (``yield from harness_factory(...)``): yields ``make(**params)``,
    which builds a harness; every harness made is closed when the test ends."""
    made: list[H] = []

    def make(**params: Any) -> H:
        made.append(build(**params))
        return made[-1]

    try:
        yield make
    finally:
        for h in made:
            h.close()


class NodeHarness:
    """Spins the nodes given to :meth:`attach`; :meth:`close` destroys them.

    ``timeout_s`` is the default bound of :meth:`spin_until`; a timeout is an AssertionError
    naming what was awaited, so a test fails with that message."""

    timeout_s: float = 15.0

    def attach(self, context: rclpy.Context, *nodes: Node) -> None:
        self.ex = SingleThreadedExecutor(context=context)
        self._nodes: list[Node] = []
        for n in nodes:
            self.add_node(n)

    def add_node(self, node: Node) -> None:
        self.ex.add_node(node)
        self._nodes.append(node)

    def close(self) -> None:
        self.ex.shutdown()
        for n in self._nodes:
            n.destroy_node()

    def spin_until(self, done: Callable[[], object], what: str, timeout: float | None = None) -> None:
        timeout = self.timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            self.ex.spin_once(timeout_sec=0.02)

    def call_trigger(self, node: Node, service: str) -> Trigger.Response:
        """Call the std_srvs/Trigger ``service`` from ``node``, waiting (bounded) for it."""
        client = node.create_client(Trigger, service)
        self.spin_until(client.service_is_ready, f"service {service}")
        future = client.call_async(Trigger.Request())
        self.spin_until(future.done, f"{service} response")
        node.destroy_client(client)
        return future.result()

    def spin_for(self, seconds: float) -> None:
        """Spin for ``seconds``: only to show that something does NOT happen within a window."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)
