"""One observation/action spec shared by datasets, the simulator, the real robot and the policy.

An observation has two modalities, named as robomimic names them:

- ``low_dim``: the concatenation, in a fixed order, of named vectors as robomimic stores them
  under ``data/demo_i/obs/<key>`` (:attr:`ObsSpec.keys`). Every producer of observations (the
  robomimic HDF5 reader, the sim env wrapper, the ROS observation builder) flattens through
  :meth:`ObsSpec.flatten`, so the order can never drift between training and deployment.
- ``rgb``: camera frames ``<camera>_image``, each ``(H, W, 3)`` uint8, upright (row 0 = top), as
  robomimic's image datasets store them (:attr:`ObsSpec.rgb`). They are never flattened into
  the low-dim vector: an image encoder, chosen by the spec, turns them into features.

Two specs per task (:func:`task_obs_spec`):

- ``"state"`` (the default, what every low-dim dataset and checkpoint so far uses): robomimic's
  world-frame proprioception plus the ground-truth ``object`` vector; no cameras.
- ``"pixels"``: what a real Franka provides, and nothing else: end-effector pose in the robot
  base frame (``robot0_base_to_eef_pos`` (3, m), ``robot0_base_to_eef_quat`` (4, x y z w)),
  ``robot0_gripper_qpos`` (2, m), ``robot0_joint_pos`` (7, rad), plus the cameras
  ``agentview_image`` and ``robot0_eye_in_hand_image`` (84 x 84 by default). No ``object`` key.
  The base-frame key names are robosuite 1.5's; the sim computes them from robosuite 1.4's
  world-frame values (``expo_sim.envs.frames``).

JSON: a spec without cameras serializes as it always did, a list ``[[name, dim], ...]``
(bags and checkpoints written before cameras existed keep loading, and a state spec writes
byte-identical JSON); a spec with cameras as ``{"low_dim": [[name, dim], ...], "rgb": [[name,
height, width], ...]}``. :meth:`ObsSpec.from_json` reads both.

Actions are the robomimic/robosuite OSC_POSE convention: 7-D in [-1, 1], the first six a
delta end-effector pose (scaled by the controller to +-0.05 m and +-0.5 rad per 20 Hz step),
the last the gripper (-1 open, +1 close).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from expo_core.tasks import SUPPORTED_CAMERAS

#: Modality names, as robomimic's observation configs name them.
LOW_DIM = "low_dim"
RGB = "rgb"
IMAGE_SUFFIX = "_image"

#: Observation kinds :func:`task_obs_spec` builds.
OBS_MODES: tuple[str, ...] = ("state", "pixels")
DEFAULT_IMAGE_SIZE = 84


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


@dataclass(frozen=True)
class ObsKey:
    """One named low-dim observation component of fixed size ``dim``."""

    name: str
    dim: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ObsKey.name must be a non-empty string, got {self.name!r}")
        if not _is_int(self.dim) or self.dim < 1:
            raise ValueError(f"ObsKey.dim for '{self.name}' must be an int >= 1, got {self.dim!r}")
        object.__setattr__(self, "dim", int(self.dim))


@dataclass(frozen=True)
class RgbKey:
    """One camera: robomimic key ``<camera>_image``, frames ``(height, width, 3)`` uint8 RGB."""

    name: str
    height: int = DEFAULT_IMAGE_SIZE
    width: int = DEFAULT_IMAGE_SIZE

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.endswith(IMAGE_SUFFIX) or name == IMAGE_SUFFIX:
            raise ValueError(
                f"RgbKey.name must be '<camera>{IMAGE_SUFFIX}' (robomimic's rgb key names), got {self.name!r}"
            )
        for field in ("height", "width"):
            v = getattr(self, field)
            if not _is_int(v) or not 8 <= v <= 4096:
                raise ValueError(f"RgbKey.{field} for '{self.name}' must be an int in [8, 4096], got {v!r}")
            object.__setattr__(self, field, int(v))

    @property
    def camera(self) -> str:
        """The camera name (the key without ``_image``)."""
        return self.name[: -len(IMAGE_SUFFIX)]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def check(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` as uint8 ``(..., H, W, 3)``; wrong dtype or shape raises ValueError naming the key."""
        a = np.asarray(frames)
        if a.dtype != np.uint8:
            raise ValueError(f"rgb observation '{self.name}' has dtype {a.dtype}, expected uint8")
        if a.shape[-3:] != self.shape:
            raise ValueError(
                f"rgb observation '{self.name}' has shape {a.shape}, expected (..., {self.shape})"
            )
        return a


