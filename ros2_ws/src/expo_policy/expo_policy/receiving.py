"""The receiving half of :class:`~expo_policy.policy_node.PolicyNode`: the input callbacks.

Each observation piece (joint states of the arm's joints, end-effector pose, object poses,
camera frames, each frame encoded on arrival with ``observation.encode_on_arrival``) is marked
for the watchdog and stored (``_store``) in the node's observation inputs
(:mod:`expo_policy.inputs`, :mod:`expo_policy.camera_inputs`). What a complete set releases
(:mod:`expo_policy.acting`): lockstep, a decision once the previous command's feedback (and,
with interventions, the teleop answer) is in; with ``trigger: observation`` a decision at once,
unless the set came a whole observation interval late or a stop is draining; with ``trigger:
timer`` nothing (the timer decides on the latest pieces). The feedback and teleop callbacks
release what waits for them. The transition bookkeeping an input triggers comes after the
decision it releases. docs/policy_node.md describes the behaviour.

A mixin, not a class of its own: it reads and advances the node's loop state (set up in
``PolicyNode._create_entities`` and ``_reset_loop_state``), as :mod:`expo_policy.acting` does.
"""

from __future__ import annotations

import time
from typing import Any

from expo_interfaces.msg import EnvFeedback, TeleopCommand
from expo_ros import conversions as cv
from geometry_msgs.msg import PoseArray, PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header

from .camera_setup import frame_from_image

#: Observation stamps whose first piece's arrival (node time) is remembered (the skip rule in
#: _store): every stamp of every input counts, so with a 1 kHz joint state this is ~4 s.
_FIRST_SEEN_KEPT = 4096


class ReceivingMixin:
    """The input callbacks; mixed into the policy node (see the module docstring)."""

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_joint_states(self, msg: JointState) -> None:
        names, pos = cv.joint_state_to_numpy(msg)
        if self._inputs.accepts_joint_state(names):
            self._store("joint_states", msg.header, (names, pos))

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        self._store("ee_pose", msg.header, cv.pose_stamped_to_numpy(msg))

    def _on_ee_pose_base(self, msg: PoseStamped) -> None:
        self._store("ee_pose_base", msg.header, cv.pose_stamped_to_numpy(msg))

    def _on_camera(self, key: Any, msg: Image) -> None:
        t_in = time.monotonic_ns()  # the step trace's arrival: before decoding and encoding
        frame = frame_from_image(key, msg, self._now_ns() * 1e-9)
        if frame.ok and self.active and self.cfg.encode_on_arrival:
            self._encode_ahead(frame)
        self._store(key.camera, msg.header, frame, t_in)

    def _encode_ahead(self, frame: Any) -> None:
        """The frame's features now, while the observation's other pieces are on their way (the
        decision then runs only what follows the encoder); a failure here only logs: the
        decision encodes the frame itself and holds with the reason if it cannot."""
        try:
            if self.backend.encode_ahead(frame.camera, frame.pixels):
                self.counts["frames_encoded_on_arrival"] += 1
        except Exception as e:
            self.get_logger().warning(
                f"encoding {frame.camera}'s frame on arrival failed ({type(e).__name__}: {e}); "
                "the decision encodes it",
                throttle_duration_sec=5.0,
            )

    def _on_object_poses(self, msg: PoseArray) -> None:
        self._store("object_poses", msg.header, cv.pose_array_to_numpy(msg))

    def _on_image(self, msg: Image) -> None:
        self._image = msg
        self._watchdog.mark("image_raw", self._now_ns() * 1e-9)

    def _store(self, name: str, header: Header, payload: Any, t_in: int | None = None) -> None:
        self.messages_in += 1
        self._watchdog.mark(name, self._now_ns() * 1e-9)
        ns = cv.stamp_ns(header.stamp)
        if self._trace.enabled:  # the event's name is built only when tracing
            self._trace.mark(f"in:{name}", ns, t_in)
        if ns not in self._first_seen:
            self._first_seen[ns] = self._now_ns()
            while len(self._first_seen) > _FIRST_SEEN_KEPT:
                self._first_seen.popitem(last=False)
        pieces = self._inputs.add(name, ns, payload, header.frame_id)
        if pieces is None or not self.active:
            return
        # The set's stamp: its newest piece's (exact sets: every piece's; a pixel set pairs pieces of
        # one moment, which need not be the moment of the piece that completed it).
        ns = max(p[0] for p in pieces.values())
        interval = ns - self._last_set_ns if self._last_set_ns is not None else 0
        self._last_set_ns = ns
        now_ns = self._now_ns()
        res = None
        try:
            if self.cfg.lockstep:
                self._pending_set = (ns, pieces)
                self._lockstep_act()
            elif self.cfg.trigger == "observation" and not self._draining:
                res = self._inputs.build(pieces, now_ns * 1e-9)
                if res.ok and interval > 0 and self._first_seen.get(ns, now_ns) - ns >= interval:
                    # Its first piece came a whole observation interval late: the next set was out
                    # by then (behind on a loaded machine); deciding on this one would only answer
                    # it later still. The time its frames take to follow (camera latency) does not
                    # count. A bad observation is never skipped: it must end in a hold with its reason.
                    self.counts["observation_sets_skipped"] += 1
                    return
                self._control_step(pieces, ns)
        finally:
            # The transition bookkeeping this observation triggers comes after the decision it
            # releases: building its copy for the learner and serializing the transitions it
            # completes (a pixel policy's carry four camera frames) stay off the obs -> action path.
            if self.cfg.publish_transitions:
                if res is None:
                    res = self._inputs.build(pieces, now_ns * 1e-9)
                if res.ok:
                    obs, images = self._transition_obs(res.obs, pieces)  # a pixel policy's: next_images
                    self._publish_transitions(self._assembler.add_observation(ns, obs, images))

    def _on_feedback(self, msg: EnvFeedback) -> None:
        self.messages_in += 1
        fb = cv.env_feedback_to_numpy(msg)
        self._trace.mark("feedback_in", fb.stamp_ns)
        self._watchdog.mark("env_feedback", self._now_ns() * 1e-9)
        if not self.active:
            return
        if self._awaiting is not None and (
            (fb.episode, fb.step) >= self._awaiting or (fb.done and fb.episode >= self._awaiting[0])
        ):
            self._awaiting = None  # that step was reported, or its episode ended (no step will come)
        if fb.done and fb.episode >= self._episode:
            self._episode, self._step = fb.episode + 1, 0
            self._done_stamp_ns = fb.stamp_ns
            if self.arbiter is not None:
                self.arbiter.reset()  # a hand-back blend ends with its episode
        try:
            self._lockstep_act()
        finally:  # after the decision this feedback released (as in _store)
            if self.cfg.publish_transitions:
                self._publish_transitions(self._assembler.add_feedback(fb))

    def _on_teleop(self, msg: TeleopCommand) -> None:
        self.arbiter.on_teleop(cv.teleop_to_numpy(msg), self._now_ns())
        self._lockstep_act()  # the answer an observation may be waiting for
