"""The tasks the stack knows, by name: robosuite environment names, cameras, control rate, horizon.

A task is named the way the rest of the stack names it (``lift``, ``can``, ``square``,
``stack``: the keys of :data:`expo_core.spec.TASK_OBJECT_DIMS`; a test keeps the two tables in
sync). robosuite and robomimic's HDF5 files name the same environments ``Lift``,
``PickPlaceCan``, ``NutAssemblySquare`` and ``Stack``. The simulator (``expo_sim``), the learner
and the policy all read task definitions from here; how to build a task in robosuite lives in
``expo_sim.envs.env_config``.
"""

from __future__ import annotations

# Our task name -> robosuite environment class name (robomimic's "env_name").
TASK_TO_ENV_NAME: dict[str, str] = {
    "lift": "Lift",
    "can": "PickPlaceCan",
    "square": "NutAssemblySquare",
    "stack": "Stack",
}
ENV_NAME_TO_TASK: dict[str, str] = {v: k for k, v in TASK_TO_ENV_NAME.items()}
SUPPORTED_TASKS: tuple[str, ...] = tuple(sorted(TASK_TO_ENV_NAME))

# Cameras robomimic's image datasets use; observation key is f"{name}_image".
SUPPORTED_CAMERAS: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")

# robomimic runs every robosuite task at 20 Hz; EXPO evaluates Lift/Can/Square with horizon 400.
CONTROL_FREQ_HZ = 20
DEFAULT_HORIZON = 400

# robomimic/robosuite "type" for robosuite environments in env_args.
ROBOSUITE_ENV_TYPE = 1


def check_task(task: str) -> str:
    """Return ``task`` if supported, else raise ValueError listing the supported tasks."""
    if task not in TASK_TO_ENV_NAME:
        raise ValueError(f"unknown task '{task}'; supported tasks: {list(SUPPORTED_TASKS)}")
    return task


def task_from_env_name(env_name: str) -> str:
    """Map a robosuite/robomimic environment name (e.g. ``PickPlaceCan``) to our task name."""
    if env_name not in ENV_NAME_TO_TASK:
        raise ValueError(
            f"robosuite environment '{env_name}' is not a supported task; "
            f"supported: {sorted(ENV_NAME_TO_TASK)} (tasks {list(SUPPORTED_TASKS)})"
        )
    return ENV_NAME_TO_TASK[env_name]
