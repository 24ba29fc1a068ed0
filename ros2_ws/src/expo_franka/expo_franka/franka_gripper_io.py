"""Gripper command outputs of the Franka adapter, chosen by ``gripper.interface``.

=================  ==================================================  =========================
interface          what is sent                                        needs
=================  ==================================================  =========================
franka_actions     OPEN: franka_msgs/action/Move(width, speed);        franka_msgs (franka_ros2)
                   CLOSED: franka_msgs/action/Grasp(width, epsilon,
                   speed, force), to ``franka_gripper/{move,grasp}``
gripper_action     control_msgs/action/GripperCommand on               control_msgs
                   ``franka_gripper/gripper_action``: position =
                   width / 2 (franka_gripper doubles it: one finger),
                   max_effort = force
width_topic        std_msgs/Float64 target width [m] on                nothing (pip mode; the
                   ``gripper_width_cmd``                               emulated Franka in sim)
auto               franka_actions if franka_msgs imports, else
                   gripper_action if control_msgs imports, else
                   width_topic (with a warning: a real hand won't move)
=================  ==================================================  =========================

franka_msgs and control_msgs are not installable in pip mode (FACTS: "ROS 2 from pip"); they
are imported only here, only when chosen, so the adapter runs without them. Goals are sent
without waiting (``send_goal_async``); a server that is not up is reported, not waited for.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Protocol

from rclpy.action import ActionClient
from rclpy.lifecycle import LifecycleNode
from std_msgs.msg import Float64

from .franka_conversions import GripperCommand, GripperState


def available(package: str) -> bool:
    """True if the ROS interface package ``package`` can be imported here."""
    try:
        return importlib.util.find_spec(f"{package}.action") is not None
    except ModuleNotFoundError:
        return False


def resolve_interface(requested: str, width_topic: str) -> tuple[str, str]:
    """-> (interface to use, a note to log, "" when nothing is noteworthy).

    Raises ValueError naming ``gripper.interface`` when an explicitly requested interface's
    messages are not installed.
    """
    has_franka, has_control = available("franka_msgs"), available("control_msgs")
    need = {"franka_actions": ("franka_msgs", has_franka), "gripper_action": ("control_msgs", has_control)}
    if requested in need and not need[requested][1]:
        pkg = need[requested][0]
        raise ValueError(
            f"parameter 'gripper.interface': {requested} needs {pkg}, which is not installed here "
            f"(pip installs of ROS 2 have neither franka_msgs nor control_msgs; use a full ROS 2 "
            f"Jazzy install with franka_ros2, or gripper.interface: width_topic)"
        )
    if requested != "auto":
        return requested, ""
    if has_franka:
        return "franka_actions", ""
    if has_control:
        return (
            "gripper_action",
            "franka_msgs is not installed: gripper commands use control_msgs gripper_action",
        )
    return "width_topic", (
        f"franka_msgs and control_msgs are not installed (pip-mode ROS 2 has neither): gripper "
        f"commands go to std_msgs/Float64 '{width_topic}' only; a real Franka Hand will NOT move"
    )


class GripperSink(Protocol):
    def send(self, cmd: GripperCommand) -> str:
        """Send ``cmd``; returns "" or why it could not be sent."""

    def destroy(self) -> None: ...


class WidthTopicSink:
    """std_msgs/Float64 target width [m] on a lifecycle publisher."""

    def __init__(self, node: LifecycleNode, topic: str) -> None:
        self._node = node
        self._pub = node.create_lifecycle_publisher(Float64, topic, 10)

    def send(self, cmd: GripperCommand) -> str:
        self._pub.publish(Float64(data=float(cmd.width)))
        return ""

    def destroy(self) -> None:
        self._node.destroy_lifecycle_publisher(self._pub)


class _ActionSink:
    """Shared: one ActionClient per action name, goals sent without waiting."""

    def __init__(self, node: LifecycleNode, clients: dict[str, tuple[Any, str]]) -> None:
        self._clients = {key: (ActionClient(node, t, name), name) for key, (t, name) in clients.items()}

    def _send(self, key: str, goal: Any) -> str:
        client, name = self._clients[key]
        if not client.server_is_ready():
            return f"gripper action server '{name}' is not available"
        client.send_goal_async(goal)
        return ""

    def destroy(self) -> None:
        for client, _ in self._clients.values():
            client.destroy()


class FrankaActionSink(_ActionSink):
    """franka_gripper move (open) / grasp (close) actions (franka_msgs)."""

    def __init__(self, node: LifecycleNode, move_action: str, grasp_action: str) -> None:
        self._msgs = importlib.import_module("franka_msgs.action")
        super().__init__(
            node, {"move": (self._msgs.Move, move_action), "grasp": (self._msgs.Grasp, grasp_action)}
        )

    def send(self, cmd: GripperCommand) -> str:
        if cmd.state is GripperState.OPEN:
            return self._send("move", self._msgs.Move.Goal(width=cmd.width, speed=cmd.speed))
        goal = self._msgs.Grasp.Goal(width=cmd.width, speed=cmd.speed, force=cmd.force)
        goal.epsilon.inner, goal.epsilon.outer = cmd.epsilon_inner, cmd.epsilon_outer
        return self._send("grasp", goal)


class GripperActionSink(_ActionSink):
    """control_msgs/GripperCommand on franka_gripper's gripper_action (position = width / 2)."""

    def __init__(self, node: LifecycleNode, action: str) -> None:
        self._action = importlib.import_module("control_msgs.action").GripperCommand
        super().__init__(node, {"command": (self._action, action)})

    def send(self, cmd: GripperCommand) -> str:
        goal = self._action.Goal()
        goal.command.position, goal.command.max_effort = cmd.width / 2.0, cmd.force
        return self._send("command", goal)


def make_sink(
    node: LifecycleNode, interface: str, topics: dict[str, str], actions: dict[str, str]
) -> GripperSink:
    """The sink for a resolved ``interface`` (see :func:`resolve_interface`)."""
    if interface == "franka_actions":
        return FrankaActionSink(node, actions["move_action"], actions["grasp_action"])
    if interface == "gripper_action":
        return GripperActionSink(node, actions["gripper_action"])
    return WidthTopicSink(node, topics["gripper_width_cmd"])
