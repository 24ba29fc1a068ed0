"""The policy node's pixel setup without ROS: camera parameters, the checkpoint's spec checked
against what the node can observe, watched inputs, and Image -> frame."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from expo_core.spec import ObsKey, ObsSpec, task_obs_spec
from expo_policy.camera_inputs import PixelObservationInputs
from expo_policy.camera_setup import frame_from_image, pixel_inputs, watched_inputs
from expo_policy.params import PARAMETERS, PolicyNodeConfig
from expo_ros import conversions as cv

SPEC = task_obs_spec("lift", "pixels")


def config(**over: object) -> PolicyNodeConfig:
    values = {p.name: p.default for p in PARAMETERS}
    values.update({"checkpoint": "x.safetensors", **over})
    return PolicyNodeConfig.from_values(values)


def test_camera_parameters_default_to_relative_image_raw_topics() -> None:
    cfg = config()
    assert cfg.camera_topics == {
        "agentview": "agentview/image_raw",
        "robot0_eye_in_hand": "robot0_eye_in_hand/image_raw",
    }
    assert cfg.arm_joint_names == tuple(f"panda_joint{i}" for i in range(1, 8)) and cfg.base_frame == ""
    cfg = config(
        **{"cameras.agentview.topic": "/camera/color/image_raw", "observation.base_frame": "fr3_link0"}
    )
    assert cfg.camera_topics["agentview"] == "/camera/color/image_raw" and cfg.base_frame == "fr3_link0"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        (
            "cameras.agentview.topic",
            "not a topic!",
            "parameter 'cameras.agentview.topic' must be a ROS topic",
        ),
        ("observation.arm_joint_names", ["a", "b"], "parameter 'observation.arm_joint_names'"),
        (
            "observation.arm_joint_names",
            [f"j{i}" for i in range(6)] + ["panda_finger_joint1"],
            "7 names other than the finger joints",
        ),
    ],
)
def test_bad_camera_parameters_name_the_parameter(name: str, value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        config(**{name: value})


def test_pixel_inputs_follow_the_checkpoint_spec() -> None:
    inp = pixel_inputs(config(**{"observation.base_frame": "robot0_base"}), SPEC)
    assert (
        isinstance(inp, PixelObservationInputs)
        and inp.cameras == SPEC.cameras
        and inp.base_frame == "robot0_base"
    )
    one_cam = task_obs_spec("lift", "pixels", cameras=("robot0_eye_in_hand",))
    assert pixel_inputs(config(), one_cam).names == ("joint_states", "ee_pose_base", "robot0_eye_in_hand")


def test_pixel_spec_the_node_cannot_fill_fails_configure() -> None:
    odd = ObsSpec((ObsKey("robot0_joint_pos", 7),), SPEC.rgb)
    with pytest.raises(ValueError, match="parameter 'checkpoint': the pixel policy's proprio is"):
        pixel_inputs(config(), odd)


def test_watched_inputs_of_a_pixel_policy() -> None:
    cfg = config(**{"observation.max_age_s": 0.4})
    w = watched_inputs(cfg, SPEC)
    assert w == {
        "joint_states": (0.25, True),
        "ee_pose_base": (0.25, True),
        "env_feedback": (1.0, False),
        "agentview": (0.4, False),
        "robot0_eye_in_hand": (0.4, False),
    }


def test_frame_from_an_image_message() -> None:
    px = np.arange(84 * 84 * 3, dtype=np.uint8).reshape(84, 84, 3)
    msg = cv.image_msg(px, 1_500_000_000, "agentview")
    assert isinstance(msg.header.stamp, Time)
    f = frame_from_image(SPEC.rgb[0], msg, 2.0)
    assert f.ok and f.stamp_ns == 1_500_000_000 and f.received_s == 2.0 and f.msg is msg
    np.testing.assert_array_equal(f.pixels, px)
