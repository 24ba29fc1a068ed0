"""Message <-> numpy conversions, one encode/decode pair per channel. Pure functions, no node.

Conventions: stamps are integer nanoseconds on the node clock (``time_msg`` / ``stamp_ns``);
positions in meters; quaternions x, y, z, w (geometry_msgs order, as robosuite stores them);
``float32[]`` fields are filled from numpy through ``array.array('f')`` (one copy, no per-element
Python checks) and decoded with ``np.frombuffer``. Decoders return copies the caller may keep.
The robomimic ``object`` vector is rebuilt from ``object_poses`` by
:func:`expo_ros.object_state.object_vector`.
"""

from __future__ import annotations

import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from expo_interfaces.msg import (
    ActionCommand,
    EnvFeedback,
    LearnerStats,
    OtfDecision,
    PolicyWeights,
    TeleopCommand,
    Transition,
)
from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped, Quaternion
from sensor_msgs.msg import Image, JointState, Joy

from .msg_fields import _f32, _np32
from .msg_fields import header as header  # re-exported: cv.header, cv.stamp_ns, cv.time_msg
from .msg_fields import stamp_ns as stamp_ns
from .msg_fields import time_msg as time_msg
from .transitions import Feedback, TransitionData

#: Image encodings decoded to (H, W, C) uint8, with their channel counts.
IMAGE_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


# --- joint_states: sensor_msgs/JointState -------------------------------------------------------
def joint_state_to_numpy(msg: JointState) -> tuple[list[str], np.ndarray]:
    """-> (joint names, positions ``(n,)`` float64 in rad or m, aligned with the names)."""
    return list(msg.name), np.asarray(msg.position, dtype=np.float64).reshape(-1)


def joint_state_msg(names: Sequence[str], positions: np.ndarray, ns: int, frame_id: str = "") -> JointState:
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    return JointState(header=header(ns, frame_id), name=list(names), position=pos.tolist())


# --- ee_pose: geometry_msgs/PoseStamped ---------------------------------------------------------
def _pose_values(p: Pose) -> tuple[list[float], list[float]]:
    o = p.orientation
    return [p.position.x, p.position.y, p.position.z], [o.x, o.y, o.z, o.w]


