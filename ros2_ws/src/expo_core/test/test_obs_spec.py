"""Observation spec with modalities: the state spec unchanged, the pixel spec, validation, JSON."""

import json

import numpy as np
import pytest
from expo_core.spec import (
    BASE_FRAME_PROPRIO,
    ObsKey,
    ObsSpec,
    RgbKey,
    task_obs_spec,
)
from expo_core.tasks import SUPPORTED_CAMERAS, SUPPORTED_TASKS

# What bags and the data tools wrote before cameras existed (robomimic_bags' expo.obs_spec).
OLD_LIFT_JSON = '[["robot0_eef_pos", 3], ["robot0_eef_quat", 4], ["robot0_gripper_qpos", 2], ["object", 10]]'


def test_state_spec_is_todays_and_writes_the_old_json():
    spec = task_obs_spec("lift")
    assert spec == task_obs_spec("lift", "state")
    assert spec.names == ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
    assert spec.dim == 19 and spec.rgb == () and not spec.has_images
    assert json.dumps(spec.to_json()) == OLD_LIFT_JSON  # byte-identical: old readers keep working
    assert ObsSpec.from_json(json.loads(OLD_LIFT_JSON)) == spec


@pytest.mark.parametrize("task", SUPPORTED_TASKS)
def test_pixel_spec_has_proprio_and_cameras_and_no_object(task):
    spec = task_obs_spec(task, obs="pixels")
    assert "object" not in spec.names and "object" not in spec.rgb_names
    assert spec.names == (
        "robot0_base_to_eef_pos",
        "robot0_base_to_eef_quat",
        "robot0_gripper_qpos",
        "robot0_joint_pos",
    )
    assert spec.keys == BASE_FRAME_PROPRIO and spec.dim == 16
    assert spec.rgb_names == ("agentview_image", "robot0_eye_in_hand_image")
    assert spec.cameras == SUPPORTED_CAMERAS
    assert all(k.shape == (84, 84, 3) for k in spec.rgb)
    assert spec.modalities() == {"low_dim": list(spec.names), "rgb": list(spec.rgb_names)}


def test_pixel_spec_options():
    spec = task_obs_spec("can", "pixels", cameras=("robot0_eye_in_hand",), image_size=64)
    assert spec.rgb == (RgbKey("robot0_eye_in_hand_image", 64, 64),)
    with pytest.raises(ValueError, match="obs must be one of"):
        task_obs_spec("lift", obs="depth")
    with pytest.raises(ValueError, match="cameras .*frontview.* unknown"):
        task_obs_spec("lift", "pixels", cameras=("frontview",))
    with pytest.raises(ValueError, match="at least one camera"):
        task_obs_spec("lift", "pixels", cameras=())
    with pytest.raises(ValueError, match="RgbKey.height"):
        task_obs_spec("lift", "pixels", image_size=4)
    with pytest.raises(ValueError, match="unknown task"):
        task_obs_spec("door", "pixels")


def test_json_round_trip_with_cameras():
    spec = task_obs_spec("square", "pixels", image_size=96)
    data = json.loads(json.dumps(spec.to_json()))
    assert data == {
        "low_dim": [[k.name, k.dim] for k in spec.keys],
        "rgb": [["agentview_image", 96, 96], ["robot0_eye_in_hand_image", 96, 96]],
    }
    assert ObsSpec.from_json(data) == spec
    assert ObsSpec.from_json({"low_dim": [["a", 2]]}) == ObsSpec((ObsKey("a", 2),))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"rgb": []}, "must have 'low_dim'"),
        ({"low_dim": [["a", 2]], "depth": []}, "got keys"),
        ([["a", "two"]], "malformed"),
        ([["a", 2, 3]], "malformed"),
        ({"low_dim": [["a", 2]], "rgb": [["cam", 84, 84]]}, "RgbKey.name"),
        ("a", "list or an object"),
    ],
)
def test_malformed_json_raises_value_error(data, match):
    with pytest.raises(ValueError, match=match):
        ObsSpec.from_json(data)


def test_validation_names_the_field():
    with pytest.raises(ValueError, match=r"RgbKey.name must be '<camera>_image'"):
        RgbKey("agentview")
    with pytest.raises(ValueError, match="RgbKey.name"):
        RgbKey("_image")
    with pytest.raises(ValueError, match="RgbKey.width for 'a_image'"):
        RgbKey("a_image", 84, 0)
    with pytest.raises(ValueError, match="RgbKey.height"):
        RgbKey("a_image", 84.0, 84)
    with pytest.raises(ValueError, match="ObsKey.dim for 'x'"):
        ObsKey("x", 0)
    with pytest.raises(ValueError, match="ObsKey.name"):
        ObsKey("", 3)
    with pytest.raises(ValueError, match="duplicate"):
        ObsSpec((ObsKey("x", 1),), (RgbKey("a_image"), RgbKey("a_image")))
    with pytest.raises(ValueError, match="belong in ObsSpec.rgb"):
        ObsSpec((ObsKey("agentview_image", 3),))
    with pytest.raises(ValueError, match="at least one low-dim"):
        ObsSpec((), (RgbKey("a_image"),))
    with pytest.raises(ValueError, match="ObsSpec.rgb must hold RgbKey"):
        ObsSpec((ObsKey("x", 1),), (ObsKey("y", 1),))


def test_flatten_ignores_images_and_images_are_checked():
    spec = task_obs_spec("lift", "pixels", image_size=8)
    obs = {k.name: np.full(k.dim, i, dtype=np.float64) for i, k in enumerate(spec.keys)}
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    obs.update(agentview_image=frame, robot0_eye_in_hand_image=frame, object=np.zeros(10))
    flat = spec.flatten(obs)
    assert flat.shape == (16,) and flat.dtype == np.float32
    np.testing.assert_array_equal(flat, np.repeat(np.arange(4.0), [3, 4, 2, 7]))
    assert list(spec.images(obs)) == ["agentview_image", "robot0_eye_in_hand_image"]
    with pytest.raises(ValueError, match="'agentview_image' has dtype float32"):
        spec.images({**obs, "agentview_image": frame.astype(np.float32)})
    with pytest.raises(ValueError, match=r"'robot0_eye_in_hand_image' has shape \(8, 8, 4\)"):
        spec.images({**obs, "robot0_eye_in_hand_image": np.zeros((8, 8, 4), np.uint8)})
    with pytest.raises(KeyError, match="'agentview_image' missing"):
        spec.images({"robot0_eye_in_hand_image": frame})
    batch = spec.rgb[0].check(np.zeros((5, 8, 8, 3), np.uint8))  # leading dims allowed
    assert batch.shape == (5, 8, 8, 3)
