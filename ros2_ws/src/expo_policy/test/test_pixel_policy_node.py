"""Issue 13's "Done when", policy side: an independent rclpy client that publishes ONLY joint states,
the base-frame end-effector pose and two 84x84 rgb8 camera images (no object poses) to the
documented topics gets actions back from the policy node (its own process, real DDS, a tiny
pixel checkpoint), and a hold with the documented reason for each bad frame case: missing camera,
frozen stamp, wrong size, wrong encoding, late frame, and stamps out of sync. After each bad case
the good stream resumes and the node acts again: nothing crashed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_core.checkpoint import save_checkpoint
from expo_core.config import CriticConfig, DiffusionConfig, EditorConfig, ExpoConfig
from expo_core.pixel_agent import PixelAgent, encoder_preset, pixel_expo_config
from expo_core.spec import task_obs_spec
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from expo_ros.node_harness import ros_context
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState

pytestmark = pytest.mark.ros

DOMAIN_ID = 21 + os.getpid() % 60  # 21..80: apart from test_policy_node's 101..200
SPEC = task_obs_spec("lift", "pixels")  # agentview + robot0_eye_in_hand, 84x84
JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
QPOS = np.array([0.0, 0.2, 0.0, -2.0, 0.0, 2.2, 0.8, 0.04, -0.04])
EE_POS, EE_QUAT = np.array([0.5, 0.0, 0.2]), np.array([1.0, 0.0, 0.0, 0.0])  # robot base frame
BASE = "robot0_base"
# The sync pairs each frame with the proprio of its own moment (any constant offset is matched
# within half a 20 Hz tick), so the skew case offsets the eye camera by half a tick, 25 ms, and
# the window is 10 ms.
MAX_AGE_S, MAX_SKEW_S = 0.5, 0.01


def tiny_pixel_checkpoint(path: Path) -> Path:
    """A tiny-preset pixel policy on the lift pixel spec, untrained (acting is all this tests)."""
    enc = encoder_preset("tiny", SPEC.cameras, 84)
    cfg = ExpoConfig(
        obs_dim=1,
        act_dim=7,
        diffusion=DiffusionConfig(hidden_dim=16, num_blocks=1, block_dim=32, time_embed_dim=8, num_steps=2),
        editor=EditorConfig(hidden_dims=(16,), beta=0.2),
        critic=CriticConfig(hidden_dims=(16,), num_critics=2, num_min=2),
        num_samples=2,
    )
    agent = PixelAgent(pixel_expo_config(cfg, enc, SPEC), enc, SPEC, seed=0)
    agent.freeze_encoder()
    save_checkpoint(path, agent)
    return path.with_suffix(".safetensors")


class Client:
    """The independent client: publishes the pixel policy's inputs at 20 Hz, records what comes back.

    ``mode`` says how the next frames are made: "good", or one bad case."""

    def __init__(self, ctx: rclpy.Context, ns: str) -> None:
        self.node = rclpy.create_node("pixel_client", namespace=ns, context=ctx)
        n = self.node
        self.pub_js = n.create_publisher(JointState, "joint_states", 10)
        self.pub_ee = n.create_publisher(PoseStamped, "ee_pose_base", 10)
        self.pub_cam = {c: n.create_publisher(Image, f"{c}/image_raw", 5) for c in SPEC.cameras}
        self.actions: list[ActionCommand] = []
        self.diags: list[DiagnosticArray] = []
        n.create_subscription(ActionCommand, "action", self.actions.append, 100)
        n.create_subscription(DiagnosticArray, "diagnostics", self.diags.append, 10)
        self.mode = "good"
        self.frozen_ns = 0
        self.rng = np.random.default_rng(0)
        n.create_timer(0.05, self.publish)

    def frame(self, cam: str, ns: int) -> Image:
        px = self.rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)
        if cam == "agentview" and self.mode == "wrong_size":
            return cv.image_msg(px[:64, :64], ns, cam)
        if cam == "agentview" and self.mode == "wrong_encoding":
            return cv.image_msg(px[..., 0], ns, cam, encoding="mono8")
        return cv.image_msg(px, ns, cam)

    def publish(self) -> None:
        ns = self.node.get_clock().now().nanoseconds
        self.pub_js.publish(cv.joint_state_msg(JOINTS, QPOS, ns))
        self.pub_ee.publish(cv.pose_stamped_msg(EE_POS, EE_QUAT, ns, BASE))
        self.pub_cam["agentview"].publish(self.frame("agentview", ns))
        eye = {
            "good": ns,
            "wrong_size": ns,
            "wrong_encoding": ns,
            "frozen": self.frozen_ns,
            "late": ns - 1_000_000_000,  # stamped a second ago
            "skew": ns + 25_000_000,  # between two proprio stamps, 25 ms from each
        }.get(self.mode)
        if eye is not None:  # "missing": the eye-in-hand camera publishes nothing
            self.pub_cam["robot0_eye_in_hand"].publish(self.frame("robot0_eye_in_hand", eye))

    def set_mode(self, mode: str) -> int:
        """Switch; returns how many actions had arrived (what comes after answers the new mode)."""
        self.mode = mode
        self.frozen_ns = self.node.get_clock().now().nanoseconds
        return len(self.actions)


def spawn(ns: str, checkpoint: Path, log_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_LOG_DIR": str(log_dir)}
    params = {
        "checkpoint": str(checkpoint),
        "backend": "auto",  # onnxruntime here: frames are encoded as they arrive
        "autostart": "true",
        "lockstep": "false",
        "trigger": "observation",
        "deadline_ms": "5000.0",  # a loaded shared CPU must not turn this into inference_late
        "observation.max_age_s": str(MAX_AGE_S),
        "observation.max_skew_s": str(MAX_SKEW_S),
        "observation.base_frame": BASE,
        "safety.workspace_low": "[0.1, -0.4, -0.1]",  # the base frame's box
        "safety.workspace_high": "[0.9, 0.4, 0.45]",
        "diagnostics_period_s": "0.5",
        "num_base_samples": "2",
    }
    args = ["--ros-args", "-r", f"__ns:={ns}"]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    cmd = [sys.executable, "-m", "expo_policy.policy_node", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


BAD_CASES = [
    ("missing", "bad_observation: camera_missing: robot0_eye_in_hand: no frame for"),
    ("frozen", "bad_observation: camera_frozen: robot0_eye_in_hand: header stamp"),
    ("wrong_size", "bad_observation: camera_wrong_size: agentview: 64x64 pixels"),
    ("wrong_encoding", "bad_observation: camera_wrong_encoding: agentview: encoding 'mono8'"),
    ("late", "bad_observation: camera_late: robot0_eye_in_hand: frame 1.0"),
    ("skew", "bad_observation: observation_skew: stamps spread 0.0"),
]


def test_client_with_joint_states_and_two_cameras_gets_actions_and_each_bad_frame_holds(
    tmp_path: Path,
) -> None:
    checkpoint = tiny_pixel_checkpoint(tmp_path / "px")
    ns = f"/px_{uuid.uuid4().hex[:8]}"
    with ros_context(DOMAIN_ID) as ctx:
        proc = spawn(ns, checkpoint, tmp_path)
        client = Client(ctx, ns)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(client.node)

        def spin_until(
            done: Callable[[], object], what: str, timeout: float = 30.0, exits: bool = False
        ) -> None:
            deadline = time.monotonic() + timeout
            while not done():
                if (proc.poll() is not None and not exits) or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(
                        f"waiting for {what}: node exited or timed out; output:\n{proc.communicate()[0]}"
                    )
                ex.spin_once(timeout_sec=0.02)

        def acting(since: int) -> bool:
            return any(not a.hold for a in client.actions[since:])

        try:
            spin_until(lambda: acting(0), "an action on good frames", timeout=90.0)  # includes startup
            act = next(a for a in client.actions if not a.hold)
            assert len(act.action) == 7 and np.all(np.isfinite(act.action))
            assert np.all(np.abs(act.action) <= 1.0) and act.policy_version == 0
            for mode, reason in BAD_CASES:
                since = client.set_mode(mode)
                spin_until(
                    lambda s=since, r=reason: any(
                        a.hold and a.hold_reason.startswith(r) for a in client.actions[s:]
                    ),
                    f"a hold '{reason}...' ({mode})",
                )
                since = client.set_mode("good")
                spin_until(lambda s=since: acting(s), f"acting again after {mode}")
            kinds = {
                v.key: v.value
                for d in client.diags
                for s in d.status
                for v in s.values
                if v.key == "observation_kind"
            }
            assert kinds == {"observation_kind": "pixels"}
            # backend auto on CPU: onnxruntime's encoder graphs take the frames as they arrive
            ahead = [
                int(v.value)
                for d in client.diags
                for s in d.status
                for v in s.values
                if v.key == "frames_encoded_on_arrival"
            ]
            assert ahead and max(ahead) > 0, ahead
            proc.send_signal(signal.SIGINT)
            spin_until(lambda: proc.poll() is not None, "the node to exit", timeout=15.0, exits=True)
            assert proc.returncode == 0, proc.communicate()[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            ex.shutdown()
            client.node.destroy_node()