def _pose(pos: np.ndarray, quat: np.ndarray) -> Pose:
    x, y, z = (float(v) for v in np.asarray(pos, dtype=np.float64).reshape(3))
    qx, qy, qz, qw = (float(v) for v in np.asarray(quat, dtype=np.float64).reshape(4))
    return Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def pose_stamped_to_numpy(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    """-> (position ``(3,)`` m, quaternion ``(4,)`` x, y, z, w), float64."""
    pos, quat = _pose_values(msg.pose)
    return np.array(pos), np.array(quat)


def pose_stamped_msg(pos: np.ndarray, quat_xyzw: np.ndarray, ns: int, frame_id: str) -> PoseStamped:
    return PoseStamped(header=header(ns, frame_id), pose=_pose(pos, quat_xyzw))


# --- object_poses: geometry_msgs/PoseArray ------------------------------------------------------
def pose_array_to_numpy(msg: PoseArray) -> tuple[np.ndarray, np.ndarray]:
    """-> (positions ``(n, 3)`` m, quaternions ``(n, 4)`` x, y, z, w), float64, in message order."""
    vals = [_pose_values(p) for p in msg.poses]
    pos = np.array([v[0] for v in vals], dtype=np.float64).reshape(-1, 3)
    quat = np.array([v[1] for v in vals], dtype=np.float64).reshape(-1, 4)
    return pos, quat


def pose_array_msg(positions: np.ndarray, quats_xyzw: np.ndarray, ns: int, frame_id: str) -> PoseArray:
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    quat = np.asarray(quats_xyzw, dtype=np.float64).reshape(-1, 4)
    if pos.shape[0] != quat.shape[0]:
        raise ValueError(f"{pos.shape[0]} positions but {quat.shape[0]} orientations")
    return PoseArray(header=header(ns, frame_id), poses=[_pose(p, q) for p, q in zip(pos, quat)])


# --- image_raw: sensor_msgs/Image ---------------------------------------------------------------
def image_to_numpy(msg: Image) -> np.ndarray:
    """-> ``(H, W, C)`` uint8 view-free copy; row padding (``step`` > W*C) is removed.

    Raises ValueError for encodings outside :data:`IMAGE_CHANNELS` or inconsistent sizes.
    """
    c = IMAGE_CHANNELS.get(msg.encoding)
    if c is None:
        raise ValueError(f"image encoding '{msg.encoding}' unsupported; supported: {sorted(IMAGE_CHANNELS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if step < w * c or data.size != h * step:
        raise ValueError(f"image {w}x{h}x{c} with step {step} does not fit {data.size} bytes")
    return data.reshape(h, step)[:, : w * c].reshape(h, w, c).copy()


def image_msg(pixels: np.ndarray, ns: int, frame_id: str, encoding: str = "rgb8") -> Image:
    px = np.ascontiguousarray(pixels, dtype=np.uint8)
    px = px[..., None] if px.ndim == 2 else px
    if encoding not in IMAGE_CHANNELS or px.ndim != 3 or px.shape[2] != IMAGE_CHANNELS[encoding]:
        raise ValueError(f"pixels of shape {pixels.shape} do not match encoding '{encoding}'")
    h, w, c = px.shape
    return Image(
        header=header(ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * c,
        data=array.array("B", px.tobytes()),
    )


# --- action: expo_interfaces/ActionCommand ------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """A decoded ActionCommand (see the message for field meanings); ``action`` float32 (d,);
    ``plan`` float32 (m, d), the next m actions (row i for the period starting at ``stamp_ns +
    (i + 1) * plan_period_ns``), or None without a plan."""

    action: np.ndarray
    stamp_ns: int
    policy_version: int = 0
    candidate_index: int = -1
    is_edited: bool = False
    safety_modified: bool = False
    hold: bool = False
    hold_reason: str = ""
    episode: int = 0
    step: int = 0
    frame_id: str = ""
    plan: np.ndarray | None = None
    plan_period_ns: int = 0

    @property
    def plan_rows(self) -> int:
        """m, the plan's rows (0 without a plan)."""
        return 0 if self.plan is None else int(self.plan.shape[0])


def action_command_msg(cmd: Command) -> ActionCommand:
    return ActionCommand(
        header=header(cmd.stamp_ns, cmd.frame_id),
        action=_f32(cmd.action),
        policy_version=int(cmd.policy_version),
        candidate_index=int(cmd.candidate_index),
        is_edited=bool(cmd.is_edited),
        safety_modified=bool(cmd.safety_modified),
        hold=bool(cmd.hold),
        hold_reason=cmd.hold_reason,
        episode=int(cmd.episode),
        step=int(cmd.step),
        plan=_f32(_plan_rows(cmd.plan, len(cmd.action))),
        plan_period_ns=int(cmd.plan_period_ns) if cmd.plan_rows else 0,
    )


def _plan_rows(plan: np.ndarray | Sequence[float] | None, action_dim: int) -> np.ndarray:
    """The plan as (m, action_dim) float32 (m = 0 for None); ValueError on another width."""
    if plan is None:
        return np.zeros((0, action_dim), np.float32)
    rows = np.asarray(plan, dtype=np.float32)
    if rows.ndim == 1 and action_dim and rows.size % action_dim == 0:
        rows = rows.reshape(-1, action_dim)
    if rows.ndim != 2 or rows.shape[1] != action_dim:
        raise ValueError(
            f"ActionCommand plan must be m x {action_dim} values (rows of the action's size), "
            f"got shape {tuple(np.shape(plan))}"
        )
    return rows


def action_command_to_numpy(msg: ActionCommand) -> Command:
    """Decode; the flat ``plan`` becomes (m, action_dim) rows (None when empty); ValueError
    when its length is not a multiple of the action's."""
    plan = _plan_rows(_np32(msg.plan), len(msg.action)) if len(msg.plan) else None
    return Command(
        action=_np32(msg.action),
        stamp_ns=stamp_ns(msg.header.stamp),
        policy_version=msg.policy_version,
        candidate_index=msg.candidate_index,
        is_edited=msg.is_edited,
        safety_modified=msg.safety_modified,
        hold=msg.hold,
        hold_reason=msg.hold_reason,
        episode=msg.episode,
        step=msg.step,
        frame_id=msg.header.frame_id,
        plan=plan,
        plan_period_ns=msg.plan_period_ns if plan is not None else 0,
    )


# --- env_feedback: expo_interfaces/EnvFeedback --------------------------------------------------
def env_feedback_msg(fb: Feedback) -> EnvFeedback:
    return EnvFeedback(
        header=header(fb.stamp_ns),
        reward=float(fb.reward),
        terminated=bool(fb.terminated),
        truncated=bool(fb.truncated),
        success=bool(fb.success),
        episode=int(fb.episode),
        step=int(fb.step),
        applied_action=_f32(np.zeros(0, np.float32) if fb.applied_action is None else fb.applied_action),
    )


def env_feedback_to_numpy(msg: EnvFeedback) -> Feedback:
    return Feedback(
        applied_action=_np32(msg.applied_action) if len(msg.applied_action) else None,
        episode=msg.episode,
        step=msg.step,
        reward=float(msg.reward),
        terminated=msg.terminated,
        truncated=msg.truncated,
        success=msg.success,
        stamp_ns=stamp_ns(msg.header.stamp),
    )


# --- transitions: expo_interfaces/Transition ----------------------------------------------------
def transition_msg(t: TransitionData, source: str) -> Transition:
    """``t.images`` and ``t.next_images`` must hold sensor_msgs/Image messages (passed through)."""
    return Transition(
        header=header(t.stamp_ns),
        obs=_f32(t.obs),
        action=_f32(t.action),
        reward=float(t.reward),
        next_obs=_f32(t.next_obs),
        terminated=bool(t.terminated),
        truncated=bool(t.truncated),
        episode=int(t.episode),
        step=int(t.step),
        policy_version=int(t.policy_version),
        intervention=bool(t.intervention),
        source=source,
        images=list(t.images),
        next_images=list(t.next_images),
    )


def transition_to_numpy(msg: Transition) -> TransitionData:
    """Also decodes messages of older Transition definitions (bags keep their own schema: a
    reader builds the type from it): without an ``intervention`` field the flag is False, without
    ``next_images`` there are none."""
    return TransitionData(
        obs=_np32(msg.obs),
        action=_np32(msg.action),
        reward=float(msg.reward),
        next_obs=_np32(msg.next_obs),
        terminated=msg.terminated,
        truncated=msg.truncated,
        episode=msg.episode,
        step=msg.step,
        policy_version=msg.policy_version,
        stamp_ns=stamp_ns(msg.header.stamp),
        images=tuple(msg.images),
        intervention=bool(getattr(msg, "intervention", False)),
        next_images=tuple(getattr(msg, "next_images", ())),
    )


# --- teleop: expo_interfaces/TeleopCommand ------------------------------------------------------
@dataclass(frozen=True)
class TeleopState:
    """A decoded TeleopCommand (see the message): the operator's claim and action.

    ``action``: float32 ``(A,)`` normalized (OSC_POSE deltas + gripper), empty or zeros when
    ``valid`` is False; ``stamp_ns``: the header stamp (when the input was read).
    """

    stamp_ns: int
    deadman: bool
    valid: bool
    action: np.ndarray
    reason: str = ""
    device: str = ""


def teleop_msg(t: TeleopState) -> TeleopCommand:
    return TeleopCommand(
        header=header(t.stamp_ns),
        deadman=bool(t.deadman),
        valid=bool(t.valid),
        action=_f32(t.action),
        reason=t.reason,
        device=t.device,
    )


def teleop_to_numpy(msg: TeleopCommand) -> TeleopState:
    return TeleopState(
        stamp_ns=stamp_ns(msg.header.stamp),
        deadman=bool(msg.deadman),
        valid=bool(msg.valid),
        action=_np32(msg.action),
        reason=msg.reason,
        device=msg.device,
    )


# --- joy: sensor_msgs/Joy (spacenav, joy, the keyboard tool) ------------------------------------
@dataclass(frozen=True)
class JoyInput:
    """A decoded sensor_msgs/Joy: ``axes`` ``(n,)`` float64 as sent (NaN passes through: the
    mapping rejects it), ``buttons`` ``(m,)`` int64, ``stamp_ns`` the header stamp."""

    stamp_ns: int
    axes: np.ndarray
    buttons: np.ndarray


def joy_to_numpy(msg: Joy) -> JoyInput:
    return JoyInput(
        stamp_ns=stamp_ns(msg.header.stamp),
        axes=np.asarray(msg.axes, dtype=np.float64).reshape(-1),
        buttons=np.asarray(msg.buttons, dtype=np.int64).reshape(-1),
    )


def joy_msg(axes: Sequence[float], buttons: Sequence[int], ns: int, frame_id: str = "") -> Joy:
    return Joy(
        header=header(ns, frame_id),
        axes=[float(a) for a in axes],
        buttons=[int(b) for b in buttons],
    )


# --- otf_decision: expo_interfaces/OtfDecision --------------------------------------------------
def otf_decision_msg(
    candidates: np.ndarray, q: np.ndarray, chosen: int, latency_ms: float, policy_version: int, ns: int
) -> OtfDecision:
    """``candidates (K, d)``, ``q (K,)``; ``latency_ms`` of the whole selection."""
    cand = np.asarray(candidates, dtype=np.float32)
    if cand.ndim != 2 or np.shape(q) != (cand.shape[0],):
        raise ValueError(f"candidates {cand.shape} and q {np.shape(q)} must be (K, d) and (K,)")
    return OtfDecision(
        header=header(ns),
        candidates=_f32(cand),
        num_candidates=cand.shape[0],
        action_dim=cand.shape[1],
        q_values=_f32(q),
        chosen_index=int(chosen),
        inference_latency_ms=float(latency_ms),
        policy_version=int(policy_version),
    )


def otf_decision_to_numpy(msg: OtfDecision) -> tuple[np.ndarray, np.ndarray, int, float, int]:
    """-> (candidates ``(K, d)``, q ``(K,)``, chosen index, latency ms, policy version)."""
    cand = _np32(msg.candidates).reshape(msg.num_candidates, msg.action_dim)
    return cand, _np32(msg.q_values), msg.chosen_index, msg.inference_latency_ms, msg.policy_version


# --- policy_weights: expo_interfaces/PolicyWeights ----------------------------------------------
@dataclass(frozen=True)
class WeightsPayload:
    """A decoded PolicyWeights message; ``data`` the safetensors bytes, ``sha256`` lowercase hex."""

    version: int
    data: bytes
    sha256: str
    format: str
    training_step: int = 0
    config_json: str = ""


def policy_weights_msg(w: WeightsPayload, ns: int = 0) -> PolicyWeights:
    return PolicyWeights(
        header=header(ns),
        version=int(w.version),
        training_step=int(w.training_step),
        format=w.format,
        config_json=w.config_json,
        sha256=w.sha256,
        data=w.data,
    )


def policy_weights_to_numpy(msg: PolicyWeights) -> WeightsPayload:
    return WeightsPayload(
        version=msg.version,
        data=bytes(msg.data),
        sha256=msg.sha256.lower(),
        format=msg.format,
        training_step=msg.training_step,
        config_json=msg.config_json,
    )


# --- learner_stats: expo_interfaces/LearnerStats -----------------------------------------------
@dataclass(frozen=True)
class LearnerStatsData:
    """A decoded LearnerStats message (see the message for field meanings).

    ``training_step``: critic gradient steps so far; ``achieved_utd``: critic steps per received
    transition; ``updates_per_second``: critic steps per wall-clock second; ``scalars``: the
    flat named stats (losses, alpha, Q, buffer sizes, per-source counts), in message order.
    """

    stamp_ns: int
    training_step: int
    env_steps_received: int
    buffer_size: int
    achieved_utd: float
    updates_per_second: float
    weights_version: int
    scalars: dict[str, float]


def learner_stats_msg(s: LearnerStatsData) -> LearnerStats:
    """Values are sent as float32 (a count above 2**24 loses its last digits in ``scalars``)."""
    return LearnerStats(
        header=header(s.stamp_ns),
        training_step=int(s.training_step),
        env_steps_received=int(s.env_steps_received),
        buffer_size=int(s.buffer_size),
        achieved_utd=float(s.achieved_utd),
        updates_per_second=float(s.updates_per_second),
        weights_version=int(s.weights_version),
        names=[str(k) for k in s.scalars],
        values=_f32(np.fromiter(s.scalars.values(), dtype=np.float64, count=len(s.scalars))),
    )


def learner_stats_to_numpy(msg: LearnerStats) -> LearnerStatsData:
    values = _np32(msg.values)
    if len(values) != len(msg.names):
        raise ValueError(f"LearnerStats has {len(msg.names)} names but {len(values)} values")
    return LearnerStatsData(
        stamp_ns=stamp_ns(msg.header.stamp),
        training_step=msg.training_step,
        env_steps_received=msg.env_steps_received,
        buffer_size=msg.buffer_size,
        achieved_utd=float(msg.achieved_utd),
        updates_per_second=float(msg.updates_per_second),
        weights_version=msg.weights_version,
        scalars={str(k): float(v) for k, v in zip(msg.names, values)},
    )


# --- diagnostics: diagnostic_msgs/DiagnosticArray -----------------------------------------------
def diagnostics_msg(
    ns: int,
    name: str,
    level: bytes,
    message: str,
    values: Mapping[str, float | int | str | bool],
    hardware_id: str = "expo_policy",
) -> DiagnosticArray:
    """One status; ``level`` is DiagnosticStatus.OK / WARN / ERROR / STALE (a 1-byte bytes);
    floats written with 4 significant digits, bools as true/false."""

    def fmt(v: float | int | str | bool) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=fmt(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=header(ns), status=[status])


def diagnostics_values(msg: DiagnosticArray) -> dict[str, str]:
    """The key/values of every status, merged (later statuses win)."""
    return {kv.key: kv.value for st in msg.status for kv in st.values}
