"""A small node that feeds :class:`~expo_sim.session.stats.SessionStats` from a running graph:
``env_feedback``, ``diagnostics`` and ``otf_decision`` of one namespace (and ``transitions``, for
the intervention flags, when asked). The session process
(``make sim``, ``make bench-ros``) spins it while the runner supervises the nodes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_interfaces.msg import EnvFeedback, LearnerStats, OtfDecision, Transition
from expo_ros.conversions import learner_stats_to_numpy
from expo_ros.node_main import executor_name, make_executor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from expo_sim.ros.lifecycle_client import LifecycleClient, spin_until
from expo_sim.session.stats import SessionStats

#: transient local: the policy's writer keeps its last 100 decisions for a reader it matches late
_DECISIONS = QoSProfile(
    depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class SessionMonitor:
    """Subscriptions (reliable, depth 1000; ``otf_decision`` transient local) that update
    ``stats`` as messages arrive, and the bridge's lifecycle manager: start the bridge with
    ``autostart:=false``, :meth:`start_bridge` configures it, waits until every subscription
    here hears a publisher, then activates it, so that no feedback of the session goes out
    before the monitor listens."""

    def __init__(
        self,
        context: rclpy.Context,
        namespace: str,
        stats: SessionStats,
        bridge_name: str = "sim_bridge",
        transitions: bool = False,
    ) -> None:
        self.stats = stats
        self.node = rclpy.create_node("session_monitor", namespace=namespace or "/", context=context)
        sub = self.node.create_subscription
        self._subs = [
            sub(EnvFeedback, "env_feedback", self._on_feedback, 1000),
            sub(DiagnosticArray, "diagnostics", self._on_diagnostics, 100),
            sub(OtfDecision, "otf_decision", self._on_decision, _DECISIONS),
        ]
        # Not waited for at startup: the learner publishes its first stats after loading its data.
        self._learner_sub = sub(LearnerStats, "learner_stats", self._on_learner_stats, 10)
        if transitions:  # intervention flags per step (interventions on)
            self._transitions_sub = sub(Transition, "transitions", self._on_transition, 1000)
        self.executor = make_executor(executor_name(), context)
        self.executor.add_node(self.node)
        self._bridge = LifecycleClient(self.node, self.executor, bridge_name)

    def start_bridge(self, timeout: float, alive: Callable[[], bool]) -> None:
        """Configure the bridge, wait for every publisher, activate. ``alive()`` False (a node
        died) or ``timeout`` seconds per stage raise RuntimeError / TimeoutError."""
        self._bridge.configure(timeout)
        matched = lambda: all(s.get_publisher_count() > 0 for s in self._subs)  # noqa: E731
        spin_until(self.executor, lambda: matched() or not alive(), "the graph's publishers", timeout)
        if not alive():
            raise RuntimeError("a node exited during startup")
        self._bridge.activate(timeout)

    def _on_feedback(self, m: EnvFeedback) -> None:
        self.stats.feedback(int(m.step), bool(m.terminated), bool(m.truncated), bool(m.success))

    def _on_diagnostics(self, m: DiagnosticArray) -> None:
        for st in m.status:
            self.stats.status(st.name, {kv.key: kv.value for kv in st.values})

    def _on_learner_stats(self, m: LearnerStats) -> None:
        d = learner_stats_to_numpy(m)
        updates = d.scalars.get("updates", math.nan)
        self.stats.learner_stats(updates, d.training_step, d.achieved_utd, d.weights_version)

    def _on_transition(self, m: Transition) -> None:
        self.stats.transition(int(m.episode), bool(m.intervention))

    def _on_decision(self, m: OtfDecision) -> None:
        self.stats.decision(float(m.inference_latency_ms))

    def spin_until(self, done: Callable[[], bool], every_s: float, on_tick: Callable[[], None]) -> None:
        """Spin until ``done()``, calling ``on_tick`` about every ``every_s`` seconds."""
        next_tick = time.monotonic()
        while not done():
            self.executor.spin_once(timeout_sec=0.05)
            if time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + every_s

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
