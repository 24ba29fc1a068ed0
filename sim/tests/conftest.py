"""Shared fixtures for the simulation tests.

Headless rendering must be chosen before robosuite (and through it mujoco) is imported.
Environments take ~1-2 s to build, so each task's env is built once per session and reused;
every test starts its own episode with reset()/reset_to().
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def env_cache():
    """``get(task)`` returns this session's default env of ``task`` (built on first use)."""
    from expo_sim.envs import make_env

    envs = {}

    def get(task: str):
        if task not in envs:
            envs[task] = make_env(task)
        return envs[task]

    yield get
    for env in envs.values():
        env.close()


@pytest.fixture(scope="session")
def lift_env(env_cache):
    return env_cache("lift")


@pytest.fixture(scope="session")
def can_env(env_cache):
    return env_cache("can")
