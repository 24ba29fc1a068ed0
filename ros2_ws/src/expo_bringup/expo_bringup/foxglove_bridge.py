"""Foxglove WebSocket bridge: the graph's monitoring topics for Foxglove or Lichtblick where RViz
is absent (pip mode). ``ros2 launch expo_bringup sim.launch.py foxglove:=true`` starts it; open
``ws://127.0.0.1:8765`` in Foxglove / Lichtblick ("Open connection", Foxglove WebSocket).

Each ROS topic in :data:`TOPICS` (relative to the node's namespace) becomes one channel carrying
the messages as they are on the wire: CDR bytes (``message_encoding`` ``cdr``) with the ROS 2
message definition as the schema (``ros2msg``, the dependencies concatenated as rosbag2's mcap
files do), so the client decodes them itself: the policy's markers (OTF candidates, the sent
action, the status text), diagnostics, the camera image, poses, actions, env feedback and the
learner's statistics. The learner's named scalars (``LearnerStats.names``/``values``) are also
converted into one JSON channel, ``<ns>/learner_curves`` (``{"critic_loss": ..., ...}`` plus
the counters), so that a Plot panel shows the learning curves by name.

Monitoring only: not part of the graph's required nodes; it never publishes to ROS.
"""

from __future__ import annotations

import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

import foxglove
import rclpy
from expo_interfaces.msg import LearnerStats
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosidl_runtime_py.utilities import get_message

#: (topic relative to the namespace, ROS type) forwarded by default.
TOPICS: tuple[tuple[str, str], ...] = (
    ("markers", "visualization_msgs/msg/MarkerArray"),
    ("diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
    ("image_raw", "sensor_msgs/msg/Image"),
    ("learner_stats", "expo_interfaces/msg/LearnerStats"),
    ("ee_pose", "geometry_msgs/msg/PoseStamped"),
    ("object_poses", "geometry_msgs/msg/PoseArray"),
    ("joint_states", "sensor_msgs/msg/JointState"),
    ("action", "expo_interfaces/msg/ActionCommand"),
    ("env_feedback", "expo_interfaces/msg/EnvFeedback"),
)
LEARNER_CURVES = "learner_curves"

_BUILTIN = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
}  # fmt: skip
_SEPARATOR = "=" * 80


def _msg_file(full_type: str) -> Path:
    from ament_index_python.packages import get_package_share_directory

    pkg, kind, name = full_type.split("/")
    return Path(get_package_share_directory(pkg)) / kind / f"{name}.msg"


def _dependencies(pkg: str, text: str) -> list[str]:
    """The non-builtin field types of one .msg text, as ``pkg/msg/Type``, in order."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        ftype = line.split()[0]
        base = re.sub(r"<=\d+$", "", re.sub(r"\[[^\]]*\]$", "", ftype))  # arrays, bounded strings
        if base in _BUILTIN:
            continue
        parts = base.split("/")
        if len(parts) == 1:
            parts = ["std_msgs", "Header"] if base == "Header" else [pkg, base]
        out.append(f"{parts[0]}/msg/{parts[-1]}")
    return out


@cache
def message_definition(full_type: str) -> str:
    """``full_type``'s (``pkg/msg/Type``) ROS 2 message definition with every type it uses
    appended (``====`` line, ``MSG: pkg/Type``, its text): the ``ros2msg`` schema encoding."""
    text = _msg_file(full_type).read_text()
    order: list[str] = []
    todo = _dependencies(full_type.split("/")[0], text)
    while todo:
        dep = todo.pop(0)
        if dep in order:
            continue
        order.append(dep)
        todo += _dependencies(dep.split("/")[0], _msg_file(dep).read_text())
    parts = [text.rstrip("\n")]
    for dep in order:
        pkg, _, name = dep.split("/")
        parts.append(f"{_SEPARATOR}\nMSG: {pkg}/{name}\n{_msg_file(dep).read_text().rstrip(chr(10))}")
    return "\n".join(parts) + "\n"


def learner_curves(stats: Any) -> dict[str, float]:
    """A ``LearnerStats`` message as one flat dict of numbers (counters + named scalars)."""
    out = {
        "training_step": float(stats.training_step),
        "env_steps_received": float(stats.env_steps_received),
        "buffer_size": float(stats.buffer_size),
        "achieved_utd": float(stats.achieved_utd),
        "updates_per_second": float(stats.updates_per_second),
        "weights_version": float(stats.weights_version),
    }
    out.update({str(n): float(v) for n, v in zip(stats.names, stats.values)})
    return out


class FoxgloveBridge(Node):
    """Parameters: ``host`` (127.0.0.1), ``port`` (8765), ``topics`` (names from
    :data:`TOPICS`, all by default). Fails on a bad topic name or a port in use."""

    def __init__(self) -> None:
        super().__init__("foxglove_bridge")
        host = self.declare_parameter("host", "127.0.0.1").value
        port = int(self.declare_parameter("port", 8765).value)
        names = [t for t, _ in TOPICS]
        wanted = list(self.declare_parameter("topics", names).value)
        types = dict(TOPICS)
        unknown = [t for t in wanted if t not in types]
        if unknown:
            raise ValueError(f"parameter 'topics': unknown {unknown}; known: {names}")
        self.server = foxglove.start_server(name="expo", host=host, port=port)
        ns = self.get_namespace().rstrip("/")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
        self._subs = []
        for topic in wanted:
            full = types[topic]
            schema = foxglove.Schema(name=full, encoding="ros2msg", data=message_definition(full).encode())
            channel = foxglove.Channel(f"{ns}/{topic}", schema=schema, message_encoding="cdr")
            sub = self.create_subscription(
                get_message(full), topic, self._forward(topic, channel), qos, raw=True
            )
            self._subs.append(sub)
        self._curves = foxglove.Channel(f"{ns}/{LEARNER_CURVES}", message_encoding="json")
        self.get_logger().info(
            f"Foxglove WebSocket on ws://{host}:{port}: {', '.join(f'{ns}/{t}' for t in wanted)} (CDR), "
            f"{ns}/{LEARNER_CURVES} (JSON)"
        )

    def _forward(self, topic: str, channel: foxglove.Channel) -> Any:
        def on_message(raw: bytes) -> None:
            now = time.time_ns()
            channel.log(bytes(raw), log_time=now)
            if topic == "learner_stats":
                stats = deserialize_message(bytes(raw), LearnerStats)
                self._curves.log(json.dumps(learner_curves(stats)).encode(), log_time=now)

        return on_message

    def close(self) -> None:
        self.server.stop()


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = FoxgloveBridge()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


def foxglove_action(namespace: str, host: str, port: int) -> Any:
    """The bridge as a launch action, in the graph's namespace; not required (its exit leaves
    the graph running)."""
    from launch_ros.actions import Node

    return Node(
        package="expo_bringup",
        executable="foxglove_bridge",
        name="foxglove_bridge",
        exec_name="foxglove_bridge",
        namespace=namespace or None,
        output="screen",
        ros_arguments=["-p", f"host:={json.dumps(host)}", "-p", f"port:={int(port)}"],
        additional_env={"PYTHONUNBUFFERED": "1"},
    )


if __name__ == "__main__":
    main()
