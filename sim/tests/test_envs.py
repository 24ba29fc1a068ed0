"""Environment factory and gymnasium wrapper: shapes against the shared spec, episode semantics,
action validation, seeding and state replay."""

import gc

import numpy as np
import pytest
from expo_core.spec import TASK_OBJECT_DIMS, task_obs_spec
from expo_core.tasks import SUPPORTED_TASKS, TASK_TO_ENV_NAME, requires_mimicgen, task_from_env_name
from expo_sim.envs.env_config import EnvConfig
from expo_sim.envs.robosuite_env import make_env
from expo_sim.mimicgen.available import SETUP_HINT, mimicgen_installed

# MimicGen's tasks where it is installed (make setup), else skipped with the reason.
TASKS = [
    pytest.param(t, marks=pytest.mark.skipif(not mimicgen_installed(), reason=f"MimicGen: {SETUP_HINT}"))
    if requires_mimicgen(t)
    else t
    for t in SUPPORTED_TASKS
]


def test_task_table_matches_shared_spec():
    assert set(TASK_TO_ENV_NAME) == set(TASK_OBJECT_DIMS)
    assert task_from_env_name("PickPlaceCan") == "can"
    with pytest.raises(ValueError, match="supported"):
        task_from_env_name("Door")


@pytest.mark.parametrize("task", TASKS)
def test_reset_and_step_follow_the_spec(env_cache, task):
    env = env_cache(task)
    spec = task_obs_spec(task)
    obs, info = env.reset(seed=1)
    assert obs.shape == (spec.dim,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (7,)
    assert np.all(np.isfinite(obs))
    assert info["success"] is False
    np.testing.assert_array_equal(obs, spec.flatten(info["obs_dict"]))
    np.testing.assert_array_equal(info["obs_dict"]["object"], info["obs_dict"]["object-state"])
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (spec.dim,) and np.all(np.isfinite(obs))
    assert reward == 0.0 and not terminated and not truncated
    assert info["t"] == 3
    assert env.get_state().ndim == 1


def test_seeded_reset_is_reproducible_and_leaves_global_rng_alone(lift_env):
    np.random.seed(123)  # noqa: NPY002 (the legacy global RNG is what must stay untouched)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a, _ = lift_env.reset(seed=7)
    b, _ = lift_env.reset(seed=7)
    c, _ = lift_env.reset(seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_action_validation(lift_env):
    lift_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected shape \(7,\)"):
        lift_env.step(np.zeros(6))
    with pytest.raises(ValueError, match=r"expected shape \(7,\)"):
        lift_env.step(np.zeros((1, 7)))
    with pytest.raises(ValueError, match="NaN"):
        lift_env.step(np.array([0, 0, np.nan, 0, 0, 0, 0]))
    *_, info = lift_env.step(np.array([3.0, -2.0, 0.5, 0, 0, 0, 1.5]))
    np.testing.assert_array_equal(info["action"], [1.0, -1.0, 0.5, 0, 0, 0, 1.0])


def test_unknown_task_and_bad_config_raise():
    with pytest.raises(ValueError, match="supported tasks: .*lift"):
        make_env("door")
    with pytest.raises(ValueError, match="horizon"):
        EnvConfig(task="lift", horizon=0)
    with pytest.raises(ValueError, match="camera"):
        EnvConfig(task="lift", cameras=("frontview",))


def test_horizon_truncates_and_ended_episode_refuses_steps():
    env = make_env("lift", horizon=3)
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(7))
        env.reset(seed=0)
        flags = [env.step(np.zeros(7))[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(7))
    finally:
        env.close()


def test_reset_to_replays_an_episode_from_its_first_state(lift_env):
    actions = [np.array([0.3, 0.1, -0.3, 0.1, 0, 0, g]) for g in (-1, -1, 1, 1, 1, -1)]
    lift_env.reset(seed=3)
    start = lift_env.get_state()
    recorded = [lift_env.step(a)[0] for a in actions]
    mid_state = lift_env.get_state()
    lift_env.reset(seed=4)
    lift_env.reset_to(start)
    np.testing.assert_array_equal(lift_env.get_state(), start)
    replayed = [lift_env.step(a)[0] for a in actions]
    np.testing.assert_allclose(replayed, recorded, atol=1e-5)
    lift_env.reset_to(mid_state)  # mid-episode states restore exactly too (not the gripper ramp)
    np.testing.assert_array_equal(lift_env.get_state(), mid_state)
    with pytest.raises(ValueError, match="expects"):
        lift_env.reset_to(start[:-1])


def test_reset_to_with_another_model_reloads_it(lift_env):
    """robomimic stores each demo's MJCF; Lift's cube size differs between models."""
    other = make_env("lift", model_seed=1)
    try:
        assert other.model_xml() != lift_env.model_xml()
        action = np.array([0.2, 0, -0.5, 0, 0, 0, 1])
        lift_env.reset(seed=0)
        start = lift_env.get_state()
        expected = [lift_env.step(action)[0] for _ in range(3)]
        other.reset_to(start, model_xml=lift_env.model_xml())
        np.testing.assert_allclose([other.step(action)[0] for _ in range(3)], expected, atol=1e-5)
        assert not other.load_model(lift_env.model_xml())  # already loaded: no second reload
    finally:
        other.close()


def test_camera_observations():
    env = make_env("lift", cameras=("agentview", "robot0_eye_in_hand"))
    other = make_env("lift", cameras=("agentview",))
    try:
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(np.zeros(7))
        assert env.observation_space.contains(obs)
        assert obs["low_dim"].shape == (task_obs_spec("lift").dim,)
        for key in ("agentview_image", "robot0_eye_in_hand_image"):
            assert obs[key].shape == (84, 84, 3) and obs[key].dtype == np.uint8
            assert obs[key].std() > 5.0  # a real picture, not a blank buffer
        # Closing another camera env must not corrupt this env's GL objects.
        other.reset(seed=0)
        other.step(np.zeros(7))
        other.close()
        env.step(np.zeros(7))  # this env's context is current when the other one is collected
        del other
        gc.collect()
        env.reset(seed=0)
        again, *_ = env.step(np.zeros(7))
        np.testing.assert_array_equal(again["robot0_eye_in_hand_image"], obs["robot0_eye_in_hand_image"])
    finally:
        env.close()
