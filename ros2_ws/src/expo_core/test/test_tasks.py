"""The task registry (expo_core.tasks): names, environment names, providers, horizons."""

import pytest
from expo_core.spec import TASK_OBJECT_DIMS, task_obs_spec
from expo_core.tasks import (
    ENV_NAME_TO_TASK,
    MIMICGEN_TASKS,
    SUPPORTED_TASKS,
    TASK_TO_ENV_NAME,
    TASKS,
    TaskInfo,
    check_task,
    requires_mimicgen,
    task_from_env_name,
    task_horizon,
    task_info,
)


def test_registry_tables_agree() -> None:
    assert set(TASKS) == set(TASK_TO_ENV_NAME) == set(SUPPORTED_TASKS) == set(TASK_OBJECT_DIMS)
    assert len(ENV_NAME_TO_TASK) == len(TASKS)  # environment names are unique
    for name, info in TASKS.items():
        assert info.name == name
        assert task_from_env_name(info.env_name) == name


def test_mimicgen_tasks_are_the_d0_variants_with_horizon_400() -> None:
    assert MIMICGEN_TASKS == ("stack", "threading")
    assert TASK_TO_ENV_NAME["stack"] == "Stack_D0"
    assert TASK_TO_ENV_NAME["threading"] == "Threading_D0"
    assert requires_mimicgen("threading") and not requires_mimicgen("lift")
    assert all(task_horizon(t) == 400 for t in SUPPORTED_TASKS)


@pytest.mark.parametrize(("task", "dim"), [("stack", 32), ("threading", 37)])
def test_mimicgen_state_specs(task: str, dim: int) -> None:
    # proprio 9 + MimicGen's object-state (Stack_D0 23, Threading_D0 28; vendor README's table)
    spec = task_obs_spec(task)
    assert spec.dim == dim
    assert spec.names == ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")


def test_unknown_and_retired_names_say_what_is_supported() -> None:
    with pytest.raises(ValueError, match="supported tasks"):
        check_task("stack_d0")
    with pytest.raises(ValueError, match="MimicGen's Stack_D0"):
        task_from_env_name("Stack")  # robosuite's plain Stack is not the task 'stack'
    with pytest.raises(ValueError, match="not a supported task"):
        task_from_env_name("Door")
    with pytest.raises(ValueError, match="unknown task"):
        task_info("nope")


def test_task_info_validates() -> None:
    with pytest.raises(ValueError, match="provider"):
        TaskInfo("x", "X", provider="isaac")
    with pytest.raises(ValueError, match="horizon"):
        TaskInfo("x", "X", horizon=0)
