"""msg <-> numpy: one round trip per channel, through CDR bytes as on the wire."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from expo_ros import conversions as cv
from expo_ros.transitions import Feedback, TransitionData
from rclpy.serialization import deserialize_message, serialize_message

pytestmark = pytest.mark.ros
NS = 1_763_900_000_123_456_789
RNG = np.random.default_rng(0)


def wire(msg):
    """Serialize to CDR and back, as a subscriber would receive it."""
    return deserialize_message(serialize_message(msg), type(msg))


def test_stamps_round_trip_exactly() -> None:
    t = cv.time_msg(NS)
    assert (t.sec, t.nanosec) == (1_763_900_000, 123_456_789)
    assert cv.stamp_ns(wire(cv.header(NS, "world")).stamp) == NS


def test_joint_state() -> None:
    names, pos = ["panda_joint1", "panda_finger_joint1", "panda_finger_joint2"], np.array([0.3, 0.04, -0.04])
    got_names, got_pos = cv.joint_state_to_numpy(wire(cv.joint_state_msg(names, pos, NS)))
    assert got_names == names
    np.testing.assert_array_equal(got_pos, pos)
    assert got_pos.dtype == np.float64


def test_pose_stamped_and_pose_array() -> None:
    pos, quat = np.array([0.1, -0.2, 1.0]), np.array([0.0, 0.6, 0.0, 0.8])
    msg = wire(cv.pose_stamped_msg(pos, quat, NS, "world"))
    assert msg.header.frame_id == "world" and cv.stamp_ns(msg.header.stamp) == NS
    p, q = cv.pose_stamped_to_numpy(msg)
    np.testing.assert_array_equal(p, pos)
    np.testing.assert_array_equal(q, quat)  # x, y, z, w order kept
    positions, quats = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 4))
    p, q = cv.pose_array_to_numpy(wire(cv.pose_array_msg(positions, quats, NS, "world")))
    np.testing.assert_array_equal(p, positions)
    np.testing.assert_array_equal(q, quats)
    p, q = cv.pose_array_to_numpy(wire(cv.pose_array_msg(np.zeros((0, 3)), np.zeros((0, 4)), NS, "w")))
    assert p.shape == (0, 3) and q.shape == (0, 4)
    with pytest.raises(ValueError, match="orientations"):
        cv.pose_array_msg(np.zeros((2, 3)), np.zeros((1, 4)), NS, "w")


@pytest.mark.parametrize(("encoding", "channels"), [("rgb8", 3), ("mono8", 1), ("bgra8", 4)])
def test_image(encoding: str, channels: int) -> None:
    px = RNG.integers(0, 256, size=(6, 5, channels), dtype=np.uint8)
    got = cv.image_to_numpy(wire(cv.image_msg(px, NS, "agentview", encoding)))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, px)


def test_image_row_padding_and_bad_inputs() -> None:
    px = RNG.integers(0, 256, size=(3, 2, 3), dtype=np.uint8)
    msg = cv.image_msg(px, NS, "cam")
    padded = np.zeros((3, 8), np.uint8)  # step 8 > 2 * 3: two padding bytes per row
    padded[:, :6] = px.reshape(3, 6)
    msg.step, msg.data = 8, padded.tobytes()
    np.testing.assert_array_equal(cv.image_to_numpy(msg), px)
    msg.encoding = "16UC1"
    with pytest.raises(ValueError, match="unsupported"):
        cv.image_to_numpy(msg)
    msg.encoding, msg.data = "rgb8", padded.tobytes()[:-1]
    with pytest.raises(ValueError, match="does not fit"):
        cv.image_to_numpy(msg)


def test_action_command() -> None:
    cmd = cv.Command(
        action=np.array([0.25, -0.5, 0.125, 0, 0, 0.5, 1], np.float32),
        stamp_ns=NS,
        policy_version=7,
        candidate_index=9,
        is_edited=True,
        safety_modified=True,
        hold=False,
        episode=3,
        step=41,
        frame_id="world",
    )
    got = cv.action_command_to_numpy(wire(cv.action_command_msg(cmd)))
    np.testing.assert_array_equal(got.action, cmd.action)
    assert got == cv.Command(**{**cmd.__dict__, "action": got.action})


def test_env_feedback() -> None:
    fb = Feedback(
        episode=2, step=399, reward=1.0, terminated=False, truncated=True, success=False, stamp_ns=NS
    )
    assert cv.env_feedback_to_numpy(wire(cv.env_feedback_msg(fb))) == fb  # stamp exact to the ns
    applied = np.array([0.5, 0, 0, 0, 0, -0.25, 1], np.float32)
    got = cv.env_feedback_to_numpy(
        wire(cv.env_feedback_msg(Feedback(**{**fb.__dict__, "applied_action": applied})))
    )
    np.testing.assert_array_equal(got.applied_action, applied)


def test_action_command_plan_rows() -> None:
    """The plan travels flat (m x d, row-major) and comes back as (m, d) rows; no plan = None."""
    action = np.array([0.25, -0.5, 0.125, 0, 0, 0.5, 1], np.float32)
    plan = np.arange(21, dtype=np.float32).reshape(3, 7) / 32.0
    cmd = cv.Command(action=action, stamp_ns=NS, plan=plan, plan_period_ns=50_000_000)
    msg = cv.action_command_msg(cmd)
    assert len(msg.plan) == 21 and msg.plan_period_ns == 50_000_000
    got = cv.action_command_to_numpy(wire(msg))
    np.testing.assert_array_equal(got.plan, plan)
    assert got.plan_rows == 3 and got.plan_period_ns == 50_000_000
    bare = cv.action_command_to_numpy(wire(cv.action_command_msg(cv.Command(action=action, stamp_ns=NS))))
    assert bare.plan is None and bare.plan_rows == 0 and bare.plan_period_ns == 0
    with pytest.raises(ValueError, match="m x 7"):
        cv.action_command_msg(cv.Command(action=action, stamp_ns=NS, plan=np.zeros((2, 6), np.float32)))
    msg.plan = msg.plan[:-1]  # 20 values: not whole rows of 7
    with pytest.raises(ValueError, match="m x 7"):
        cv.action_command_to_numpy(msg)


def test_transition_with_image() -> None:
    image = cv.image_msg(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8), NS, "agentview")
    t = TransitionData(
        obs=RNG.normal(size=19).astype(np.float32),
        action=RNG.uniform(-1, 1, 7).astype(np.float32),
        reward=1.0,
        next_obs=RNG.normal(size=19).astype(np.float32),
        terminated=True,
        truncated=False,
        episode=5,
        step=46,
        policy_version=3,
        stamp_ns=NS,
        images=(image,),
    )
    msg = wire(cv.transition_msg(t, "/robot1/policy_node"))
    assert msg.source == "/robot1/policy_node"
    got = cv.transition_to_numpy(msg)
    for name in ("obs", "action", "next_obs"):
        np.testing.assert_array_equal(getattr(got, name), getattr(t, name))
    assert got.stamp_ns == NS
    assert (got.reward, got.terminated, got.truncated, got.episode, got.step, got.policy_version) == (
        1.0,
        True,
        False,
        5,
        46,
        3,
    )
    assert len(got.images) == 1 and bytes(got.images[0].data) == bytes(image.data)


def test_transition_intervention_flag_round_trips_and_defaults_to_false() -> None:
    base = dict(
        obs=np.zeros(3, np.float32),
        action=np.zeros(7, np.float32),
        reward=0.0,
        next_obs=np.ones(3, np.float32),
        terminated=False,
        truncated=False,
        episode=0,
        step=1,
        policy_version=0,
        stamp_ns=NS,
    )
    assert TransitionData(**base).intervention is False
    assert cv.transition_to_numpy(wire(cv.transition_msg(TransitionData(**base), "a"))).intervention is False
    marked = wire(cv.transition_msg(TransitionData(**base, intervention=True), "a"))
    assert marked.intervention is True and cv.transition_to_numpy(marked).intervention is True


def test_transition_decoded_from_an_older_definition_has_no_intervention() -> None:
    """A message object of the old schema (no ``intervention`` attribute, as rosbags builds it
    from an old bag's embedded definition) decodes with the flag False."""
    old = cv.transition_msg(
        TransitionData(np.zeros(2), np.zeros(7), 0.0, np.zeros(2), False, False, 0, 0, 0, NS), "a"
    )
    fields = {k: getattr(old, k) for k in old.get_fields_and_field_types() if k != "intervention"}
    legacy = type("LegacyTransition", (), fields)()
    assert not hasattr(legacy, "intervention")
    assert cv.transition_to_numpy(legacy).intervention is False


def test_teleop_command() -> None:
    action = np.array([0.5, -0.25, 0, 0, 0, 0.125, 1], np.float32)
    t = cv.TeleopState(NS, deadman=True, valid=True, action=action, device="spacenav")
    got = cv.teleop_to_numpy(wire(cv.teleop_msg(t)))
    assert (got.stamp_ns, got.deadman, got.valid, got.reason, got.device) == (NS, True, True, "", "spacenav")
    np.testing.assert_array_equal(got.action, action)
    assert got.action.dtype == np.float32
    bad = cv.teleop_to_numpy(
        wire(cv.teleop_msg(cv.TeleopState(NS, True, False, np.zeros(0), reason="nan in axes 2")))
    )
    assert (bad.valid, bad.reason, bad.action.shape) == (False, "nan in axes 2", (0,))


def test_joy() -> None:
    got = cv.joy_to_numpy(wire(cv.joy_msg([0.5, float("nan"), -1.0], [0, 1], NS, "spacenav")))
    assert got.stamp_ns == NS and got.axes.dtype == np.float64 and got.buttons.tolist() == [0, 1]
    assert got.axes[0] == 0.5 and np.isnan(got.axes[1]) and got.axes[2] == -1.0  # NaN passes through
    empty = cv.joy_to_numpy(wire(cv.joy_msg([], [], NS)))
    assert empty.axes.shape == (0,) and empty.buttons.shape == (0,)


def test_otf_decision() -> None:
    cand, q = RNG.uniform(-1, 1, (8, 7)).astype(np.float32), RNG.normal(size=8).astype(np.float32)
    c, qq, chosen, latency, version = cv.otf_decision_to_numpy(
        wire(cv.otf_decision_msg(cand, q, int(q.argmax()), 2.5, 4, NS))
    )
    np.testing.assert_array_equal(c, cand)  # row-major (K, d) survives
    np.testing.assert_array_equal(qq, q)
    assert (chosen, latency, version) == (int(q.argmax()), 2.5, 4)
    with pytest.raises(ValueError, match=r"\(K, d\)"):
        cv.otf_decision_msg(cand, q[:3], 0, 1.0, 0, NS)


def test_policy_weights() -> None:
    data = b"\x00\x01safetensors-bytes" * 100
    w = cv.WeightsPayload(7, data, hashlib.sha256(data).hexdigest(), "expo-safetensors-v1", 1234, "{}")
    got = cv.policy_weights_to_numpy(wire(cv.policy_weights_msg(w, NS)))
    assert got == w and isinstance(got.data, bytes)


def test_learner_stats() -> None:
    s = cv.LearnerStatsData(NS, 2**40 + 3, 1234, 1000, 19.5, 41.25, 9, {"critic_loss": 0.5, "alpha": 0.125})
    got = cv.learner_stats_to_numpy(wire(cv.learner_stats_msg(s)))
    assert got == s and list(got.scalars) == ["critic_loss", "alpha"]  # names keep their order
    bad = cv.learner_stats_msg(s)
    bad.names = ["only_one_name", "and_another", "and_a_third"]
    with pytest.raises(ValueError, match="3 names but 2 values"):
        cv.learner_stats_to_numpy(bad)


def test_diagnostics() -> None:
    msg = wire(
        cv.diagnostics_msg(
            NS,
            "/policy_node: control loop",
            DiagnosticStatus.WARN,
            "holding",
            {"a": 1.23456, "n": 3, "b": True, "s": "x"},
        )
    )
    assert msg.status[0].level == DiagnosticStatus.WARN and msg.status[0].name == "/policy_node: control loop"
    assert cv.diagnostics_values(msg) == {"a": "1.235", "n": "3", "b": "true", "s": "x"}
