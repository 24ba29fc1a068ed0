"""What the pixel policy sees in sim: base-frame proprioception (as on the arm), upright uint8 camera
frames, the pixel spec (no object key), and observations rebuilt from stored states."""

import numpy as np
import pytest
import robosuite.utils.transform_utils as T
from expo_core.spec import task_obs_spec
from expo_core.tasks import SUPPORTED_CAMERAS
from expo_sim.envs.env_config import EnvConfig
from expo_sim.envs.frames import quat_multiply, world_to_base
from expo_sim.envs.robosuite_env import make_env
from robosuite.utils import camera_utils

SIZE = 48  # smaller than the 84 default: the size is configurable, and rendering is ~4x cheaper


@pytest.fixture(scope="module")
def pixel_env():
    env = make_env("lift", obs="pixels", camera_size=SIZE)
    yield env
    env.close()


def _same_rotation(q1, q2, atol=1e-6):
    """Quaternions q and -q are one rotation."""
    return np.allclose(q1, q2, atol=atol) or np.allclose(q1, -np.asarray(q2), atol=atol)


def test_world_to_base_matches_robosuite_transforms():
    rng = np.random.default_rng(0)
    for _ in range(20):
        base_pos, pos = rng.normal(size=3), rng.normal(size=3)
        base_quat, quat = (q / np.linalg.norm(q) for q in rng.normal(size=(2, 4)))
        p, q = world_to_base(pos, quat, base_pos, base_quat)
        world_in_base = T.pose_inv(T.make_pose(base_pos, T.quat2mat(base_quat)))
        expected = T.pose_in_A_to_pose_in_B(T.make_pose(pos, T.quat2mat(quat)), world_in_base)
        np.testing.assert_allclose(p, expected[:3, 3], atol=1e-6)  # robosuite: float32 inside
        assert _same_rotation(q, T.mat2quat(expected[:3, :3]))
        np.testing.assert_allclose(quat_multiply(base_quat, q), quat, atol=1e-12)  # q_b * q_rel = q_w


def test_base_frame_proprio_is_the_world_pose_in_the_base_frame(lift_env):
    lift_env.reset(seed=2)
    robot = lift_env.robosuite_env.robots[0]
    rng = np.random.default_rng(1)
    for _ in range(4):
        *_, info = lift_env.step(rng.uniform(-1, 1, 7))
        obs = info["obs_dict"]
        np.testing.assert_allclose(obs["robot0_base_pos"], robot.base_pos)
        assert _same_rotation(obs["robot0_base_quat"], robot.base_ori)
        base = T.make_pose(robot.base_pos, T.quat2mat(robot.base_ori))
        eef = T.make_pose(obs["robot0_eef_pos"], T.quat2mat(obs["robot0_eef_quat"]))
        in_base = T.pose_in_A_to_pose_in_B(eef, T.pose_inv(base))
        np.testing.assert_allclose(obs["robot0_base_to_eef_pos"], in_base[:3, 3], atol=1e-6)
        assert _same_rotation(obs["robot0_base_to_eef_quat"], T.mat2quat(in_base[:3, :3]))
        state = lift_env.get_state()
        np.testing.assert_array_equal(obs["robot0_joint_pos"], state[1:8])  # qpos starts with the arm
    # robosuite's own base-frame values of the same body / point, from a consistent state.
    obs = lift_env.observe_state(lift_env.get_state())
    sim = lift_env.robosuite_env.sim
    site_body = sim.model.body_id2name(sim.model.site_bodyid[robot.eef_site_id])  # the grip site's body
    np.testing.assert_allclose(
        obs["robot0_base_to_eef_pos"], robot.pose_in_base_from_name(site_body)[:3, 3], atol=1e-9
    )
    assert _same_rotation(obs["robot0_base_to_eef_quat"], robot._hand_quat, atol=1e-8)


def test_env_config_obs_mode():
    assert EnvConfig(task="lift", obs="pixels").cameras == SUPPORTED_CAMERAS
    assert EnvConfig(task="lift", obs="pixels", cameras=("agentview",)).cameras == ("agentview",)
    with pytest.raises(ValueError, match="EnvConfig.obs"):
        EnvConfig(task="lift", obs="depth")


def test_pixel_observation_follows_the_pixel_spec(pixel_env):
    spec = task_obs_spec("lift", "pixels", image_size=SIZE)
    assert pixel_env.obs_spec == spec and "object" not in spec.names
    obs, info = pixel_env.reset(seed=0)
    assert set(obs) == {"low_dim", "agentview_image", "robot0_eye_in_hand_image"}
    assert obs["low_dim"].shape == (16,) and obs["low_dim"].dtype == np.float32
    np.testing.assert_array_equal(obs["low_dim"], spec.flatten(info["obs_dict"]))
    assert pixel_env.observation_space.contains(obs)
    for key in spec.rgb_names:
        frame = obs[key]
        assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
        assert frame.std() > 10.0  # a picture, not a blank buffer
    obs, *_ = pixel_env.step(np.zeros(7))
    assert spec.images(obs).keys() == {"agentview_image", "robot0_eye_in_hand_image"}


