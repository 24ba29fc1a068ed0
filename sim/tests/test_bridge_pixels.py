"""SimBridge in pixel mode (``observation.kind: pixels``, issue 13): one rgb8 Image per camera on
``<camera>/image_raw`` with the stamp of that step's joint state, the base-frame end-effector
pose on ``ee_pose_base``, lockstep waiting for a pixel policy's subscriptions (no object poses),
and the parameter checks.

One rclpy context on its own domain; each test uses a fresh namespace (the bridge's /clock is
remapped into it). Fixed windows only check that something does *not* happen.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from expo_ros.node_harness import NodeHarness, harness_factory, ros_context
from expo_sim.envs.robosuite_env import make_env
from expo_sim.ros.bridge_node import SimBridge
from expo_sim.ros.bridge_params import PARAMETERS, BridgeConfig
from geometry_msgs.msg import PoseStamped
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState

DOMAIN_ID = 211 + os.getpid() % 4  # 211..214 (inside test_bridge_node's range; namespaces apart)
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
CAMERAS = ("agentview", "robot0_eye_in_hand")
SIZE = 32
MOVE = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], dtype=np.float32)
LIFT_BASE_POS = np.array([-0.56, 0.0, 0.912])  # robosuite Lift's robot base in the world


@pytest.fixture(scope="module")
def ros_ctx():
    with ros_context(DOMAIN_ID) as ctx:
        yield ctx


class PixelHarness(NodeHarness):
    """A pixel-mode SimBridge and an ``io`` node; :meth:`subscribe` plays a pixel policy."""

    timeout_s = 30.0

    def __init__(self, ctx: rclpy.Context, **params: object) -> None:
        self.ns = ns = f"/px_{uuid.uuid4().hex[:8]}"
        base = {"autostart": False, "observation.kind": "pixels", "observation.image_size": SIZE}
        overrides = [Parameter(k, value=v) for k, v in {**base, **params}.items()]
        remap = ["--ros-args", "-r", f"/clock:={ns}/clock"]
        self.bridge = SimBridge(context=ctx, namespace=ns, parameter_overrides=overrides, cli_args=remap)
        self.io = rclpy.create_node("io", namespace=ns, context=ctx)
        self.msgs: dict[str, list] = {}
        self.attach(ctx, self.bridge, self.io)

    def subscribe(self, topic: str, msg_type: type) -> list:
        self.msgs[topic] = []
        self.io.create_subscription(msg_type, topic, self.msgs[topic].append, 100)
        return self.msgs[topic]

    def start(self) -> None:
        assert self.bridge.trigger_configure() == SUCCESS
        assert self.bridge.trigger_activate() == SUCCESS

    def stamps(self, topic: str) -> list[int]:
        return [cv.stamp_ns(m.header.stamp) for m in self.msgs[topic]]


@pytest.fixture
def harness(ros_ctx):
    yield from harness_factory(lambda **params: PixelHarness(ros_ctx, **params))


def _defaults(**values: object) -> dict[str, object]:
    return {p.name: p.default for p in PARAMETERS} | values


def _reset_observation() -> dict:
    """What an env of the bridge's default seed observes at its first reset: the frames the
    bridge must publish first."""
    env = make_env("lift", obs="pixels", cameras=CAMERAS, camera_size=SIZE)
    try:
        obs, _ = env.reset(seed=BridgeConfig.from_values(_defaults()).seed)
    finally:
        env.close()
    return obs


def test_pixel_config_parses_and_rejects_bad_values() -> None:
    cfg = BridgeConfig.from_values(_defaults(**{"observation.kind": "pixels"}))
    assert cfg.cameras == CAMERAS and cfg.rendered_cameras == CAMERAS and cfg.render_size == 84
    assert BridgeConfig.from_values(_defaults()).cameras == (), "state mode renders nothing"
    bad = [
        ({"observation.kind": "depth"}, "observation.kind"),
        ({"observation.kind": "pixels", "observation.cameras": ["sideview"]}, "observation.cameras"),
        ({"observation.kind": "pixels", "observation.cameras": []}, "observation.cameras"),
        ({"observation.kind": "pixels", "observation.cameras": ["agentview", "agentview"]}, "cameras"),
        ({"observation.kind": "pixels", "observation.image_size": 4}, "observation.image_size"),
        ({"observation.kind": "pixels", "camera.enabled": True}, "camera.enabled"),
        ({"base_frame_id": ""}, "base_frame_id"),
    ]
    for values, name in bad:
        with pytest.raises(ValueError, match=name):
            BridgeConfig.from_values(_defaults(**values))


@pytest.mark.parametrize("parallel", [False, True], ids=["one-thread", "render-parallel"])
def test_each_camera_and_the_base_pose_go_out_with_the_joint_state_stamp(harness, parallel: bool) -> None:
    h = harness(**{"observation.render_parallel": parallel})
    joints = h.subscribe("joint_states", JointState)
    ee = h.subscribe("ee_pose", PoseStamped)
    ee_base = h.subscribe("ee_pose_base", PoseStamped)
    frames = {c: h.subscribe(f"{c}/image_raw", Image) for c in CAMERAS}
    act = h.io.create_publisher(ActionCommand, "action", 10)
    h.start()
    h.spin_until(lambda: joints and all(frames.values()) and ee_base and ee, "the first observation set")
    s0 = h.stamps("joint_states")[0]
    for cam in CAMERAS:
        img = frames[cam][0]
        assert cv.stamp_ns(img.header.stamp) == s0, f"{cam}: not the joint state's stamp"
        assert (img.encoding, img.height, img.width, img.step) == ("rgb8", SIZE, SIZE, 3 * SIZE)
        assert img.header.frame_id == cam
        px = cv.image_to_numpy(img)
        assert px.std() > 0, f"{cam}: a rendered scene, not a blank frame"
    assert not np.array_equal(
        cv.image_to_numpy(frames[CAMERAS[0]][0]), cv.image_to_numpy(frames[CAMERAS[1]][0])
    )
    # Lockstep renders each frame after the step (RobomimicEnv.defer_frames; with
    # render_parallel the second camera in a worker thread): the very frames an env of the same
    # seed observes.
    obs = _reset_observation()
    for cam in CAMERAS:
        np.testing.assert_array_equal(cv.image_to_numpy(frames[cam][0]), obs[f"{cam}_image"])
    # Base frame: Lift's base has the identity rotation, so the pose is shifted by the base position.
    assert ee_base[0].header.frame_id == "robot0_base" and cv.stamp_ns(ee_base[0].header.stamp) == s0
    world, q_world = cv.pose_stamped_to_numpy(ee[0])
    base, q_base = cv.pose_stamped_to_numpy(ee_base[0])
    np.testing.assert_allclose(base, world - LIFT_BASE_POS, atol=1e-5)
    np.testing.assert_allclose(np.abs(q_base), np.abs(q_world), atol=1e-5)
    # One step: the next set again carries one frame per camera with the new joint state's stamp.
    act.publish(cv.action_command_msg(cv.Command(action=MOVE, stamp_ns=s0, episode=0, step=0)))
    h.spin_until(lambda: len(joints) >= 2 and all(len(f) >= 2 for f in frames.values()), "the next set")
    s1 = h.stamps("joint_states")[1]
    assert s1 > s0 and all(h.stamps(f"{c}/image_raw")[1] == s1 for c in CAMERAS)
    assert not np.array_equal(
        cv.image_to_numpy(frames["agentview"][0]), cv.image_to_numpy(frames["agentview"][1])
    )


def test_lockstep_waits_for_the_camera_subscriptions_not_object_poses(harness) -> None:
    h = harness(**{"observation.cameras": ["agentview"]})
    joints = h.subscribe("joint_states", JointState)
    h.subscribe("ee_pose_base", PoseStamped)
    h.io.create_publisher(ActionCommand, "action", 10)
    h.start()
    with pytest.raises(AssertionError):  # no camera subscriber yet: no first observation
        h.spin_until(lambda: joints, "an observation before the camera is subscribed", timeout=1.5)
    frames = h.subscribe("agentview/image_raw", Image)
    h.spin_until(lambda: joints and frames, "the first observation once the camera is subscribed")
    assert h.stamps("agentview/image_raw")[0] == h.stamps("joint_states")[0]
    assert h.io.count_publishers(f"{h.ns}/agentview/image_raw") == 1
    assert h.io.count_publishers(f"{h.ns}/robot0_eye_in_hand/image_raw") == 0, "only the listed cameras"


def test_realtime_frames_follow_the_proprioception_with_its_stamp(harness) -> None:
    """Realtime: the cameras render in worker threads (one per camera) while the physics runs on
    (RobomimicEnv.frames_in_background); each observation's frames still carry its joint
    state's stamp, and are the frames of that state: an idle bridge (no command yet) publishes
    its reset state every period, the very frames an env of the same seed observes at reset. Once
    a command takes effect the arm moves and the frames change. The diagnostics count the
    frames rendered and dropped."""
    reset_obs = _reset_observation()
    h = harness(realtime=True, diagnostics_period_s=0.2)
    joints = h.subscribe("joint_states", JointState)
    frames = {c: h.subscribe(f"{c}/image_raw", Image) for c in CAMERAS}
    diags = h.subscribe("diagnostics", DiagnosticArray)
    act = h.io.create_publisher(ActionCommand, "action", 10)
    h.start()
    h.spin_until(lambda: all(len(f) >= 3 for f in frames.values()), "three observations' frames")
    joint_stamps = set(h.stamps("joint_states"))
    for cam in CAMERAS:
        stamps = h.stamps(f"{cam}/image_raw")
        assert stamps == sorted(stamps) and set(stamps[:3]) <= joint_stamps, f"{cam}: not joint state stamps"
        for img in frames[cam][:3]:  # idle: the reset state, period after period
            assert img.header.frame_id == cam and (img.height, img.width) == (SIZE, SIZE)
            np.testing.assert_array_equal(cv.image_to_numpy(img), reset_obs[f"{cam}_image"])
    # A command answering an observation just received: the arm moves, the frames follow.
    n = len(joints)
    h.spin_until(lambda: len(joints) > n, "a new joint state")
    s = h.stamps("joint_states")[-1]
    act.publish(cv.action_command_msg(cv.Command(action=MOVE, stamp_ns=s, episode=0, step=0)))
    n = len(frames["agentview"])
    h.spin_until(lambda: len(frames["agentview"]) >= n + 4, "frames after the command took effect")
    moved = cv.image_to_numpy(frames["agentview"][-1])
    assert not np.array_equal(moved, reset_obs["agentview_image"]), "the arm moved: a new frame"
    h.spin_until(
        lambda: any(float(cv.diagnostics_values(d).get("frame_sets_rendered", 0)) >= 3 for d in diags),
        "frame counts in the bridge's diagnostics",
    )
    values = cv.diagnostics_values(diags[-1])
    assert {"frame_sets_rendered", "frame_sets_dropped", "frame_errors"} <= set(values)
    assert values["frame_errors"] == "0"
