"""Probe a running pixel policy node with synthetic camera inputs: does it act, and how fast?

    python -m expo_policy.camera_probe --namespace /robot1 --seconds 20 [--rate 20] [--json out.json]

Publishes, at ``--rate`` Hz, what a Franka with two cameras would: ``joint_states`` (7 arm joints
+ 2 fingers, ``--arm-joints`` / ``--finger-joints``), ``ee_pose_base`` (frame ``--base-frame``)
and one random rgb8 frame per ``--cameras`` entry on ``<camera>/image_raw`` (``--size``), all with
one header stamp per tick. It records the node's ``action`` replies and prints one JSON line, from
the first action on: actions, holds by reason code, ticks published, and the publish -> action
latency (p50, p90) of the actions answering a tick. Exit code 0 when at least one action came,
1 otherwise. Point the node's topics at the probe's (relative names in ``--namespace``) and start
the node first.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rclpy
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState

#: A reachable lift pose in robosuite's base frame (what the sim's pixel spec reports), gripper open.
QPOS = np.array([0.0, 0.2, 0.0, -2.0, 0.0, 2.2, 0.8, 0.04, -0.04])
EE_POS, EE_QUAT = np.array([0.5, 0.0, 0.2]), np.array([1.0, 0.0, 0.0, 0.0])


def summarize(
    replies: Sequence[tuple[bool, str, int, float]], sent: dict[int, float], seconds: float
) -> dict[str, object]:
    """``replies``: (hold, hold_reason, header stamp ns, receive time s); ``sent``: stamp ns -> publish
    time s. Counts from the first action on; latency of the actions whose stamp is a tick's."""
    first = next(((ns, t) for hold, _, ns, t in replies if not hold), None)
    start = None if first is None else first[1]
    first_tick = None if first is None else sent.get(first[0], first[1])  # the tick it answered
    after = [r for r in replies if start is not None and r[3] >= start]
    lat = [1e3 * (t - sent[ns]) for hold, _, ns, t in after if not hold and ns in sent]
    holds = Counter(reason.split(":")[0] for hold, reason, _, _ in after if hold)
    return {
        "actions": sum(not r[0] for r in after),
        "holds": dict(holds),
        "ticks_published": sum(first_tick is not None and t >= first_tick for t in sent.values()),
        "seconds": seconds,
        "latency_p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "latency_p90_ms": float(np.percentile(lat, 90)) if lat else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--namespace", default="")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to publish after the first action")
    p.add_argument("--wait", type=float, default=120.0, help="give up when no action comes for this long [s]")
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--cameras", default="agentview,robot0_eye_in_hand")
    p.add_argument("--size", type=int, default=84)
    p.add_argument("--base-frame", default="robot0_base")
    p.add_argument("--arm-joints", default=",".join(f"panda_joint{i}" for i in range(1, 8)))
    p.add_argument("--finger-joints", default="panda_finger_joint1,panda_finger_joint2")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    joints = a.arm_joints.split(",") + a.finger_joints.split(",")
    if len(joints) != 9 or a.rate <= 0 or a.size < 8:
        p.error("need 7 arm joints, 2 finger joints, --rate > 0 and --size >= 8")
    rclpy.init()
    node = rclpy.create_node("camera_probe", namespace=a.namespace)
    pub_js = node.create_publisher(JointState, "joint_states", 10)
    pub_ee = node.create_publisher(PoseStamped, "ee_pose_base", 10)
    pub_cam = {c: node.create_publisher(Image, f"{c}/image_raw", 5) for c in a.cameras.split(",")}
    replies: list[tuple[bool, str, int, float]] = []
    sent: dict[int, float] = {}

    def on_action(m: ActionCommand) -> None:
        replies.append((m.hold, m.hold_reason, cv.stamp_ns(m.header.stamp), time.monotonic()))

    node.create_subscription(ActionCommand, "action", on_action, 100)
    rng = np.random.default_rng(0)

    def tick() -> None:
        ns = node.get_clock().now().nanoseconds
        sent[ns] = time.monotonic()
        pub_js.publish(cv.joint_state_msg(joints, QPOS, ns))
        pub_ee.publish(cv.pose_stamped_msg(EE_POS, EE_QUAT, ns, a.base_frame))
        for cam, pub in pub_cam.items():
            pub.publish(cv.image_msg(rng.integers(0, 256, (a.size, a.size, 3), dtype=np.uint8), ns, cam))

    node.create_timer(1.0 / a.rate, tick)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    t0, first = time.monotonic(), None
    try:
        while True:
            ex.spin_once(timeout_sec=0.02)
            now = time.monotonic()
            if first is None and any(not r[0] for r in replies):
                first = now
            if (first is None and now - t0 > a.wait) or (first is not None and now - first > a.seconds):
                break
    except KeyboardInterrupt:
        pass
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    result = summarize(replies, sent, a.seconds)
    print(json.dumps(result))
    if a.json is not None:
        a.json.write_text(json.dumps(result, indent=1))
    return 0 if result["actions"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