@dataclass(frozen=True)
class ObsSpec:
    """Observation spec: ordered low-dim ``keys`` (the flat vector is their concatenation in this
    order) and ``rgb`` camera keys (empty for state-based specs).

    ``dim``, ``names``, :meth:`flatten` and :meth:`unflatten` are about the low-dim part only.
    """

    keys: tuple[ObsKey, ...]
    rgb: tuple[RgbKey, ...] = ()

    def __post_init__(self) -> None:
        keys, rgb = tuple(self.keys), tuple(self.rgb)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "rgb", rgb)
        if not keys:
            raise ValueError("ObsSpec.keys must name at least one low-dim observation key")
        if not all(isinstance(k, ObsKey) for k in keys):
            raise ValueError(f"ObsSpec.keys must hold ObsKey entries, got {keys!r}")
        if not all(isinstance(k, RgbKey) for k in rgb):
            raise ValueError(f"ObsSpec.rgb must hold RgbKey entries, got {rgb!r}")
        names = [k.name for k in keys] + [k.name for k in rgb]
        if len(set(names)) != len(names):
            raise ValueError(f"ObsSpec.keys/rgb have duplicate names: {names}")
        image_named = [k.name for k in keys if k.name.endswith(IMAGE_SUFFIX)]
        if image_named:
            raise ValueError(f"ObsSpec.keys are low-dim; camera keys {image_named} belong in ObsSpec.rgb")

    @property
    def dim(self) -> int:
        """Size of the flat low-dim vector."""
        return sum(k.dim for k in self.keys)

    @property
    def names(self) -> tuple[str, ...]:
        """Low-dim key names in flat order."""
        return tuple(k.name for k in self.keys)

    @property
    def rgb_names(self) -> tuple[str, ...]:
        """Camera keys (``<camera>_image``) in spec order."""
        return tuple(k.name for k in self.rgb)

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names (rgb keys without ``_image``) in spec order."""
        return tuple(k.camera for k in self.rgb)

    @property
    def has_images(self) -> bool:
        return bool(self.rgb)

    def modalities(self) -> dict[str, list[str]]:
        """Key names by modality, robomimic's ``observation.modalities.obs`` layout
        (``{"low_dim": [...], "rgb": [...]}``; usable with
        ``ObsUtils.initialize_obs_utils_with_obs_specs``)."""
        return {LOW_DIM: list(self.names), RGB: list(self.rgb_names)}

    def slices(self) -> dict[str, slice]:
        """Where each low-dim key lives inside the flat vector."""
        out, start = {}, 0
        for k in self.keys:
            out[k.name] = slice(start, start + k.dim)
            start += k.dim
        return out

    def flatten(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Concatenate ``obs[key]`` in spec order (low-dim keys only; rgb keys are ignored). Works on
        one step ``(d,)`` or a sequence ``(T, d)``. Missing keys or wrong sizes raise with the key."""
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

    def images(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The rgb entries of ``obs`` in spec order, checked (uint8, ``(..., H, W, 3)``)."""
        out = {}
        for k in self.rgb:
            if k.name not in obs:
                raise KeyError(
                    f"rgb observation '{k.name}' missing; have {sorted(obs)}; spec wants {self.rgb_names}"
                )
            out[k.name] = k.check(obs[k.name])
        return out

    def to_json(self) -> list[list] | dict[str, list[list]]:
        """Without cameras: ``[[name, dim], ...]`` (the original format); with cameras:
        ``{"low_dim": [[name, dim], ...], "rgb": [[name, height, width], ...]}``."""
        low_dim = [[k.name, k.dim] for k in self.keys]
        if not self.rgb:
            return low_dim
        return {LOW_DIM: low_dim, RGB: [[k.name, k.height, k.width] for k in self.rgb]}

    @classmethod
    def from_json(cls, data: Sequence | Mapping) -> ObsSpec:
        """Inverse of :meth:`to_json`; also reads the original list format of old checkpoints and bags."""
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - {LOW_DIM, RGB})
            if unknown or LOW_DIM not in data:
                raise ValueError(
                    f"ObsSpec JSON object must have '{LOW_DIM}' and optionally '{RGB}', "
                    f"got keys {sorted(data)}"
                )
            low_dim, rgb = data[LOW_DIM], data.get(RGB, [])
        elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
            low_dim, rgb = data, []
        else:
            raise ValueError(f"ObsSpec JSON must be a list or an object, got {type(data).__name__}")
        try:
            keys = tuple(ObsKey(str(n), int(d)) for n, d in low_dim)
            cams = tuple(RgbKey(str(n), int(h), int(w)) for n, h, w in rgb)
        except (TypeError, ValueError) as e:
            raise ValueError(f"ObsSpec JSON is malformed: {e}") from e
        return cls(keys, cams)


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


# Franka/Panda proprioception as robomimic's low-dim configs use it (robosuite world frame).
_PROPRIO = (ObsKey("robot0_eef_pos", 3), ObsKey("robot0_eef_quat", 4), ObsKey("robot0_gripper_qpos", 2))

#: What a real Franka reports, in the robot base frame (the "pixels" spec's low-dim part).
BASE_FRAME_PROPRIO: tuple[ObsKey, ...] = (
    ObsKey("robot0_base_to_eef_pos", 3),
    ObsKey("robot0_base_to_eef_quat", 4),
    ObsKey("robot0_gripper_qpos", 2),
    ObsKey("robot0_joint_pos", 7),
)

# robomimic stores robosuite's "object-state" under the key "object". stack and threading are
# MimicGen's Stack_D0 and Threading_D0 (expo_core.tasks).
TASK_OBJECT_DIMS: dict[str, int] = {"lift": 10, "can": 14, "square": 14, "stack": 23, "threading": 28}


def rgb_keys(cameras: Sequence[str], image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[RgbKey, ...]:
    """Square ``image_size`` rgb keys ``<camera>_image`` of ``cameras``."""
    return tuple(RgbKey(f"{cam}{IMAGE_SUFFIX}", image_size, image_size) for cam in cameras)


def task_obs_spec(
    task: str,
    obs: str = "state",
    *,
    cameras: Sequence[str] = SUPPORTED_CAMERAS,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> ObsSpec:
    """The observation spec of a supported task.

    Args:
        task: one of :data:`TASK_OBJECT_DIMS`.
        obs: ``"state"`` (robomimic's low-dim spec: world-frame eef pose, gripper, ``object``; the
            spec every existing dataset and checkpoint uses) or ``"pixels"`` (base-frame eef pose,
            gripper, joint positions, and ``cameras``; no object key).
        cameras: pixel spec only: camera names (default ``agentview``, ``robot0_eye_in_hand``).
        image_size: pixel spec only: square frame side in pixels (default 84, as robomimic).
    """
    if task not in TASK_OBJECT_DIMS:
        raise ValueError(f"unknown task '{task}'; supported: {sorted(TASK_OBJECT_DIMS)}")
    if obs == "state":
        return ObsSpec(_PROPRIO + (ObsKey("object", TASK_OBJECT_DIMS[task]),))
    if obs != "pixels":
        raise ValueError(f"task_obs_spec: obs must be one of {list(OBS_MODES)}, got {obs!r}")
    cams = tuple(cameras)
    if not cams:
        raise ValueError("task_obs_spec: cameras must name at least one camera for obs='pixels'")
    unknown = [c for c in cams if c not in SUPPORTED_CAMERAS]
    if unknown:
        raise ValueError(f"task_obs_spec: cameras {unknown} unknown; supported: {list(SUPPORTED_CAMERAS)}")
    return ObsSpec(BASE_FRAME_PROPRIO, rgb_keys(cams, image_size))


FRANKA_ACTION_SPEC = ActionSpec(dim=7)
