"""What the bridge publishes rebuilds, through the policy's own decoding path, exactly the
observation the env returns: the contract between sim bridge and policy node, per task."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from expo_bringup.graph import default_config_dir
from expo_core.spec import task_obs_spec
from expo_policy.inputs import ObservationInputs
from expo_policy.obs_builder import ObservationBuilder
from expo_ros import conversions as cv
from expo_sim.ros.bridge_conversions import (
    SimSnapshot,
    clock_msg,
    feedback_msg,
    observation_msgs,
    snapshot_from_env,
)
from expo_sim.ros.bridge_params import BridgeConfig

pytestmark = pytest.mark.ros


def policy_observation_params() -> dict:
    cfg = yaml.safe_load((default_config_dir() / "policy.yaml").read_text())
    return cfg["/**"]["ros__parameters"]["observation"]


def decode_like_the_policy(task: str, msgs, now_ns: int) -> np.ndarray:
    """The policy node's path: decoders -> synchronized pieces -> ObservationBuilder."""
    p = policy_observation_params()
    builder = ObservationBuilder(
        task_obs_spec(task), p["max_age_s"], p["max_skew_s"], p["finger_joint_names"], p["finger_signs"]
    )
    inputs = ObservationInputs(task, builder)
    js, ee, objs = msgs.joint_states, msgs.ee_pose, msgs.object_poses
    assert inputs.accepts_joint_state(js.name)
    inputs.add("joint_states", cv.stamp_ns(js.header.stamp), cv.joint_state_to_numpy(js))
    inputs.add("ee_pose", cv.stamp_ns(ee.header.stamp), cv.pose_stamped_to_numpy(ee), ee.header.frame_id)
    pieces = inputs.add(
        "object_poses", cv.stamp_ns(objs.header.stamp), cv.pose_array_to_numpy(objs), objs.header.frame_id
    )
    assert pieces is not None, "the three pieces must share one stamp"
    res = inputs.build(pieces, now_ns * 1e-9)
    assert res.ok, res.reason
    return res.obs


def test_bridge_finger_defaults_match_policy_yaml() -> None:
    p = policy_observation_params()
    assert list(BridgeConfig().finger_joint_names) == p["finger_joint_names"]
    assert p["finger_signs"] == [1.0, 1.0]  # the bridge publishes robosuite's finger qpos as is


@pytest.mark.parametrize("task", ["lift", "can"])
def test_published_observation_is_the_env_observation(env_cache, task: str) -> None:
    env = env_cache(task)
    cfg = BridgeConfig(task=task)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=3)
    ns = 1_000_000_000
    for i in range(4):
        snap = snapshot_from_env(env, info["obs_dict"])
        msgs = observation_msgs(snap, ns, cfg.joint_names, cfg.frame_id)
        assert msgs.image is None
        stamps = {cv.stamp_ns(m.header.stamp) for m in (msgs.joint_states, msgs.ee_pose, msgs.object_poses)}
        assert stamps == {ns}
        assert msgs.ee_pose.header.frame_id == msgs.object_poses.header.frame_id == "world"
        assert list(msgs.joint_states.name) == list(cfg.joint_names)
        assert len(msgs.joint_states.velocity) == 9
        rebuilt = decode_like_the_policy(task, msgs, ns)
        np.testing.assert_allclose(rebuilt, obs, rtol=0, atol=2e-6, err_msg=f"{task} state {i}")
        obs, _, _, _, info = env.step(rng.uniform(-1, 1, 7))
        ns += cfg.period_ns


def test_arm_joints_come_from_the_mujoco_state(lift_env) -> None:
    _, info = lift_env.reset(seed=1)
    snap = snapshot_from_env(lift_env, info["obs_dict"])
    d = info["obs_dict"]
    # robosuite observes the arm as sin/cos only: they must agree with the published angles.
    np.testing.assert_allclose(np.cos(snap.joint_pos[:7]), d["robot0_joint_pos_cos"], atol=1e-9)
    np.testing.assert_allclose(np.sin(snap.joint_pos[:7]), d["robot0_joint_pos_sin"], atol=1e-9)
    np.testing.assert_array_equal(snap.joint_pos[7:], d["robot0_gripper_qpos"])
    np.testing.assert_allclose(snap.joint_vel[:7], d["robot0_joint_vel"], atol=1e-9)


def test_image_feedback_and_clock_messages() -> None:
    px = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    snap = SimSnapshot(
        joint_pos=np.zeros(9),
        joint_vel=np.zeros(9),
        ee_pos=np.zeros(3),
        ee_quat=np.array([0.0, 0.0, 0.0, 1.0]),
        object_pos=np.zeros((1, 3)),
        object_quat=np.array([[0.0, 0.0, 0.0, 1.0]]),
        image=px,
    )
    ns = 123_456_789_050_000_000  # large stamps stay exact (integer nanoseconds end to end)
    msgs = observation_msgs(snap, ns, BridgeConfig().joint_names, "world", "agentview")
    assert msgs.image.header.frame_id == "agentview" and msgs.image.encoding == "rgb8"
    assert cv.stamp_ns(msgs.image.header.stamp) == ns
    np.testing.assert_array_equal(cv.image_to_numpy(msgs.image), px)
    fb = cv.env_feedback_to_numpy(feedback_msg(ns, 1.0, True, False, True, 4, 17))
    assert (fb.stamp_ns, fb.reward, fb.terminated, fb.truncated, fb.success, fb.episode, fb.step) == (
        ns,
        1.0,
        True,
        False,
        True,
        4,
        17,
    )
    assert cv.stamp_ns(clock_msg(ns).clock) == ns
    with pytest.raises(ValueError, match="joint names"):
        observation_msgs(snap, ns, ("a", "b"), "world")
