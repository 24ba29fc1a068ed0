"""What one ``expo-sim session`` runs: :class:`SessionConfig` (validated on construction) and
the data folder its demonstrations and pretrained bases are cached in (:func:`default_data_dir`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Overrides the data folder (demonstrations and pretrained bases).
DATA_DIR_ENV = "EXPO_DATA_DIR"


def default_data_dir() -> Path:
    """``$EXPO_DATA_DIR``; else ``data/`` of the checkout this package runs from (an editable
    install: ``<checkout>/sim/expo_sim``, the folder ``make sim`` uses); else ``./data``."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "sim" / "expo_sim").is_dir() and (checkout / "Makefile").is_file():
        return checkout / "data"
    return Path("data")


@dataclass(frozen=True)
class SessionConfig:
    """One ``expo-sim session``. ``checkpoint`` None: demos + cached pretraining as in the
    module doc (``dataset`` None: ``data_dir/<task>_<quality>.hdf5`` of ``demos`` scripted demos,
    or for a MimicGen task ``data_dir/<task>_mimicgen.hdf5`` of ``demos`` MimicGen trials,
    generated if missing; ``demos`` None: 50 scripted demos, 100 MimicGen trials)."""

    task: str = "lift"
    episodes: int = 10
    checkpoint: Path | None = None
    dataset: Path | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    demos: int | None = None
    quality: str = "mixed"
    preset: str = "cpu"
    algo: str = "expo"  # the EXPO variant the pretrained base starts (expo_sim.train.presets)
    pretrain_steps: int | None = None  # None: the preset's default
    seed: int = 0
    horizon: int = 400
    realtime: bool = False
    backend: str = "auto"
    domain_id: int | None = None
    out: Path = Path("runs/sim")
    timeout_s: float = 0.0  # wall-clock limit of the episodes; 0 = none
    learn: bool = False  # add the learner node: online EXPO fine-tuning during the episodes
    learner_dir: Path | None = None  # None: <run dir>/learner; an existing one resumes
    intervene: bool = False  # the scripted intervener takes over when the policy strays
    obs: str = "state"  # "pixels": cameras + base-frame proprioception (a pixel checkpoint)
    plan_mode: str = "off"  # realtime: the bridge's plan_mode (action chunks, expo_ros.action_plan)
    progress_every_s: float = 0.5
    sched_fifo: int = 0  # 1-99: the launched graph at SCHED_FIFO, but the learner (launch_process)
    rt_priority: int = 0  # 1-99: the policy node's control thread at SCHED_FIFO (its rt_priority)
    graph_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from expo_core.presets import check_preset
        from expo_core.tasks import check_task, requires_mimicgen

        from expo_sim.envs.scripted import QUALITIES, SCRIPTED_TASKS

        check_task(self.task)
        if self.checkpoint is None and self.task not in SCRIPTED_TASKS and not requires_mimicgen(self.task):
            raise ValueError(
                f"task '{self.task}' has no demonstrator (scripted: {list(SCRIPTED_TASKS)}; MimicGen: "
                "stack, threading); pass --checkpoint"
            )
        if self.intervene and self.task not in SCRIPTED_TASKS:
            raise ValueError(
                f"--intervene needs a task with a scripted expert ({list(SCRIPTED_TASKS)}), got '{self.task}'"
            )
        if self.obs not in OBS_KINDS:
            raise ValueError(f"SessionConfig.obs must be one of {list(OBS_KINDS)}, got '{self.obs}'")
        if self.obs == "pixels" and self.checkpoint is None and self.task not in SCRIPTED_TASKS:
            raise ValueError(
                f"--obs pixels makes image demos with a scripted expert ({list(SCRIPTED_TASKS)}); "
                f"task '{self.task}' needs --checkpoint (a pixel checkpoint)"
            )
        from expo_ros.action_plan import PLAN_MODES

        if self.plan_mode not in PLAN_MODES:
            raise ValueError(
                f"SessionConfig.plan_mode must be one of {list(PLAN_MODES)}, got '{self.plan_mode}'"
            )
        if self.plan_mode != "off" and not self.realtime:
            raise ValueError(
                "--plan-mode applies in real time only (lockstep runs every decision): add --realtime"
            )
        if self.quality not in QUALITIES:
            raise ValueError(f"quality '{self.quality}' unknown; allowed: {list(QUALITIES)}")
        check_preset(self.preset)
        self._check_algo()
        for name in ("episodes", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"SessionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.demos is not None and self.demos < 1:
            raise ValueError(f"SessionConfig.demos must be >= 1, got {self.demos}")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise ValueError(f"SessionConfig.domain_id must be in 0..232, got {self.domain_id}")
        if self.timeout_s < 0:
            raise ValueError(f"SessionConfig.timeout_s must be >= 0, got {self.timeout_s}")
        from expo_ros.realtime import check_priority

        for name in ("sched_fifo", "rt_priority"):
            try:
                check_priority(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"SessionConfig.{name}: {e}") from e

    def _check_algo(self) -> None:
        from expo_sim.train.presets import check_algo

        check_algo(self.algo)
        if self.algo in NOT_SESSION_ALGOS:
            raise ValueError(
                f"--algo {self.algo} is not an EXPO variant the policy and learner nodes run; "
                "pick expo or one of its variants (docs/learning.md)"
            )
        if self.algo != "expo" and self.checkpoint is not None:
            raise ValueError(
                f"--algo {self.algo} sets the config of the pretrained base; a --checkpoint carries its own"
            )
        if self.algo != "expo" and self.obs == "pixels":
            raise ValueError(f"--algo {self.algo} applies to state policies; --obs pixels runs expo")


#: Algorithms of the study that are not EXPO policies (``rlpd``: a Gaussian SAC agent; ``bc``: no RL).
NOT_SESSION_ALGOS = ("rlpd", "bc")

#: ``SessionConfig.obs`` values.
OBS_KINDS = ("state", "pixels")
#: Image demos generated for ``--obs pixels`` when ``--demos`` is not given.
PIXEL_DEMOS = 40
