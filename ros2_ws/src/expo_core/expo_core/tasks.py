"""The tasks the stack knows, by name: simulator environment names, cameras, control rate, horizons.

A task is named the way the rest of the stack names it (``lift``, ``can``, ``square``,
``stack``, ``threading``: the keys of :data:`expo_core.spec.TASK_OBJECT_DIMS`; a test keeps the
two tables in sync). robosuite and robomimic's HDF5 files name the environments ``Lift``,
``PickPlaceCan``, ``NutAssemblySquare``, ``Stack_D0`` and ``Threading_D0``. The simulator
(``expo_sim``), the learner and the policy all read task definitions from here; how to build a
task in robosuite lives in ``expo_sim.envs.env_config``.

Two providers define the environments (:attr:`TaskInfo.provider`):

- ``robosuite``: robosuite 1.4's own tasks (Lift, Can, Square, as robomimic uses them);
- ``mimicgen``: NVIDIA MimicGen's robosuite tasks, registered with robosuite when the
  ``mimicgen`` package is imported (installed by ``make setup``, see docs/mimicgen.md). The EXPO
  paper evaluates on MimicGen's ``Stack`` and ``Threading``; we use their D0 variants (the
  source-demo distribution: Stack_D0 places both cubes in a 16 x 16 cm square with any yaw,
  Threading_D0 the needle in a 15 x 10 cm patch, the tripod fixed).

``stack`` means MimicGen's ``Stack_D0``, always, whether MimicGen is installed or not (a task name
must mean one environment for datasets and checkpoints to mean one thing). Stack_D0 subclasses
robosuite's ``Stack``: the same cubes, observation (``object`` 23), success check (cube A above
the table by 4 cm, touching cube B, released) and placement ranges (+-8 cm, any yaw), through
MimicGen's own placement sampler, plus an ``agentview_full`` camera in the model. Before issue 17,
``stack`` named robosuite's plain ``Stack``,
for which the stack had no demonstrator and no dataset; files recorded with ``env_name ==
"Stack"`` are not read as ``stack`` (:func:`task_from_env_name` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

# robomimic runs every robosuite task at 20 Hz; EXPO evaluates Lift/Can/Square with horizon 400,
# MimicGen's evaluation horizon for Stack, Threading (and Coffee, StackThree, Square) is 400 too.
CONTROL_FREQ_HZ = 20
DEFAULT_HORIZON = 400

#: Where a task's environment class comes from.
PROVIDERS: tuple[str, ...] = ("robosuite", "mimicgen")


@dataclass(frozen=True)
class TaskInfo:
    """One task.

    Attributes:
        name: our task name (``stack``).
        env_name: the robosuite environment class name, robomimic's ``env_args["env_name"]``.
        provider: ``"robosuite"`` (robosuite's own task) or ``"mimicgen"`` (needs the ``mimicgen``
            package imported before ``robosuite.make``, which registers its environments).
        horizon: episode step limit at 20 Hz used for rollouts and evaluation.
    """

    name: str
    env_name: str
    provider: str = "robosuite"
    horizon: int = DEFAULT_HORIZON

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"TaskInfo.provider must be one of {list(PROVIDERS)}, got {self.provider!r}")
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"TaskInfo.horizon must be an int >= 1, got {self.horizon!r}")


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("lift", "Lift"),
        TaskInfo("can", "PickPlaceCan"),
        TaskInfo("square", "NutAssemblySquare"),
        TaskInfo("stack", "Stack_D0", provider="mimicgen"),
        TaskInfo("threading", "Threading_D0", provider="mimicgen"),
    )
}

# Our task name -> robosuite environment class name (robomimic's "env_name").
TASK_TO_ENV_NAME: dict[str, str] = {name: t.env_name for name, t in TASKS.items()}
ENV_NAME_TO_TASK: dict[str, str] = {v: k for k, v in TASK_TO_ENV_NAME.items()}
SUPPORTED_TASKS: tuple[str, ...] = tuple(sorted(TASK_TO_ENV_NAME))
#: Tasks whose environments MimicGen defines.
MIMICGEN_TASKS: tuple[str, ...] = tuple(sorted(n for n, t in TASKS.items() if t.provider == "mimicgen"))

# Cameras robomimic's image datasets use; observation key is f"{name}_image".
SUPPORTED_CAMERAS: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")

# robomimic/robosuite "type" for robosuite environments in env_args.
ROBOSUITE_ENV_TYPE = 1

# Environment names that once meant a task of ours and now do not (task_from_env_name explains).
_RETIRED_ENV_NAMES: dict[str, str] = {
    "Stack": "robosuite's plain Stack; the task 'stack' is MimicGen's Stack_D0 (expo_core.tasks)",
}


def check_task(task: str) -> str:
    """Return ``task`` if supported, else raise ValueError listing the supported tasks."""
    if task not in TASK_TO_ENV_NAME:
        raise ValueError(f"unknown task '{task}'; supported tasks: {list(SUPPORTED_TASKS)}")
    return task


def task_info(task: str) -> TaskInfo:
    """The :class:`TaskInfo` of a supported task (ValueError otherwise)."""
    return TASKS[check_task(task)]


def task_horizon(task: str) -> int:
    """Episode step limit of ``task`` (400 for every task so far)."""
    return task_info(task).horizon


def requires_mimicgen(task: str) -> bool:
    """Whether building ``task`` needs NVIDIA MimicGen installed (and imported before robosuite.make)."""
    return task_info(task).provider == "mimicgen"


def task_from_env_name(env_name: str) -> str:
    """Map a robosuite/robomimic environment name (e.g. ``PickPlaceCan``) to our task name."""
    if env_name not in ENV_NAME_TO_TASK:
        note = f" ({_RETIRED_ENV_NAMES[env_name]})" if env_name in _RETIRED_ENV_NAMES else ""
        raise ValueError(
            f"robosuite environment '{env_name}' is not a supported task{note}; "
            f"supported: {sorted(ENV_NAME_TO_TASK)} (tasks {list(SUPPORTED_TASKS)})"
        )
    return ENV_NAME_TO_TASK[env_name]