def test_frames_are_upright(pixel_env):
    """robosuite renders bottom-up (OpenGL); frames must be upright as in robomimic's datasets."""
    obs, info = pixel_env.reset(seed=0)
    agent = obs["agentview_image"].astype(int)
    # The red cube sits where the camera model projects it (rows from the top, columns from the left).
    red = (agent[..., 0] - np.maximum(agent[..., 1], agent[..., 2])) > 60
    assert red.sum() >= 5
    sim = pixel_env.robosuite_env.sim
    to_pixels = camera_utils.get_camera_transform_matrix(sim, "agentview", SIZE, SIZE)
    row, col = camera_utils.project_points_from_world_to_camera(
        info["obs_dict"]["cube_pos"][None], to_pixels, SIZE, SIZE
    )[0]
    np.testing.assert_allclose(np.argwhere(red).mean(0), [row, col], atol=2.0)
    # agentview: the robot at the top of the frame, the bright table at the bottom.
    band = SIZE // 6
    assert agent[-band:].mean() > agent[:band].mean() + 30
    # eye in hand: the (dark) fingers at the bottom, the (bright) table above them.
    hand = obs["robot0_eye_in_hand_image"].astype(int)
    assert hand[:band].mean() > 200 and hand[-band:].mean() < 60


def test_observe_state_rebuilds_the_observation(pixel_env):
    pixel_env.reset(seed=1)
    rng = np.random.default_rng(2)
    recorded = []
    for _ in range(3):
        obs, *_, info = pixel_env.step(rng.uniform(-1, 1, 7))
        recorded.append((pixel_env.get_state(), info["obs_dict"]))
    for state, live in recorded:
        again = pixel_env.observe_state(state)
        np.testing.assert_array_equal(pixel_env.get_state(), state)
        np.testing.assert_array_equal(again["robot0_joint_pos"], live["robot0_joint_pos"])
        # Live frames show the arm one 2 ms physics sub-step before the saved state.
        np.testing.assert_allclose(again["robot0_base_to_eef_pos"], live["robot0_base_to_eef_pos"], atol=5e-3)
        for key in ("agentview_image", "robot0_eye_in_hand_image"):
            assert again[key].dtype == np.uint8 and again[key].shape == (SIZE, SIZE, 3)
            assert np.abs(again[key].astype(int) - live[key].astype(int)).mean() < 4.0
    with pytest.raises(RuntimeError, match="reset"):
        pixel_env.step(np.zeros(7))  # observe_state leaves no episode to continue
    with pytest.raises(ValueError, match="expects"):
        pixel_env.observe_state(recorded[0][0][:-1])


def test_deferred_frames_are_the_step_frames_bit_for_bit(pixel_env):
    """defer_frames (the sim bridge's lockstep pixel mode): step and reset render nothing, and
    render_frame afterwards gives exactly the frame the step would have returned, across an
    episode's end and reset; the low-dim observation and the physics are unchanged."""
    deferred = make_env("lift", obs="pixels", camera_size=SIZE)
    try:
        deferred.defer_frames()
        assert deferred.frames_deferred and not pixel_env.frames_deferred
        rng = np.random.default_rng(5)
        for seed in (3, 4):  # two episodes: the reset's frame too
            live, _ = pixel_env.reset(seed=seed)
            obs, info = deferred.reset(seed=seed)
            pairs = [(live, obs, info)]
            for cam in ("agentview", "robot0_eye_in_hand"):
                np.testing.assert_array_equal(deferred.render_frame(cam), live[f"{cam}_image"])
            for _ in range(6):
                a = rng.uniform(-1, 1, 7)
                live, *_ = pixel_env.step(a)
                obs, *_, info = deferred.step(a)
                pairs.append((live, obs, info))
                np.testing.assert_array_equal(deferred.get_state(), pixel_env.get_state())
                for cam in ("agentview", "robot0_eye_in_hand"):
                    frame = deferred.render_frame(cam)
                    assert frame.flags.c_contiguous and frame.dtype == np.uint8
                    np.testing.assert_array_equal(frame, live[f"{cam}_image"])
            for live, obs, info in pairs:
                assert set(obs) == {"low_dim"} and not any(k.endswith("_image") for k in info["obs_dict"])
                np.testing.assert_array_equal(obs["low_dim"], live["low_dim"])
        with pytest.raises(ValueError, match="not rendered"):
            deferred.render_frame("frontview")
    finally:
        deferred.close()
    with pytest.raises(ValueError, match="no camera"):
        make_env("lift").defer_frames()


def test_parallel_deferred_frames_are_the_step_frames(pixel_env):
    """defer_frames(parallel=True): the last camera renders in a second GL context on a worker
    thread (expo_sim.envs.helper_render) while the caller renders the first; the frames are the
    step's, bit for bit, and come in the cameras' order."""
    cams = ("agentview", "robot0_eye_in_hand")
    par = make_env("lift", obs="pixels", camera_size=SIZE)
    try:
        par.defer_frames(parallel=True)
        rng = np.random.default_rng(6)
        live, _ = pixel_env.reset(seed=7)
        par.reset(seed=7)
        for step in range(5):
            got = list(par.render_frames(cams))
            assert [c for c, _ in got] == list(cams)
            for cam, frame in got:
                np.testing.assert_array_equal(frame, live[f"{cam}_image"], err_msg=f"{cam} at step {step}")
            a = rng.uniform(-1, 1, 7)
            live, *_ = pixel_env.step(a)
            par.step(a)
        # the worker's frame equals the primary context's for the same camera
        np.testing.assert_array_equal(dict(par.render_frames(cams[::-1]))[cams[0]], par.render_frame(cams[0]))
    finally:
        par.close()
    par.close()  # idempotent
