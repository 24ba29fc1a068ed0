"""A node that watches a running sim graph from the outside and can act as the bridge's
lifecycle manager: what the integration tests (runner and launch_pytest) use.

It records ``action``, ``env_feedback``, ``transitions``, ``diagnostics`` and the clock topic
of one namespace. Volatile topics only reach subscriptions that are matched when a message is
sent, so a complete record needs the bridge held back until the observer is matched to every
publisher: start the bridge with ``autostart:=false``, wait for :meth:`GraphObserver.matched`
(after :meth:`configure_bridge`, when its publishers exist), then :meth:`activate_bridge`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_interfaces.msg import ActionCommand, EnvFeedback, Transition
from expo_ros import conversions as cv
from expo_ros.conversions import Command
from expo_ros.transitions import Feedback, TransitionData
from rclpy.executors import SingleThreadedExecutor
from rosgraph_msgs.msg import Clock

from expo_sim.ros.lifecycle_client import LifecycleClient, spin_until
from expo_sim.session.run_check import check_lockstep_run

TOPICS: dict[str, Any] = {
    "action": ActionCommand,
    "env_feedback": EnvFeedback,
    "transitions": Transition,
    "diagnostics": DiagnosticArray,
}


class GraphObserver:
    """Records the graph's channels in ``got[topic]`` (messages as received)."""

    def __init__(
        self,
        context: rclpy.Context,
        namespace: str,
        clock_topic: str = "/clock",
        bridge_name: str = "sim_bridge",
        depth: int = 1000,
    ) -> None:
        self.node = rclpy.create_node("graph_observer", namespace=namespace, context=context)
        self.got: dict[str, list] = defaultdict(list)
        sub = self.node.create_subscription
        self._subs = {topic: sub(t, topic, self.got[topic].append, depth) for topic, t in TOPICS.items()}
        self._subs["clock"] = sub(Clock, clock_topic, self.got["clock"].append, depth)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._bridge = LifecycleClient(self.node, self.executor, bridge_name)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def spin_until(self, done: Callable[[], object], what: str, timeout: float) -> None:
        """Spin until ``done()``; TimeoutError naming ``what`` after ``timeout`` seconds."""
        spin_until(self.executor, done, what, timeout)

    def matched(self, topics: Iterable[str] = (*TOPICS, "clock")) -> bool:
        """Whether every subscription among ``topics`` hears at least one publisher."""
        return all(self._subs[t].get_publisher_count() > 0 for t in topics)

    def configure_bridge(self, timeout: float = 60.0) -> None:
        self._bridge.configure(timeout)

    def activate_bridge(self, timeout: float = 60.0) -> None:
        self._bridge.activate(timeout)

    def episodes_done(self) -> int:
        return sum(m.terminated or m.truncated for m in self.got["env_feedback"])

    def latest_status(self, name_suffix: str) -> dict[str, str]:
        """Key/values of the newest diagnostics status whose name ends with ``name_suffix``
        (": control loop" for the policy node, ": sim" for the bridge); {} if none arrived."""
        for msg in reversed(self.got["diagnostics"]):
            for st in msg.status:
                if st.name.endswith(name_suffix):
                    return {kv.key: kv.value for kv in st.values}
        return {}

    def missing_actions(self) -> list[tuple[int, int]]:
        """The stepped (episode, step) this observer has no action copy for."""
        acted = {(m.episode, m.step) for m in self.got["action"] if not m.hold}
        return [(m.episode, m.step) for m in self.got["env_feedback"] if (m.episode, m.step) not in acted]

    def wait_for_action_copies(self, timeout: float) -> str:
        """Spin (at most ``timeout`` s) until this observer holds an action for every stepped
        (episode, step); '' when it does, else which it missed. The bridge stepped on every
        action, but this observer's copy may still be on its way, or lost: the policy's action
        publisher keeps its last 100, and an observer lagging further behind on a loaded machine
        misses older ones (check them with ``check_lockstep_run(..., all_commands=False)``)."""
        try:
            self.spin_until(lambda: not self.missing_actions(), "an action per step", timeout)
        except TimeoutError:
            missing = self.missing_actions()
            return f"{len(missing)} of {len(self.got['env_feedback'])} action copies missed: {missing[:10]}"
        return ""

    def lockstep_problems(self, episodes: int, horizon: int, obs_dim: int) -> list[str]:
        """:func:`~expo_sim.session.run_check.check_lockstep_run` over what this observer
        recorded; its own action copies may be incomplete (``all_commands=False``)."""
        feedback, commands, transitions = self.decoded()
        return check_lockstep_run(
            feedback,
            commands,
            transitions,
            episodes=episodes,
            horizon=horizon,
            obs_dim=obs_dim,
            all_commands=False,
        )

    def decoded(self) -> tuple[list[Feedback], list[Command], list[TransitionData]]:
        """(feedback, commands, transitions) decoded with the policy's conversions."""
        return (
            [cv.env_feedback_to_numpy(m) for m in self.got["env_feedback"]],
            [cv.action_command_to_numpy(m) for m in self.got["action"]],
            [cv.transition_to_numpy(m) for m in self.got["transitions"]],
        )
