"""The ``learner_node`` executable: the learner process back to normal scheduling before it
imports anything heavy.

A learner launched inside a graph at SCHED_FIFO (``expo-sim session --learn --sched-fifo P``,
``chrt -f P ros2 launch ...``) inherits the graph's priority. :func:`expo_learner.learner_node.main`
lowers every thread of the process, but by then importing that module (torch, rclpy, the agent)
has run for a second or two at the control nodes' priority. This entry imports only
:mod:`expo_ros.realtime` (os, threading) first, lowers the process, and then the node.
"""

from __future__ import annotations

from expo_ros import realtime


def main(args: list[str] | None = None) -> None:
    """Lower the process (what it inherited goes to the node's log), then run the learner node."""
    inherited = realtime.process_to_normal()
    from expo_learner import learner_node  # torch, rclpy, ...: imported at normal scheduling

    learner_node.main(args, inherited=inherited)


if __name__ == "__main__":
    main()
