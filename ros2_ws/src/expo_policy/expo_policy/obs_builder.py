"""Observation builder: latest sensor pieces -> the exact low-dim vector the agent was trained on.

Pure numpy, no ROS; the policy node's callbacks convert messages to arrays and call ``update_*``;
the control loop calls :meth:`ObservationBuilder.build`. The output is ``spec.flatten(...)`` of
the robomimic keys, so the order is the one shared with datasets and the simulator
(``expo_core.spec``). Pieces and the keys they fill:

- ``update_joint_state`` -> ``robot0_gripper_qpos`` (2,): the two finger joint positions in
  meters, picked by name. robosuite reports finger 2 negative when open; a real Franka reports
  both positive, so ``finger_signs=(1, -1)`` maps hardware onto the training convention.
- ``update_ee_pose`` -> ``robot0_eef_pos`` (3,) in meters and ``robot0_eef_quat`` (4,) in
  **x, y, z, w** order, as robosuite/robomimic store it (and as geometry_msgs/Quaternion lists
  its fields). The sign of the quaternion is passed through untouched, as in training.
- ``update_object`` -> ``object`` (task dim): the task's robomimic "object" vector, ground truth
  from the sim bridge or a perception node's estimate on hardware.

The pixel spec's proprioception (``expo_core.spec.BASE_FRAME_PROPRIO``) comes from the same two
pieces: ``update_ee_pose`` also fills ``robot0_base_to_eef_pos`` / ``robot0_base_to_eef_quat`` (the
caller passes a pose in the robot base frame: the node's ``ee_pose_base`` topic), and
``update_joint_state`` fills ``robot0_joint_pos`` (7, rad) from ``arm_joint_names``, in that order.

A build is rejected (``obs=None`` plus a reason) while any required piece is missing, older than
``max_age_s``, more than ``max_age_s`` in the future, malformed, non-finite, or when the
pieces' stamps spread over more than ``max_skew_s``. All stamps are seconds on the node clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from expo_core.spec import ObsSpec

#: Spec key -> the piece (update method) that provides it.
KEY_SOURCES: dict[str, str] = {
    "robot0_eef_pos": "ee_pose",
    "robot0_eef_quat": "ee_pose",
    "robot0_gripper_qpos": "joint_state",
    "object": "object",
    "robot0_base_to_eef_pos": "ee_pose",
    "robot0_base_to_eef_quat": "ee_pose",
    "robot0_joint_pos": "joint_state",
}
_JOINT_POS = "robot0_joint_pos"
_QUAT_NORM_TOL = 0.05  # |q| must be within 1 +- this: catches zeroed or garbage orientations


@dataclass(frozen=True)
class BuildResult:
    """``obs``: ``(spec.dim,)`` float32 or None when rejected; ``stamp``: the oldest piece's
    stamp in seconds (the information acted on is at least this recent), None if rejected;
    ``ok``; ``reason``: why rejected, "" when ok."""

    obs: np.ndarray | None
    stamp: float | None
    ok: bool
    reason: str


@dataclass
class _Piece:
    stamp: float
    values: dict[str, np.ndarray]
    error: str = ""


class ObservationBuilder:
    """Keeps the latest piece of each input and assembles synchronized observations."""

    def __init__(
        self,
        spec: ObsSpec,
        max_age_s: float,
        max_skew_s: float,
        finger_joint_names: Sequence[str] = ("panda_finger_joint1", "panda_finger_joint2"),
        finger_signs: Sequence[float] = (1.0, 1.0),
        arm_joint_names: Sequence[str] = (),
    ) -> None:
        unknown = [k for k in spec.names if k not in KEY_SOURCES]
        if unknown:
            raise ValueError(
                f"ObservationBuilder cannot fill spec keys {unknown}; supported: {sorted(KEY_SOURCES)}"
            )
        if not (math.isfinite(max_age_s) and max_age_s > 0.0):
            raise ValueError(f"max_age_s must be > 0 s, got {max_age_s}")
        if not (math.isfinite(max_skew_s) and max_skew_s >= 0.0):
            raise ValueError(f"max_skew_s must be >= 0 s, got {max_skew_s}")
        if len(finger_joint_names) != 2 or len(set(finger_joint_names)) != 2 or not all(finger_joint_names):
            raise ValueError(f"finger_joint_names must be two distinct names, got {list(finger_joint_names)}")
        if len(finger_signs) != 2 or any(s not in (1.0, -1.0) for s in finger_signs):
            raise ValueError(f"finger_signs must be two values in {{1.0, -1.0}}, got {list(finger_signs)}")
        arm = tuple(arm_joint_names)
        if _JOINT_POS in spec.names:
            n = next(k.dim for k in spec.keys if k.name == _JOINT_POS)
            if len(arm) != n or len(set(arm)) != n or not all(arm) or set(arm) & set(finger_joint_names):
                raise ValueError(
                    f"arm_joint_names must be {n} distinct names (not finger joints) for spec key "
                    f"{_JOINT_POS}, got {list(arm)}"
                )
        self.arm_joint_names = arm if _JOINT_POS in spec.names else ()
        self.spec = spec
        self.max_age_s = float(max_age_s)
        self.max_skew_s = float(max_skew_s)
        self.finger_joint_names = tuple(finger_joint_names)
        self._finger_signs = np.asarray(finger_signs, dtype=np.float64)
        self._dims = {k.name: k.dim for k in spec.keys}
        self.required_pieces = tuple(dict.fromkeys(KEY_SOURCES[k] for k in spec.names))
        self._pieces: dict[str, _Piece] = {}

    def _store(self, piece: str, stamp: float, values: dict[str, np.ndarray], error: str = "") -> None:
        shape_errors = [
            f"{key} has shape {v.shape}, expected ({self._dims[key]},)"
            for key, v in values.items()
            if key in self._dims and v.shape != (self._dims[key],)
        ]
        self._pieces[piece] = _Piece(float(stamp), values, shape_errors[0] if shape_errors else error)

    def update_joint_state(self, stamp: float, position: np.ndarray, names: Sequence[str]) -> bool:
        """Take the finger positions (m) from a joint state with ``names`` aligned to ``position``.

        A message without both finger joints (e.g. an arm-only publisher on the same topic) is
        ignored and returns False; the previous gripper piece stays and ages normally.
        """
        index = {n: i for i, n in enumerate(names)}
        if any(n not in index for n in self.finger_joint_names):
            return False
        pos = np.asarray(position, dtype=np.float64).reshape(-1)
        idx = [index[n] for n in self.finger_joint_names]
        if max(idx) >= pos.shape[0]:
            error = f"joint_state has {pos.shape[0]} positions for {len(names)} names"
            self._store("joint_state", stamp, {}, error)
            return True
        values = {"robot0_gripper_qpos": pos[idx] * self._finger_signs}
        if self.arm_joint_names:
            absent = [n for n in self.arm_joint_names if n not in index]
            if absent:
                self._store("joint_state", stamp, {}, f"joint_state lacks arm joints {absent}")
                return True
            arm_idx = [index[n] for n in self.arm_joint_names]
            if max(arm_idx) >= pos.shape[0]:
                self._store(
                    "joint_state",
                    stamp,
                    {},
                    f"joint_state has {pos.shape[0]} positions for {len(names)} names",
                )
                return True
            values[_JOINT_POS] = pos[arm_idx]
        self._store("joint_state", stamp, values)
        return True

    def update_ee_pose(self, stamp: float, pos: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """End-effector position ``(3,)`` in meters and orientation ``(4,)`` as x, y, z, w."""
        quat = np.array(quat_xyzw, dtype=np.float64).reshape(-1)  # copies: callers may reuse buffers
        error = ""
        if quat.shape == (4,) and np.isfinite(quat).all():
            norm = float(np.linalg.norm(quat))
            if abs(norm - 1.0) > _QUAT_NORM_TOL:
                error = f"ee_pose quaternion has norm {norm:.3f}, expected a unit quaternion"
        p = np.array(pos, dtype=np.float64).reshape(-1)
        # the same pose under the state spec's and the pixel spec's key names; the spec picks
        values = {
            "robot0_eef_pos": p,
            "robot0_eef_quat": quat,
            "robot0_base_to_eef_pos": p,
            "robot0_base_to_eef_quat": quat,
        }
        self._store("ee_pose", stamp, values, error)

    def update_object(self, stamp: float, flat_object_vector: np.ndarray) -> None:
        """The task's robomimic ``object`` vector, ``(spec dim of "object",)``."""
        self._store("object", stamp, {"object": np.array(flat_object_vector, dtype=np.float64).reshape(-1)})

    def reset(self) -> None:
        """Drop every piece (e.g. on episode reset or deactivate)."""
        self._pieces.clear()

    def build(self, now: float) -> BuildResult:
        """Assemble the observation at node time ``now`` (s), or say why not."""
        # The usual case, with the same checks in fewer steps: every piece there, well formed,
        # fresh and in sync, every value of every piece finite. Anything else (and any doubt: a
        # NaN stamp) takes the full checks, which also say why.
        pieces = [self._pieces.get(name) for name in self.required_pieces]
        if pieces and all(p is not None and not p.error for p in pieces):
            stamps = [p.stamp for p in pieces]
            fresh = all(abs(now - s) <= self.max_age_s for s in stamps)
            finite = all(np.isfinite(v).all() for p in pieces for v in p.values.values())
            if fresh and finite and max(stamps) - min(stamps) <= self.max_skew_s:
                values: dict[str, np.ndarray] = {}
                for p in pieces:
                    values.update(p.values)
                return BuildResult(obs=self.spec.flatten(values), stamp=min(stamps), ok=True, reason="")
        return self._checked_build(now)

    def _checked_build(self, now: float) -> BuildResult:
        """:meth:`build` with every check on every piece, naming each problem."""
        problems: list[str] = []
        stamps: list[float] = []
        values: dict[str, np.ndarray] = {}
        for name in self.required_pieces:
            piece = self._pieces.get(name)
            if piece is None:
                problems.append(f"{name} missing")
                continue
            age = now - piece.stamp
            if piece.error:
                problems.append(f"{name} malformed: {piece.error}")
            elif not math.isfinite(age) or abs(age) > self.max_age_s:
                side = f"{age:.3f} s old" if age >= 0 else f"{-age:.3f} s in the future"
                problems.append(f"{name} stale: {side} > {self.max_age_s:.3f} s")
            else:
                bad = [k for k, v in piece.values.items() if not np.all(np.isfinite(v))]
                if bad:
                    problems.append(f"{name} non-finite in {bad}")
            stamps.append(piece.stamp)
            values.update(piece.values)
        if not problems and stamps and max(stamps) - min(stamps) > self.max_skew_s:
            spread = ", ".join(f"{n}@{s:.3f}" for n, s in zip(self.required_pieces, stamps, strict=True))
            problems.append(
                f"out of sync: stamps spread {max(stamps) - min(stamps):.3f} s > "
                f"{self.max_skew_s:.3f} s ({spread})"
            )
        if problems:
            return BuildResult(obs=None, stamp=None, ok=False, reason="; ".join(problems))
        obs = self.spec.flatten(values)
        return BuildResult(obs=obs, stamp=min(stamps), ok=True, reason="")
