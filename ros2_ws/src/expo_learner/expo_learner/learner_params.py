"""The learner node's parameters: declared in one table, converted once into a validated dataclass.

Values come from ``expo_bringup/config/learner.yaml`` (and ``-p`` overrides); the defaults below
match that file except ``autostart`` (False here, True in the YAML for the pip-mode runner) and
the paths (empty here: a configure without them fails and says so). Parameters are declared
with dynamic typing (``publish_every_s: 30`` in YAML is accepted); :meth:`LearnerConfig.from_values`
checks every type and range and raises ValueError naming the parameter, which the node turns into
a failed configure transition.

The network is not a parameter: it is the ExpoConfig stored in the checkpoint the learner starts
from (a pretrained base or its own latest checkpoint), so learner and actors can never disagree
on shapes. Only ``utd`` and ``batch_size`` are learner-side overrides of that config.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expo_core.spec import TASK_OBJECT_DIMS
from expo_ros.params import ParamSpec

from .interventions import InterventionUse

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("checkpoint", "", "pretrained base (save_checkpoint .safetensors or its path without suffix)"),
    ParamSpec("checkpoint_dir", "", "the learner's own checkpoints; the latest one here is resumed"),
    ParamSpec("keep_checkpoints", 3, "checkpoints kept in checkpoint_dir (older ones are deleted)"),
    ParamSpec("checkpoint_every_updates", 1000, "agent updates between checkpoints"),
    ParamSpec("bag_dir", "", "rosbag2 mcap segments of every received transition (reloaded at configure)"),
    ParamSpec("segment_max_bytes", 64 * 2**20, "rotate a segment at this many bytes of messages"),
    ParamSpec("segment_max_age_s", 600.0, "rotate a segment after this long [s]; 0 = no age limit"),
    ParamSpec("segment_flush_every_s", 1.0, "flush the open segment at least this often [s]"),
    ParamSpec("task", "lift", f"robomimic task, one of {sorted(TASK_OBJECT_DIMS)}: observation layout"),
    ParamSpec("offline_dataset", "", "robomimic HDF5 for the offline half of each batch ('' = none)"),
    ParamSpec("offline_bag_dirs", [], "segment roots or segment dirs loaded as offline data"),
    ParamSpec("online_capacity", 1_000_000, "online replay buffer capacity [transitions]"),
    ParamSpec(
        "intervention_replay", True, "intervention transitions also go into the online buffer (critic)"
    ),
    ParamSpec(
        "intervention_bc_steps", 1, "extra base imitation steps on intervention rows per update (0 = off)"
    ),
    ParamSpec("intervention_bc_batch_size", 0, "rows per intervention imitation step; 0 = batch_size"),
    ParamSpec("intervention_bc_min_rows", 64, "intervention rows needed before the first imitation step"),
    ParamSpec("intervention_capacity", 100_000, "intervention buffer capacity [transitions]"),
    ParamSpec("intervention_stats_episodes", 10, "completed episodes the intervention rates cover"),
    ParamSpec("warmup_transitions", 1000, "online transitions in the buffer before the first update"),
    ParamSpec("utd", 0, "critic steps per received transition (ExpoConfig.utd); 0 = the checkpoint's"),
    ParamSpec("batch_size", 0, "minibatch size (ExpoConfig.batch_size); 0 = the checkpoint's"),
    ParamSpec("max_update_backlog", 100, "owed agent updates carried at most; more are dropped"),
    ParamSpec("publish_every_updates", 100, "publish policy_weights every this many agent updates"),
    ParamSpec("publish_every_s", 30.0, "... or when this long has passed since the last publication [s]"),
    ParamSpec("stats_period_s", 5.0, "learner_stats / log / TensorBoard period, wall clock [s]"),
    ParamSpec("tensorboard_dir", "", "TensorBoard event files of the stats ('' = off)"),
    ParamSpec("device", "cpu", "torch device of the learner: cpu, cuda or cuda:N"),
    ParamSpec("seed", 0, "seed of the minibatch sampler's torch.Generator"),
    ParamSpec("torch_threads", 1, "torch intra-op threads of the training thread (0 = torch default)"),
    ParamSpec(
        "training_nice",
        10,
        "niceness added to the training thread (0-19; 0 = the process's): on a machine it shares "
        "with the control graph, its updates yield the CPU to the policy node and the bridge",
    ),
    ParamSpec("autostart", False, "configure and activate at startup (no lifecycle manager)"),
)


def _bad(name: str, value: Any, want: str) -> ValueError:
    return ValueError(f"parameter '{name}' must be {want}, got {value!r}")


def _nice(v: Any) -> int:
    n = _int("training_nice", v, 0)
    if n > 19:
        raise _bad("training_nice", v, "an integer in [0, 19]")
    return n


def _int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(name, v, f"an integer >= {lo}")
    return int(v)


def _float(name: str, v: Any, lo: float, lo_open: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _bad(name, v, "a finite number")
    if (lo_open and not v > lo) or (not lo_open and not v >= lo):
        raise _bad(name, v, f"{'>' if lo_open else '>='} {lo}")
    return float(v)


def _str(name: str, v: Any, required: str = "") -> str:
    if not isinstance(v, str):
        raise _bad(name, v, "a string")
    if required and not v.strip():
        raise ValueError(f"parameter '{name}' is empty: {required}")
    return v.strip()


def _strs(name: str, v: Any) -> tuple[str, ...]:
    if v is None:  # an empty YAML list ``[]`` arrives as an unset parameter (no element type)
        return ()
    if isinstance(v, str) or not isinstance(v, Sequence):
        raise _bad(name, v, "a list of strings")
    if not all(isinstance(x, str) and x.strip() for x in v):
        raise _bad(name, list(v), "a list of non-empty strings")
    return tuple(x.strip() for x in v)


@dataclass(frozen=True)
class LearnerConfig:
    """Every parameter of the learner node, typed and validated (see :data:`PARAMETERS`).

    ``utd``/``batch_size`` None keep the checkpoint's ExpoConfig values; ``segment_max_age_s``
    None = no age limit.
    """

    checkpoint: str
    checkpoint_dir: str
    keep_checkpoints: int
    checkpoint_every_updates: int
    bag_dir: str
    segment_max_bytes: int
    segment_max_age_s: float | None
    segment_flush_every_s: float
    task: str
    offline_dataset: str
    offline_bag_dirs: tuple[str, ...]
    online_capacity: int
    interventions: InterventionUse
    warmup_transitions: int
    utd: int | None
    batch_size: int | None
    max_update_backlog: int
    publish_every_updates: int
    publish_every_s: float
    stats_period_s: float
    tensorboard_dir: str
    device: str
    seed: int
    torch_threads: int
    training_nice: int
    autostart: bool

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> LearnerConfig:
        """Convert raw parameter values (name -> value); ValueError names the bad parameter."""
        task = _str("task", v["task"])
        if task not in TASK_OBJECT_DIMS:
            raise _bad("task", task, f"one of {sorted(TASK_OBJECT_DIMS)}")
        device = _str("device", v["device"])
        if not re.match(r"^(cpu|cuda(:\d+)?)$", device):
            raise _bad("device", device, "cpu, cuda or cuda:N")
        if not isinstance(v["autostart"], bool):
            raise _bad("autostart", v["autostart"], "true or false")
        if not isinstance(v["intervention_replay"], bool):
            raise _bad("intervention_replay", v["intervention_replay"], "true or false")
        interventions = InterventionUse(
            replay=v["intervention_replay"],
            bc_steps=_int("intervention_bc_steps", v["intervention_bc_steps"], 0),
            bc_batch_size=_int("intervention_bc_batch_size", v["intervention_bc_batch_size"], 0),
            bc_min_rows=_int("intervention_bc_min_rows", v["intervention_bc_min_rows"], 1),
            capacity=_int("intervention_capacity", v["intervention_capacity"], 1),
            stats_episodes=_int("intervention_stats_episodes", v["intervention_stats_episodes"], 1),
        )
        age = _float("segment_max_age_s", v["segment_max_age_s"], 0.0, lo_open=False)
        utd, batch = _int("utd", v["utd"], 0), _int("batch_size", v["batch_size"], 0)
        return cls(
            checkpoint=_str("checkpoint", v["checkpoint"]),
            checkpoint_dir=_str(
                "checkpoint_dir", v["checkpoint_dir"], "set it to the directory of the learner's checkpoints"
            ),
            keep_checkpoints=_int("keep_checkpoints", v["keep_checkpoints"], 1),
            checkpoint_every_updates=_int("checkpoint_every_updates", v["checkpoint_every_updates"], 1),
            bag_dir=_str("bag_dir", v["bag_dir"], "set it to the directory of the transition segments"),
            segment_max_bytes=_int("segment_max_bytes", v["segment_max_bytes"], 1024),
            segment_max_age_s=age or None,
            segment_flush_every_s=_float("segment_flush_every_s", v["segment_flush_every_s"], 0.0),
            task=task,
            offline_dataset=_str("offline_dataset", v["offline_dataset"]),
            offline_bag_dirs=_strs("offline_bag_dirs", v["offline_bag_dirs"]),
            online_capacity=_int("online_capacity", v["online_capacity"], 1),
            interventions=interventions,
            warmup_transitions=_int("warmup_transitions", v["warmup_transitions"], 0),
            utd=utd or None,
            batch_size=batch or None,
            max_update_backlog=_int("max_update_backlog", v["max_update_backlog"], 1),
            publish_every_updates=_int("publish_every_updates", v["publish_every_updates"], 1),
            publish_every_s=_float("publish_every_s", v["publish_every_s"], 0.0),
            stats_period_s=_float("stats_period_s", v["stats_period_s"], 0.0),
            tensorboard_dir=_str("tensorboard_dir", v["tensorboard_dir"]),
            device=device,
            seed=_int("seed", v["seed"], 0),
            torch_threads=_int("torch_threads", v["torch_threads"], 0),
            training_nice=_nice(v["training_nice"]),
            autostart=v["autostart"],
        )
