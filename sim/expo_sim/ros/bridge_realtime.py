"""The realtime half of :class:`~expo_sim.ros.bridge_node.SimBridge` (``realtime: true``):
physics on wall time, one chunk of a control period per boundary, commands taking effect when
they arrive.

``_on_tick`` (a wall timer at the chunk rate) runs every chunk boundary whose wall time has
passed (``_boundary``): the chunk's physics (:class:`~expo_sim.envs.substep_physics.SubstepPhysics`)
and sim time; at a period's end the observation, the feedback and the episode's end or reset
(``_period_end``); then the commands that have arrived
(:class:`~expo_sim.ros.bridge_protocol.RealtimeInbox`, after the injected delay of
``_injected_delay_s``) take effect (``_take_arrivals``) or, without one, the row of the commands'
plan due now (``_apply_plan``). The protocol: :mod:`expo_sim.ros.bridge_protocol`.

Cameras (``observation.kind: pixels``, or ``camera.enabled``) render off the physics' thread: a
period's end publishes the proprioception and captures the state
(:meth:`~expo_sim.envs.robosuite_env.RobomimicEnv.frames_in_background`); a worker thread renders
it and publishes each frame with the observation's stamp as soon as it is rendered
(``_on_background_frame``), while the chunks go on. A state captured while the worker is busy
waits; a newer one replaces it (``frame_sets_dropped`` in the diagnostics), as a camera that cannot
keep up skips frames.

A mixin, not a class of its own: every method reads and advances the node's period state (set up
in ``SimBridge.on_configure`` and ``on_activate``), drives its physics and publishes through its
lifecycle publishers (``_tick_clock``, ``_publish_obs``, ``_publish_feedback``, ``_end_episode``).
"""

from __future__ import annotations

import time

import numpy as np
from expo_policy.safety import hold_action
from expo_ros import conversions as cv


