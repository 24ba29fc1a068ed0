"""One observation/action spec shared by datasets, the simulator, the real robot and the policy.

The low-dimensional observation is the concatenation, in a fixed order, of named keys as
robomimic stores them under ``data/demo_i/obs/<key>``. Every producer of observations (the
robomimic HDF5 reader, the sim env wrapper, the ROS observation builder) flattens through
:meth:`ObsSpec.flatten`, so the order can never drift between training and deployment.

Actions are the robomimic/robosuite OSC_POSE convention: 7-D in [-1, 1], the first six a
delta end-effector pose (scaled by the controller to +-0.05 m and +-0.5 rad per 20 Hz step),
the last the gripper (-1 open, +1 close).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObsKey:
    """One named observation component of fixed size ``dim``."""

    name: str
    dim: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ObsKey.name must be a non-empty string")
        if self.dim < 1:
            raise ValueError(f"ObsKey.dim for '{self.name}' must be >= 1, got {self.dim}")


@dataclass(frozen=True)
class ObsSpec:
    """Ordered observation keys; the flat vector is their concatenation in this order."""

    keys: tuple[ObsKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("ObsSpec.keys must name at least one observation key")
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError(f"ObsSpec.keys has duplicate names: {names}")

    @property
    def dim(self) -> int:
        return sum(k.dim for k in self.keys)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def slices(self) -> dict[str, slice]:
        """Where each key lives inside the flat vector."""
        out, start = {}, 0
        for k in self.keys:
            out[k.name] = slice(start, start + k.dim)
            start += k.dim
        return out

    def flatten(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Concatenate ``obs[key]`` in spec order. Works on one step ``(d,)`` or a
        sequence ``(T, d)``. Missing keys or wrong sizes raise with the offending key."""
        parts = []
        for k in self.keys:
            if k.name not in obs:
                raise KeyError(
                    f"observation key '{k.name}' missing; have {sorted(obs)}; spec wants {self.names}"
                )
            v = np.asarray(obs[k.name], dtype=np.float32)
            if v.shape[-1:] != (k.dim,):
                raise ValueError(f"observation key '{k.name}' has shape {v.shape}, expected last dim {k.dim}")
            parts.append(v)
        return np.concatenate(parts, axis=-1)

    def unflatten(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        flat = np.asarray(flat)
        if flat.shape[-1] != self.dim:
            raise ValueError(f"flat observation has last dim {flat.shape[-1]}, spec dim is {self.dim}")
        return {name: flat[..., s] for name, s in self.slices().items()}

    def to_json(self) -> list[list]:
        return [[k.name, k.dim] for k in self.keys]

    @classmethod
    def from_json(cls, data: list) -> ObsSpec:
        return cls(tuple(ObsKey(str(n), int(d)) for n, d in data))


@dataclass(frozen=True)
class ActionSpec:
    """Normalized action box. ``dim`` components, each in [low, high]."""

    dim: int = 7
    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"ActionSpec.dim must be >= 1, got {self.dim}")
        if not self.low < self.high:
            raise ValueError(f"ActionSpec.low ({self.low}) must be < high ({self.high})")

    def check(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float32)
        if a.shape[-1:] != (self.dim,):
            raise ValueError(f"action has shape {a.shape}, expected last dim {self.dim}")
        return a


# Franka/Panda proprioception as robomimic's low-dim configs use it.
_PROPRIO = (ObsKey("robot0_eef_pos", 3), ObsKey("robot0_eef_quat", 4), ObsKey("robot0_gripper_qpos", 2))

# robomimic stores robosuite's "object-state" under the key "object".
TASK_OBJECT_DIMS: dict[str, int] = {"lift": 10, "can": 14, "square": 14, "stack": 23}


def task_obs_spec(task: str) -> ObsSpec:
    """The robomimic low-dim observation spec of a supported task."""
    if task not in TASK_OBJECT_DIMS:
        raise ValueError(f"unknown task '{task}'; supported: {sorted(TASK_OBJECT_DIMS)}")
    return ObsSpec(_PROPRIO + (ObsKey("object", TASK_OBJECT_DIMS[task]),))


FRANKA_ACTION_SPEC = ActionSpec(dim=7)
