"""Observation inputs: decoded sensor pieces -> the policy's observation. Pure numpy, no ROS.

The node's callbacks hand each decoded piece to :meth:`ObservationInputs.add` with its header
stamp (integer ns). Pieces and their payloads:

- ``joint_states``: (joint names, positions); messages without both finger joints are refused;
- ``ee_pose``: (position (3,), quaternion (4,) x, y, z, w);
- ``object_poses``: (positions (n, 3), quaternions (n, 4)), turned into the task's robomimic
  ``object`` vector together with the end-effector pose of the same observation
  (:func:`expo_ros.object_state.object_vector`).

Two ways to observe: the latest piece of each kind (timer mode, any sensor rates), or the
complete sets whose pieces share one stamp (:mod:`expo_policy.sync`; lockstep mode, and the
candidate next observations of transitions). Either way :meth:`ObservationInputs.build` runs the
:class:`~expo_policy.obs_builder.ObservationBuilder` checks (missing, stale, malformed,
non-finite, out of sync) on exactly the given pieces, and refuses object poses given in another
frame than the end effector (both must share the frame the object vector is computed in).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from expo_ros.object_state import object_vector

from .obs_builder import BuildResult, ObservationBuilder
from .sync import ExactStampSync

PIECES = ("joint_states", "ee_pose", "object_poses")  # one observation
Pieces = dict[str, tuple[int, Any, str]]  # piece -> (header stamp ns, decoded payload, frame_id)


class ObservationInputs:
    """Latest and synchronized observation pieces of one task."""

    ee_piece = "ee_pose"  # the piece whose pose the safety filter and markers use

    def __init__(self, task: str, builder: ObservationBuilder) -> None:
        self.task = task
        self._builder = builder
        self._sync = ExactStampSync(PIECES)
        self.latest: Pieces = {}

    @property
    def sync(self) -> ExactStampSync:
        """The set synchronizer (its ``late`` and ``dropped`` counts go to diagnostics)."""
        return self._sync

    def accepts_joint_state(self, names: Sequence[str]) -> bool:
        """Whether a joint state carries both finger joints (arm-only publishers are not ours)."""
        return all(n in names for n in self._builder.finger_joint_names)

    def add(self, name: str, stamp_ns: int, payload: Any, frame_id: str = "") -> Pieces | None:
        """Keep ``payload`` as the latest ``name``; returns the complete set it completes, if any."""
        if name not in PIECES:
            raise KeyError(f"unknown observation piece '{name}'; pieces: {PIECES}")
        piece = (int(stamp_ns), payload, frame_id)
        self.latest[name] = piece
        return self._sync.add(name, int(stamp_ns), piece)

    def build(self, pieces: Pieces, now_s: float) -> BuildResult:
        """The observation from exactly ``pieces`` at node time ``now_s``, or why not."""
        b = self._builder
        b.reset()
        problem = ""
        if "joint_states" in pieces:
            ns, (names, pos), _ = pieces["joint_states"]
            b.update_joint_state(ns * 1e-9, pos, names)
        if "ee_pose" in pieces:
            ns, (ee_pos, ee_quat), ee_frame = pieces["ee_pose"]
            b.update_ee_pose(ns * 1e-9, ee_pos, ee_quat)
            if "object_poses" in pieces:
                ns, poses, frame = pieces["object_poses"]
                try:
                    if frame and ee_frame and frame != ee_frame:
                        raise ValueError(f"given in frame '{frame}', ee_pose in '{ee_frame}'")
                    vec = object_vector(self.task, poses, ee_pos, ee_quat)
                except ValueError as e:
                    problem, vec = f"object_poses unusable: {e}", np.zeros(0)
                b.update_object(ns * 1e-9, vec)
        res = b.build(now_s)
        if problem:
            return BuildResult(obs=None, stamp=None, ok=False, reason=f"{problem}; {res.reason}")
        return res

    @staticmethod
    def stamp_ns(pieces: Pieces) -> int:
        """The oldest piece's stamp: the observation is at least this recent."""
        return min(p[0] for p in pieces.values())

    def frame(self, name: str) -> str:
        """frame_id of the latest ``name`` piece ("" if none)."""
        return self.latest[name][2] if name in self.latest else ""

    def reset(self) -> None:
        """Forget every piece and the sync state (deactivate, sim restart)."""
        self.latest = {}
        self._sync.reset()
