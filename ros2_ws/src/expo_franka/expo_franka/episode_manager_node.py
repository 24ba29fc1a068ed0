"""Episode manager (lifecycle): operator labels + the policy's commands -> env_feedback on the arm.

==================  ===============================  =======================================
in                  type                             QoS
==================  ===============================  =======================================
action              expo_interfaces/ActionCommand    reliable, volatile, depth 10
out (lifecycle)
env_feedback        expo_interfaces/EnvFeedback      reliable, volatile, depth 50
services            std_srvs/Trigger                 start_episode, label_success, label_failure
==================  ===============================  =======================================

(topic names are parameters, ``topics.*``; in the hardware graph ``action`` is remapped to the
policy's output, ``policy_action``.) The logic is :class:`expo_franka.episode_manager.EpisodeManager`;
this node converts messages and service calls into its calls and publishes what it returns.
Operator usage, in the graph's namespace::

    ros2 service call start_episode std_srvs/srv/Trigger     # scene reset: begin an episode
    ros2 service call label_success std_srvs/srv/Trigger     # task done: reward 1, terminated
    ros2 service call label_failure std_srvs/srv/Trigger     # give up / reset: truncated

Lifecycle: configure validates the parameters and creates everything; activate enables the
feedback publisher (services answer "not active" before); deactivate stops publishing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from expo_interfaces.msg import ActionCommand, EnvFeedback
from expo_ros import conversions as cv
from expo_ros.node_main import run_lifecycle_node
from expo_ros.params import ParamSpec, as_bool, as_int, as_topic
from expo_ros.transitions import Feedback
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from std_srvs.srv import Trigger

from .episode_manager import EpisodeConfig, EpisodeManager, Phase

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", False, "configure and activate at startup (no lifecycle manager)"),
    ParamSpec("horizon", 400, "policy steps per episode before it is truncated (20 Hz: 400 = 20 s)"),
    ParamSpec("topics.action", "action", "the policy's ActionCommands (in)"),
    ParamSpec("topics.env_feedback", "env_feedback", "one EnvFeedback per policy step (out)"),
)


@dataclass(frozen=True)
class EpisodeManagerNodeConfig:
    """Every parameter of the node, typed and validated (see :data:`PARAMETERS`)."""

    autostart: bool
    episode: EpisodeConfig
    action_topic: str
    feedback_topic: str

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> EpisodeManagerNodeConfig:
        """Raw parameter values (name -> value); ValueError names the bad parameter."""
        return cls(
            autostart=as_bool("autostart", v["autostart"]),
            episode=EpisodeConfig(horizon=as_int("horizon", v["horizon"], 1)),
            action_topic=as_topic("topics.action", v["topics.action"]),
            feedback_topic=as_topic("topics.env_feedback", v["topics.env_feedback"]),
        )


class EpisodeManagerNode(LifecycleNode):
    """ActionCommand + Trigger services -> EnvFeedback, through :class:`EpisodeManager`."""

    def __init__(self, node_name: str = "episode_manager", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for p in PARAMETERS:
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        self.cfg: EpisodeManagerNodeConfig | None = None
        self.manager: EpisodeManager | None = None
        self.active = False
        self._sub = self._pub = None
        self._services: list[Any] = []

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = EpisodeManagerNodeConfig.from_values(
                {p.name: self.get_parameter(p.name).value for p in PARAMETERS}
            )
        except ValueError as e:
            self.get_logger().error(f"configure failed: {e}")
            return FAILURE
        self.cfg, self.manager = cfg, EpisodeManager(cfg.episode)
        self._pub = self.create_lifecycle_publisher(EnvFeedback, cfg.feedback_topic, QoSProfile(depth=50))
        self._sub = self.create_subscription(ActionCommand, cfg.action_topic, self._on_command, 10)
        self._services = [
            self.create_service(Trigger, "start_episode", self._on_start),
            self.create_service(Trigger, "label_success", lambda req, res: self._on_label(True, res)),
            self.create_service(Trigger, "label_failure", lambda req, res: self._on_label(False, res)),
        ]
        self.get_logger().info(
            f"configured: horizon {cfg.episode.horizon} steps, '{cfg.action_topic}' -> "
            f"'{cfg.feedback_topic}'; call start_episode to begin"
        )
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        self.active = True
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self._destroy()
        return SUCCESS

    def _destroy(self) -> None:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        for s in self._services:
            self.destroy_service(s)
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
        self._sub = self._pub = None
        self._services = []

    def autostart(self) -> bool:
        """Configure and activate when the ``autostart`` parameter is true; False on failure."""
        if not self.get_parameter("autostart").value:
            return True
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_command(self, msg: ActionCommand) -> None:
        if not self.active:
            return
        stamp = cv.stamp_ns(msg.header.stamp)
        before = self.manager.phase
        self._publish(self.manager.on_command(msg.episode, msg.step, msg.hold, stamp))
        if before is Phase.RUNNING and self.manager.phase is Phase.ENDED:
            self.get_logger().info(
                f"episode ended: {self.manager.outcome.value} (horizon {self.cfg.episode.horizon}); "
                "reset the scene, then call start_episode"
            )

    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self.active:
            response.success, response.message = False, "episode_manager is not active"
            return response
        response.success, response.message = self.manager.start()
        self.get_logger().info(response.message)
        return response

    def _on_label(self, success: bool, response: Trigger.Response) -> Trigger.Response:
        if not self.active:
            response.success, response.message = False, "episode_manager is not active"
            return response
        ok, message, out = self.manager.label(success, self._now_ns())
        self._publish(out)
        response.success, response.message = ok, message
        self.get_logger().info(message)
        return response

    def _publish(self, feedback: list[Feedback]) -> None:
        for fb in feedback:
            self._pub.publish(cv.env_feedback_msg(fb))


def main(args: list[str] | None = None) -> None:
    """Run the node until Ctrl-C / SIGTERM."""
    run_lifecycle_node(EpisodeManagerNode, args)