class RealtimeMixin:
    """Realtime chunks, period ends and arrivals; mixed into the sim bridge (see the module docstring)."""

    def _injected_delay_s(self) -> float:
        c = self.cfg
        jitter = 0.0
        if c.injected_jitter_ms:
            jitter = self._rng.uniform(-c.injected_jitter_ms, c.injected_jitter_ms)
        stall = 0.0
        if c.stall_probability and self._rng.random() < c.stall_probability:
            stall = c.stall_ms
            self.stats.stalled += 1
        return max(c.injected_latency_ms + jitter, 0.0) * 1e-3 + stall * 1e-3

    def _on_tick(self) -> None:
        """Realtime, wall timer at the chunk rate: every chunk boundary whose wall time has passed,
        in order (late ones caught up, at most one period per call; beyond that the bridge skips
        ahead and counts an overrun, so sim time falls behind wall time by that much)."""
        if self.finished:
            return
        now = time.monotonic()
        chunk_s = self.cfg.chunk_ns * 1e-9
        done = 0
        while self._next_wall <= now and not self.finished:
            if done >= self.cfg.substeps:
                self.stats.overruns += 1
                self._next_wall = now + chunk_s
                break
            t0 = time.monotonic()
            self._boundary(self._next_wall)
            self.stats.timing(time.monotonic() - t0)
            self._next_wall += chunk_s
            done += 1

    def _boundary(self, wall: float) -> None:
        """The chunk that ended at wall time ``wall``: its physics (when stepping), sim time, the
        period's end (observation, feedback, episode end or reset), then the commands that have
        arrived take effect from here on."""
        result = self._physics.chunk() if self._mode == "step" else None
        period_end = (self._chunk + 1) % self.cfg.substeps == 0
        ns = self._tick_clock(self.cfg.chunk_ns, publish=period_end or self.cfg.clock_every_substep)
        self._chunk = (self._chunk + 1) % self.cfg.substeps
        if self._chunk == 0:
            self._period_end(ns, result, wall)
            if self.finished:
                return
        elif self.cfg.ee_pose_every_substep:  # the pose between observations (the arm moves on)
            pos, quat = self._physics.ee_pose()
            self._pubs["ee_pose"].publish(cv.pose_stamped_msg(pos, quat, ns, self.cfg.frame_id))
            self._note_published(ns)
        if self._mode == "step":
            self._take_arrivals(wall, ns)

    def _max_age_ns(self) -> int:
        return round(self.cfg.max_action_age_ms * 1e6)

    def _period_end(self, ns: int, result: tuple | None, wall: float) -> None:
        if self._mode == "step":
            step = self._stepped(result)
            if not self._new_in_period:  # no new command: a plan row filled the period, or a hold
                self.stats.plan_periods += int(self._plan_in_period)
                self.stats.own_holds += int(not self._plan_in_period)
            self._new_in_period = self._plan_in_period = False
            self._publish_obs(ns)
            applied = self._physics.action if self._applied_other else None
            self._publish_feedback(ns, step, self._last_indices, applied)
            if step[1] or step[2]:
                self._mode = "reset"  # the next period resets the env
                self._end_episode(step[3])
            return
        if self._mode == "reset":
            self._reset_env()
            self._mode = "idle"
        self._publish_obs(ns)
        first = self._episode_first_ns if self._episode_first_ns is not None else ns
        if self._inbox.ready(wall, ns, self._max_age_ns(), first) and self._learner_ready("episode 0"):
            self._mode = "step"  # a command for this episode (wait_for_learner: the learner is there)

    def _take_arrivals(self, wall: float, ns: int) -> None:
        first = self._episode_first_ns if self._episode_first_ns is not None else ns
        arrival = self._inbox.take(wall, ns, self._max_age_ns(), first)
        if arrival is None:
            self._apply_plan(ns)
            return
        cmd = arrival.cmd
        self._new_in_period = True
        self._last_indices = (cmd.episode, cmd.step)
        self._cmd_seen = max(self._cmd_seen or self._last_indices, self._last_indices)
        self.stats.took_effect(arrival.age_ns)
        self.stats.holds += int(cmd.hold)
        action = None if cmd.hold else self._checked(cmd)
        self._applied_other = False
        if self.cfg.plan.mode != "off":  # off: exactly as before plans existed
            planned = self._plan.command(cmd, ns) if action is not None else self._plan.reset()
            if planned is not None and action is not None:  # ensemble: the blend, clipped
                self._applied_other = not np.array_equal(planned, cmd.action)
                action = np.clip(planned, -1.0, 1.0) if self._applied_other else action
        anchor = None
        if action is None:  # hold (or refused): stop where the arm is, gripper command kept
            action = hold_action(self._physics.action, self.env.action_space.shape[0])
        elif self.cfg.anchor_deltas and not self._applied_other:  # the pose it was decided at
            anchor = self._pose_at(cmd.stamp_ns)
        self._physics.set_action(action, anchor=anchor)
        self._prev_action = self._physics.action

    def _on_background_frame(self, ns: int, camera: str, frame: np.ndarray) -> None:
        """A frame worker's thread (:class:`~expo_sim.envs.background_frames.BackgroundFrames`,
        realtime with cameras): ``camera``'s frame of the observation stamped ``ns``, published as
        soon as it is rendered."""
        self._pubs[self._frame_topic(camera)].publish(cv.image_msg(frame, ns, camera, "rgb8"))

    def _capture_frames(self, ns: int) -> None:
        """Hand the state just published (stamped ``ns``) to the render threads. If they have
        failed (a GL error), say so once and go on without frames: a pixel policy then holds,
        saying a camera is missing."""
        if self._frames_failed:
            return
        try:
            self._background.capture(ns)
        except RuntimeError as e:
            self._frames_failed = True
            self.get_logger().error(f"camera frames stopped: {e}; the physics goes on without them")

    def _on_background_done(self, ns: int) -> None:
        """Every frame of the observation stamped ``ns`` is out: with pixel cameras the
        observation is complete, and the round trip (obs -> action) starts here, as in lockstep."""
        if self.cfg.cameras:
            with self._published_lock:
                if ns in self._published:
                    self._published[ns] = time.monotonic()

    def _pose_at(self, stamp_ns: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The ee pose published at ``stamp_ns`` or, for a command stamped between two (the Franka
        emulator's re-aim, 1 ns after the pose it starts from), the newest before it within one
        control period; None if there is none."""
        for s in reversed(self._poses):
            if s <= stamp_ns:
                return self._poses[s] if stamp_ns - s < self.cfg.period_ns else None
        return None

    def _apply_plan(self, ns: int) -> None:
        """No new command at this chunk boundary: the plan's row (or blend) due now, if any
        (plan_mode receding / ensemble); the period then counts as filled from a plan."""
        planned = self._plan.due(ns)
        if planned is None:
            return
        self._plan_in_period = self._applied_other = True
        self._physics.set_action(np.clip(planned, -1.0, 1.0))
        self._prev_action = self._physics.action
