"""Pixel observation inputs: camera frames + proprioception -> the packed pixel observation.

Pure numpy, no ROS; the counterpart of :class:`expo_policy.inputs.ObservationInputs` for a
policy whose checkpoint has cameras (``backend.obs_spec``), with the same interface, so the
policy node's loop is the same for both kinds. Pieces (the names double as watchdog inputs):

- ``joint_states``: (joint names, positions) -> ``robot0_gripper_qpos`` (the finger joints) and
  ``robot0_joint_pos`` (the 7 ``arm_joint_names``, in that order);
- ``ee_pose_base``: (position (3,), quaternion (4,) x y z w) of the end effector **in the robot
  base frame** -> ``robot0_base_to_eef_pos`` / ``robot0_base_to_eef_quat``; when ``base_frame``
  is set, a pose in another frame is refused;
- one piece per camera of the spec, named by the camera (``agentview``, ...): a
  :class:`~expo_policy.camera_frames.CameraFrame`.

Synchronization (:class:`FreshSetSync`, approximate time): a set is emitted as soon as every name
has a piece newer than the one the last set used from it. Its pivot is the oldest of the names'
newest stamps (the latest moment every input has reached), and each name contributes its recent
piece closest to the pivot. With the sim bridge, which stamps every piece of a step alike, that is exactly the
step's set, once. With free-running cameras it is one set per frame of the slowest camera, each
frame paired with the proprioception of its own moment (a camera 100 ms behind gets the joint
state of 100 ms ago, not the newest). When queues back up under load (cameras keep fewer
messages than the proprio topics), the set still pairs pieces of one moment. Whether the set's
stamps agree within ``max_skew_s`` is :meth:`PixelObservationInputs.build`'s check, so that a set
that does not agree ends in a hold saying so instead of in silence.

:meth:`PixelObservationInputs.build` refuses (``ok`` False, a reason starting with one of the
hold codes of :mod:`expo_policy.camera_frames`) when, checked in this order per camera:

1. ``camera_missing``: no frame of that camera, or none received for ``max_age_s`` (node clock);
2. the frame's own error: ``camera_wrong_encoding``, ``camera_wrong_size``, ``camera_malformed``,
   or ``camera_frozen`` (set by :meth:`~PixelObservationInputs.add` when a camera repeats a
   header stamp or goes back in time);
3. ``camera_late``: the frame's header stamp is more than ``max_age_s`` old (or ahead);

then ``proprio_unusable`` (joint_states / ee_pose_base missing, stale, malformed, non-finite,
in the wrong frame: :class:`~expo_policy.obs_builder.ObservationBuilder`'s checks), and, when all
pieces are usable, ``observation_skew``: their header stamps spread over more than
``max_skew_s``. Every problem found is listed, separated by "; ".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from expo_core.pixel_agent import LOW_DIM_KEY, pack_observation
from expo_core.spec import ObsSpec

from .camera_frames import (
    CAMERA_FROZEN,
    CAMERA_LATE,
    CAMERA_MISSING,
    OBSERVATION_SKEW,
    PROPRIO_UNUSABLE,
    CameraFrame,
)
from .obs_builder import BuildResult, ObservationBuilder

JOINT_STATES = "joint_states"
EE_POSE_BASE = "ee_pose_base"
Pieces = dict[str, tuple[int, Any, str]]  # piece -> (header stamp ns, decoded payload, frame_id)


class FreshSetSync:
    """Approximate-time sets: once every name has a new piece, each name's recent piece closest to
    the pivot (the oldest of the names' newest stamps); ``history`` pieces kept per name.

    Counters (diagnostics): ``dropped`` pieces no set used, older than the one a set took (a faster
    stream, or a slow consumer); ``late`` pieces whose stamp was not newer than the previous piece
    of the same name (a frozen or restarted stream).
    """

    def __init__(self, names: Sequence[str], history: int = 32) -> None:
        if not names or len(set(names)) != len(names):
            raise ValueError(f"FreshSetSync needs distinct piece names, got {list(names)}")
        if history < 1:
            raise ValueError(f"FreshSetSync.history must be >= 1, got {history}")
        self.names = tuple(names)
        self._recent: dict[str, deque[tuple[int, Any]]] = {n: deque(maxlen=history) for n in self.names}
        self._stamps: dict[str, int] = {}
        self._fresh: set[str] = set()
        self._used: dict[str, int] = {}  # name -> stamp of the piece the last set used
        self._last: int | None = None
        self.late = 0
        self.dropped = 0

    @property
    def last_stamp_ns(self) -> int | None:
        """The newest stamp of the last emitted set, None before the first."""
        return self._last

    def add(self, name: str, stamp_ns: int, payload: Any) -> dict[str, Any] | None:
        """Store ``payload`` as the newest ``name``; returns the set it completes, if any
        (name -> payload)."""
        if name not in self.names:
            raise KeyError(f"piece '{name}' is not synchronized; names: {self.names}")
        prev = self._stamps.get(name)
        if prev is not None and stamp_ns <= prev:
            self.late += 1
        self._stamps[name] = max(int(stamp_ns), prev if prev is not None else int(stamp_ns))
        self._recent[name].append((int(stamp_ns), payload))
        self._fresh.add(name)
        if len(self._fresh) < len(self.names):
            return None
        self._fresh.clear()
        pivot = min(self._stamps.values())
        self._last = max(self._stamps.values())
        out = {}
        for n, recent in self._recent.items():  # closest to the pivot; on a tie the later arrival
            best = min(range(len(recent)), key=lambda i, r=recent: (abs(r[i][0] - pivot), -i))
            out[n], chosen = recent[best][1], recent[best][0]
            used = self._used.get(n)  # pieces between the last set's and this one's: never used
            self.dropped += sum(1 for st, _ in recent if st < chosen and (used is None or st > used))
            self._used[n] = chosen
            if recent[-1][0] > chosen:
                # A newer piece than the one used (the next step's proprioception, arrived before
                # this step's frames): still new for the next set, which must not wait for yet
                # another one (that would decide every step a period late from then on).
                self._fresh.add(n)
        return out

    def reset(self) -> None:
        """Forget every piece (deactivate, sim restart); counters are kept."""
        for recent in self._recent.values():
            recent.clear()
        self._stamps.clear()
        self._fresh.clear()
        self._used.clear()
        self._last = None


class PixelObservationInputs:
    """Latest and synchronized pieces of a pixel policy (module docstring)."""

    ee_piece = EE_POSE_BASE

    def __init__(self, spec: ObsSpec, builder: ObservationBuilder, base_frame: str = "") -> None:
        if not spec.rgb:
            raise ValueError("PixelObservationInputs needs a spec with cameras (rgb keys)")
        if builder.spec.names != spec.names:
            raise ValueError(f"builder spec {builder.spec.names} is not the proprio of {spec.names}")
        self.spec = spec
        self.cameras = spec.cameras
        self.base_frame = base_frame
        self.names = (JOINT_STATES, EE_POSE_BASE, *self.cameras)
        clash = {JOINT_STATES, EE_POSE_BASE} & set(self.cameras)
        if clash:
            raise ValueError(f"camera names {sorted(clash)} clash with the proprio pieces")
        self._builder = builder
        self._sync = FreshSetSync(self.names)
        self._last_frame_ns: dict[str, int] = {}
        self.latest: Pieces = {}

    @property
    def sync(self) -> FreshSetSync:
        return self._sync

    @property
    def max_age_s(self) -> float:
        return self._builder.max_age_s

    def accepts_joint_state(self, names: Sequence[str]) -> bool:
        """Whether a joint state carries both finger joints (arm-only publishers are not ours)."""
        return all(n in names for n in self._builder.finger_joint_names)

    def add(self, name: str, stamp_ns: int, payload: Any, frame_id: str = "") -> Pieces | None:
        """Keep ``payload`` as the latest ``name`` (a camera's: a CameraFrame); returns the set it
        completes, if any. A camera frame whose stamp is not newer than the previous frame of that
        camera is marked ``camera_frozen``."""
        if name not in self.names:
            raise KeyError(f"unknown observation piece '{name}'; pieces: {self.names}")
        ns = int(stamp_ns)
        if name in self.cameras:
            if not isinstance(payload, CameraFrame):
                raise TypeError(f"camera piece '{name}' must be a CameraFrame, got {type(payload).__name__}")
            prev = self._last_frame_ns.get(name)
            if prev is not None and ns <= prev and payload.ok:
                how = "repeats the previous frame's" if ns == prev else "is older than the previous frame's"
                payload = payload.with_error(
                    CAMERA_FROZEN, f"{name}: header stamp {ns * 1e-9:.3f} s {how} (stream frozen?)"
                )
            self._last_frame_ns[name] = max(ns, prev if prev is not None else ns)
        piece = (ns, payload, frame_id)
        self.latest[name] = piece
        return self._sync.add(name, ns, piece)

    def _camera_problem(self, cam: str, piece: tuple[int, Any, str] | None, now_s: float) -> str:
        if piece is None:
            return f"{CAMERA_MISSING}: {cam}: no frame received"
        ns, frame, _ = piece
        since = now_s - frame.received_s
        if since > self.max_age_s:
            return f"{CAMERA_MISSING}: {cam}: no frame for {since:.3f} s (> {self.max_age_s:g} s)"
        if not frame.ok:
            return frame.reason
        age = now_s - ns * 1e-9
        if not math.isfinite(age) or abs(age) > self.max_age_s:
            side = f"{age:.3f} s old" if age >= 0 else f"{-age:.3f} s in the future"
            return f"{CAMERA_LATE}: {cam}: frame {side} (> {self.max_age_s:g} s)"
        return ""

    def build(self, pieces: Pieces, now_s: float) -> BuildResult:
        """The packed pixel observation from exactly ``pieces`` at node time ``now_s``, or why not.

        ``obs``: ``{"low_dim": proprio (P,) float32, "<camera>_image": (H, W, 3) uint8, ...}``."""
        problems: list[str] = []
        stamps: dict[str, int] = {}
        images: dict[str, np.ndarray] = {}
        for cam in self.cameras:
            problem = self._camera_problem(cam, pieces.get(cam), now_s)
            if problem:
                problems.append(problem)
            else:
                stamps[cam], images[cam] = pieces[cam][0], pieces[cam][1].pixels
        b = self._builder
        b.reset()
        if JOINT_STATES in pieces:
            ns, (names, pos), _ = pieces[JOINT_STATES]
            b.update_joint_state(ns * 1e-9, pos, names)
            stamps[JOINT_STATES] = ns
        frame_problem = ""
        if EE_POSE_BASE in pieces:
            ns, (ee_pos, ee_quat), frame = pieces[EE_POSE_BASE]
            b.update_ee_pose(ns * 1e-9, ee_pos, ee_quat)
            stamps[EE_POSE_BASE] = ns
            if self.base_frame and frame != self.base_frame:
                frame_problem = (
                    f"{PROPRIO_UNUSABLE}: {EE_POSE_BASE} in frame '{frame}', the pixel policy needs the "
                    f"robot base frame '{self.base_frame}'"
                )
        res = b.build(now_s)
        if not res.ok:
            problems.append(f"{PROPRIO_UNUSABLE}: {res.reason.replace('ee_pose', EE_POSE_BASE)}")
        if frame_problem:
            problems.append(frame_problem)
        if not problems:
            lo, hi = min(stamps.values()), max(stamps.values())
            if (hi - lo) * 1e-9 > b.max_skew_s:
                spread = ", ".join(f"{n}@{s * 1e-9:.3f}" for n, s in stamps.items())
                skew = (hi - lo) * 1e-9
                problems.append(
                    f"{OBSERVATION_SKEW}: stamps spread {skew:.3f} s > {b.max_skew_s:g} s ({spread})"
                )
        if problems:
            return BuildResult(obs=None, stamp=None, ok=False, reason="; ".join(problems))
        obs = pack_observation(images, np.asarray(res.obs, dtype=np.float32))
        return BuildResult(obs=obs, stamp=min(stamps.values()) * 1e-9, ok=True, reason="")

    @staticmethod
    def proprio(obs: dict[str, Any]) -> np.ndarray:
        """The low-dim part of a built observation (what transitions carry as ``obs``)."""
        return obs[LOW_DIM_KEY]

    def images(self, pieces: Pieces) -> tuple[Any, ...]:
        """The Image messages of ``pieces``, in the spec's camera order (transitions' ``images``)."""
        return tuple(pieces[c][1].msg for c in self.cameras if c in pieces and pieces[c][1].msg is not None)

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
        self._last_frame_ns.clear()
        self._sync.reset()
