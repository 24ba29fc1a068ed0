"""expo_interfaces: the field contract of every channel message, CDR round trips, and one
Transition carried over DDS between two nodes on an isolated domain.

Needs the built workspace (`bash scripts/setup.sh && source scripts/env.sh`); skips otherwise.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import time
import uuid

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sensor_msgs.msg import Image
from std_msgs.msg import Header

msgs = pytest.importorskip(
    "expo_interfaces.msg",
    reason="expo_interfaces is not built or not sourced: run `bash scripts/setup.sh` "
    "then `source scripts/env.sh`",
)

pytestmark = pytest.mark.ros

ACTION_DIM = 7  # OSC_POSE deltas (6) + gripper
OBS_DIM = 19  # Lift low-dim: eef_pos 3 + eef_quat 4 + gripper_qpos 2 + object 10
NUM_CANDIDATES = 16  # EXPO OTF: 8 base samples + 8 edits
MATCH_TIMEOUT_S = 10.0


def _header(frame_id: str = "base") -> Header:
    return Header(stamp=Time(sec=1_763_900_000, nanosec=123_456_789), frame_id=frame_id)


def _roundtrip(msg):
    """Serialize to CDR bytes and back; the copy must be a distinct, equal object."""
    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 0
    out = deserialize_message(data, type(msg))
    assert out is not msg
    assert out == msg
    return out


def _assert_float32_equal(got, want) -> None:
    """float32[] fields arrive as array.array('f'): compare exactly at float32 precision."""
    assert isinstance(got, array.array) and got.typecode == "f"
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want, dtype=np.float32))


def _camera_image(rng: np.random.Generator, frame_id: str) -> Image:
    pixels = rng.integers(0, 256, size=(84, 84, 3), dtype=np.uint8)
    return Image(
        header=_header(frame_id),
        height=84,
        width=84,
        encoding="rgb8",
        is_bigendian=0,
        step=84 * 3,
        data=array.array("B", pixels.tobytes()),
    )


def _transition(rng: np.random.Generator, with_images: bool) -> msgs.Transition:
    obs = rng.uniform(-1.0, 1.0, OBS_DIM).astype(np.float32)
    next_obs = (obs + rng.normal(0.0, 0.01, OBS_DIM)).astype(np.float32)
    cameras = ["agentview", "robot0_eye_in_hand"] if with_images else []
    return msgs.Transition(
        header=_header(),
        obs=obs.tolist(),
        action=rng.uniform(-1.0, 1.0, ACTION_DIM).astype(np.float32).tolist(),
        reward=1.0,
        next_obs=next_obs.tolist(),
        terminated=True,
        truncated=False,
        episode=12,
        step=46,
        policy_version=5,
        source="/robot1",
        images=[_camera_image(rng, camera) for camera in cameras],
    )


# The wire contract of each channel: field name -> ROS type, in declaration order.
EXPECTED_FIELDS = {
    "ActionCommand": {
        "header": "std_msgs/Header",
        "action": "sequence<float>",
        "policy_version": "uint64",
        "candidate_index": "int32",
        "is_edited": "boolean",
        "safety_modified": "boolean",
        "hold": "boolean",
        "hold_reason": "string",
        "episode": "uint64",
        "step": "uint32",
        "plan": "sequence<float>",
        "plan_period_ns": "uint64",
    },
    "EnvFeedback": {
        "header": "std_msgs/Header",
        "reward": "float",
        "terminated": "boolean",
        "truncated": "boolean",
        "success": "boolean",
        "episode": "uint64",
        "step": "uint32",
        "applied_action": "sequence<float>",
    },
    "Transition": {
        "header": "std_msgs/Header",
        "obs": "sequence<float>",
        "action": "sequence<float>",
        "reward": "float",
        "next_obs": "sequence<float>",
        "terminated": "boolean",
        "truncated": "boolean",
        "episode": "uint64",
        "step": "uint32",
        "policy_version": "uint64",
        "intervention": "boolean",
        "source": "string",
        "images": "sequence<sensor_msgs/Image>",
        "next_images": "sequence<sensor_msgs/Image>",
    },
    "OtfDecision": {
        "header": "std_msgs/Header",
        "candidates": "sequence<float>",
        "num_candidates": "uint32",
        "action_dim": "uint32",
        "q_values": "sequence<float>",
        "chosen_index": "uint32",
        "inference_latency_ms": "float",
        "policy_version": "uint64",
    },
    "PolicyWeights": {
        "header": "std_msgs/Header",
        "version": "uint64",
        "training_step": "uint64",
        "format": "string",
        "config_json": "string",
        "sha256": "string",
        "data": "sequence<uint8>",
    },
    "LearnerStats": {
        "header": "std_msgs/Header",
        "training_step": "uint64",
        "env_steps_received": "uint64",
        "buffer_size": "uint64",
        "achieved_utd": "float",
        "updates_per_second": "float",
        "weights_version": "uint64",
        "names": "sequence<string>",
        "values": "sequence<float>",
    },
    "TeleopCommand": {
        "header": "std_msgs/Header",
        "deadman": "boolean",
        "valid": "boolean",
        "action": "sequence<float>",
        "reason": "string",
        "device": "string",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_message_fields_match_the_channel_contract(name: str) -> None:
    fields = getattr(msgs, name).get_fields_and_field_types()
    assert list(fields.items()) == list(EXPECTED_FIELDS[name].items())


@pytest.mark.parametrize("hold", [False, True], ids=["policy_action", "hold"])
def test_action_command_roundtrip(hold: bool) -> None:
    action = [0.0] * 6 + [-1.0] if hold else [0.25, -0.5, 0.125, 0.0, -0.0625, 1.0, 1.0]
    plan = [] if hold else [0.5, -0.25, 0.0, 0.0, 0.0, 0.125, 1.0] * 3  # m = 3 rows, row-major
    msg = msgs.ActionCommand(
        header=_header(),
        action=action,
        policy_version=2**40 + 3,
        candidate_index=-1 if hold else 11,
        is_edited=not hold,
        safety_modified=not hold,
        hold=hold,
        hold_reason="stale_observation" if hold else "",
        episode=2**33,
        step=399,
        plan=plan,
        plan_period_ns=0 if hold else 50_000_000,
    )
    out = _roundtrip(msg)
    _assert_float32_equal(out.action, action)
    _assert_float32_equal(out.plan, plan)
    assert out.plan_period_ns == (0 if hold else 50_000_000)
    assert out.header.stamp.sec == 1_763_900_000 and out.header.stamp.nanosec == 123_456_789
    assert out.header.frame_id == "base"
    assert out.policy_version == 2**40 + 3
    assert out.candidate_index == (-1 if hold else 11)
    assert (out.is_edited, out.safety_modified, out.hold) == (not hold, not hold, hold)
    assert out.hold_reason == ("stale_observation" if hold else "")
    assert (out.episode, out.step) == (2**33, 399)


def test_env_feedback_roundtrip() -> None:
    msg = msgs.EnvFeedback(
        header=_header(),
        reward=1.0,
        terminated=True,
        truncated=False,
        success=True,
        episode=7,
        step=47,
        applied_action=[0.5, 0.0, -0.25, 0.0, 0.0, 0.0, 1.0],
    )
    out = _roundtrip(msg)
    _assert_float32_equal(out.applied_action, [0.5, 0.0, -0.25, 0.0, 0.0, 0.0, 1.0])
    assert out.reward == 1.0
    assert (out.terminated, out.truncated, out.success) == (True, False, True)
    assert (out.episode, out.step) == (7, 47)


@pytest.mark.parametrize("with_images", [False, True], ids=["low_dim", "with_images"])
def test_transition_roundtrip(with_images: bool) -> None:
    msg = _transition(np.random.default_rng(0), with_images)
    out = _roundtrip(msg)
    _assert_float32_equal(out.obs, msg.obs)
    _assert_float32_equal(out.action, msg.action)
    _assert_float32_equal(out.next_obs, msg.next_obs)
    assert len(out.obs) == len(out.next_obs) == OBS_DIM and len(out.action) == ACTION_DIM
    assert out.reward == 1.0 and out.terminated and not out.truncated
    assert (out.episode, out.step, out.policy_version, out.source) == (12, 46, 5, "/robot1")
    assert len(out.images) == (2 if with_images else 0)
    for got, want in zip(out.images, msg.images, strict=True):
        assert (got.header.frame_id, got.height, got.width, got.encoding, got.step) == (
            want.header.frame_id,
            84,
            84,
            "rgb8",
            252,
        )
        pixels = np.frombuffer(got.data, dtype=np.uint8).reshape(got.height, got.width, 3)
        np.testing.assert_array_equal(pixels, np.frombuffer(want.data, dtype=np.uint8).reshape(84, 84, 3))


def test_otf_decision_roundtrip() -> None:
    rng = np.random.default_rng(1)
    candidates = rng.uniform(-1.0, 1.0, (NUM_CANDIDATES, ACTION_DIM)).astype(np.float32)
    q_values = rng.normal(0.5, 0.1, NUM_CANDIDATES).astype(np.float32)
    msg = msgs.OtfDecision(
        header=_header(),
        candidates=candidates.ravel().tolist(),
        num_candidates=NUM_CANDIDATES,
        action_dim=ACTION_DIM,
        q_values=q_values.tolist(),
        chosen_index=int(np.argmax(q_values)),
        inference_latency_ms=9.75,
        policy_version=5,
    )
    out = _roundtrip(msg)
    assert (out.num_candidates, out.action_dim) == (NUM_CANDIDATES, ACTION_DIM)
    rows = np.asarray(out.candidates, dtype=np.float32).reshape(out.num_candidates, out.action_dim)
    np.testing.assert_array_equal(rows, candidates)  # row-major K x action_dim survives
    _assert_float32_equal(out.q_values, q_values)
    assert out.chosen_index == int(np.argmax(q_values))
    assert out.inference_latency_ms == pytest.approx(9.75)
    assert out.policy_version == 5


def test_policy_weights_roundtrip_keeps_bytes_and_digest() -> None:
    rng = np.random.default_rng(2)
    tensors = {
        "critic.0.weight": rng.normal(size=(256, OBS_DIM + ACTION_DIM)).astype(np.float32),
        "critic.0.bias": np.zeros(256, dtype=np.float32),
    }
    payload = st_save(tensors)
    config = {"obs_dim": OBS_DIM, "action_dim": ACTION_DIM, "hidden": 256, "diffusion_steps": 10}
    msg = msgs.PolicyWeights(
        header=_header(""),
        version=3,
        training_step=20_000,
        format="expo-safetensors-v1",
        config_json=json.dumps(config),
        sha256=hashlib.sha256(payload).hexdigest(),
        data=payload,
    )
    out = _roundtrip(msg)
    # uint8[] arrives as array.array('B') (bytes-like); bytes() gives the exact payload back.
    assert isinstance(out.data, array.array | bytes)
    received = bytes(out.data)
    assert received == payload
    assert hashlib.sha256(received).hexdigest() == out.sha256 and len(out.sha256) == 64
    assert (out.version, out.training_step, out.format) == (3, 20_000, "expo-safetensors-v1")
    assert json.loads(out.config_json) == config
    loaded = st_load(received)
    assert loaded.keys() == tensors.keys()
    for key, value in tensors.items():
        np.testing.assert_array_equal(loaded[key], value)


def test_learner_stats_roundtrip() -> None:
    names = ["critic_loss", "editor_loss", "bc_loss", "alpha", "q_mean"]
    values = [0.0412, -1.5, 0.873, 0.01, 12.25]
    msg = msgs.LearnerStats(
        header=_header(""),
        training_step=240_000,
        env_steps_received=12_000,
        buffer_size=11_600,
        achieved_utd=19.5,
        updates_per_second=1.5,
        weights_version=24,
        names=names,
        values=values,
    )
    out = _roundtrip(msg)
    assert (out.training_step, out.env_steps_received, out.buffer_size, out.weights_version) == (
        240_000,
        12_000,
        11_600,
        24,
    )
    assert out.achieved_utd == 19.5 and out.updates_per_second == 1.5
    assert list(out.names) == names and len(out.values) == len(out.names)
    _assert_float32_equal(out.values, values)


def _wait_until(executor: SingleThreadedExecutor, done, what: str) -> None:
    """Spin the executor until `done()` is true; fail after MATCH_TIMEOUT_S (no fixed sleeps)."""
    deadline = time.monotonic() + MATCH_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {MATCH_TIMEOUT_S} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


@pytest.fixture
def ros_context(tmp_path, monkeypatch):
    """An rclpy context on a domain of its own, logging into tmp_path; shut down afterwards."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))  # 1..100: valid and per-process
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "ros_log"))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def test_transition_published_between_two_nodes(ros_context) -> None:
    topic = f"/expo_test_{uuid.uuid4().hex[:8]}/transitions"
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    sent = _transition(np.random.default_rng(3), with_images=True)
    received = []

    actor = rclpy.create_node("actor", context=ros_context)
    learner = rclpy.create_node("learner", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        pub = actor.create_publisher(msgs.Transition, topic, qos)
        sub = learner.create_subscription(msgs.Transition, topic, received.append, qos)
        executor.add_node(actor)
        executor.add_node(learner)
        _wait_until(
            executor,
            lambda: pub.get_subscription_count() >= 1 and sub.get_publisher_count() >= 1,
            "publisher/subscription matching",
        )
        pub.publish(sent)
        _wait_until(executor, lambda: len(received) >= 1, "the Transition to arrive")
    finally:
        executor.shutdown()
        actor.destroy_node()
        learner.destroy_node()

    assert len(received) == 1
    got = received[0]
    assert got == sent
    assert got.source == "/robot1" and len(got.images) == 2
    _assert_float32_equal(got.obs, sent.obs)
    assert bytes(got.images[1].data) == bytes(sent.images[1].data)
