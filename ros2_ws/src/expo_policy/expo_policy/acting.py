"""The acting half of :class:`~expo_policy.policy_node.PolicyNode`: when it decides, the decision,
the hold.

Triggers: ``_on_timer`` (``trigger: timer``: a decision on the latest pieces each period;
``trigger: observation``: the watchdog only, holding while an input is stale or no complete set
comes), ``_lockstep_act`` (lockstep: the pending set once the previous command's feedback and,
with interventions, the teleop answer have come, bounded in wall time). ``_control_step`` is one
decision: watchdog -> observation -> arbiter -> backend -> deadline -> safety filter ->
ActionCommand + OtfDecision + markers + the step for the transition assembler; anything wrong is
a ``_hold`` (zero motion, gripper kept) saying why. docs/policy_node.md describes the behaviour.

A mixin, not a class of its own: every method reads and advances the node's loop state (set up
in ``PolicyNode._create_entities`` and ``_reset_loop_state``), publishes on its lifecycle
publishers and logs through its logger, and subclasses override ``_control_step``
(``expo_sim.ros.expert_policy_node``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from expo_ros import conversions as cv
from expo_ros.transitions import StepRecord

from .camera_inputs import PixelObservationInputs
from .inputs import Pieces
from .intervention import Mode
from .markers import clear_markers, decision_markers
from .plan import command_plan
from .safety import filter_action, hold_action


class ActingMixin:
    """The control loop's decisions and holds; mixed into the policy node (see the module docstring)."""

    def _on_timer(self) -> None:
        if self._draining:  # stopping (begin_drain): the hold is out, nothing more is decided
            return
        if self.cfg.trigger == "timer":
            self._control_step(self._inputs.latest, None)
            return
        # trigger observation: decisions follow the observations; the timer only holds when they stop
        now_ns = self._now_ns()
        status = self._watchdog.check(now_ns * 1e-9)
        if not status.ok:
            self.counts["watchdog_holds"] += 1
            return self._hold("stale_input", status.reason.removeprefix("hold: "), now_ns)
        last = self._last_set_ns
        if last is None or (now_ns - last) * 1e-9 > self.cfg.obs_max_age_s:
            age = "none yet" if last is None else f"the newest is {(now_ns - last) * 1e-9:.3f} s old"
            self.counts["watchdog_holds"] += 1
            detail = f"{age} (> {self.cfg.obs_max_age_s:g} s): input stamps never coincide?"
            if isinstance(self._inputs, PixelObservationInputs):  # say which camera or piece
                res = self._inputs.build(self._inputs.latest, now_ns * 1e-9)
                if not res.ok:
                    return self._hold("bad_observation", res.reason, now_ns)
            return self._hold("no_synchronized_observation", detail, now_ns)

    def _lockstep_act(self) -> None:
        if not (self.cfg.lockstep and self.active) or self._pending_set is None or self._draining:
            return
        if self._awaiting is not None and self._feedback_sub.get_publisher_count() > 0:
            waited = time.monotonic() - self._awaiting_since
            if waited <= self.cfg.feedback_timeout_s:
                return  # the previous command's step has not been reported yet
            self.counts["feedback_timeouts"] += 1
            self.get_logger().warning(
                f"no feedback for command {self._awaiting[0]}/{self._awaiting[1]} after {waited:.1f} s "
                "while a newer observation waits: acting without it"
            )
            self._awaiting = None
        ns, pieces = self._pending_set
        if ns <= self._done_stamp_ns:
            self._pending_set = None
            return  # the terminal observation of a finished episode: next_obs only, no action
        if self._awaiting_teleop(ns):
            return
        self._pending_set = None
        self._control_step(pieces, ns)

    def _awaiting_teleop(self, ns: int) -> bool:
        """Lockstep: whether the observation stamped ``ns`` still waits (bounded, wall time) for the
        TeleopCommand answering it; only while a teleop publisher is present."""
        arb = self.arbiter
        if arb is None or arb.answered(ns) or self._teleop_sub.get_publisher_count() == 0:
            self._teleop_wait = None
            return False
        if self._teleop_wait is None or self._teleop_wait[0] != ns:
            self._teleop_wait = (ns, time.monotonic())
        waited = time.monotonic() - self._teleop_wait[1]
        if waited <= self.cfg.intervention_lockstep_wait_s:
            return True
        self.counts["teleop_timeouts"] += 1
        self.get_logger().warning(
            f"no teleop answer to the observation after {waited:.1f} s: acting without it"
        )
        self._teleop_wait = None
        self._teleop_unanswered_ns = ns
        return False

    def _control_step(self, pieces: Pieces, set_ns: int | None) -> None:
        """One decision; ``set_ns``: the lockstep observation's stamp (None in timer mode)."""
        t0, t0_ns = time.perf_counter(), time.monotonic_ns()
        self._commit_weights()
        now_ns = self._now_ns()
        now = now_ns * 1e-9
        self._latency.tick(now)
        if set_ns is not None or pieces:
            observed = set_ns if set_ns is not None else self._inputs.stamp_ns(pieces)
            self._obs_age.record(max(now_ns - observed, 0) * 1e-9)
        stamp = set_ns if set_ns is not None else now_ns
        status = self._watchdog.check(now)
        if not status.ok:
            return self._hold("stale_input", status.reason.removeprefix("hold: "), stamp)
        res = self._inputs.build(pieces, now)
        if not res.ok:
            return self._hold("bad_observation", res.reason, stamp)
        stamp = set_ns if set_ns is not None else self._inputs.stamp_ns(pieces)
        self._trace.mark("decide", stamp, t0_ns)
        arb = None
        if self.arbiter is not None:
            unanswered = ""
            if set_ns is not None and set_ns == self._teleop_unanswered_ns:  # lockstep wait gave up
                wait = self.cfg.intervention_lockstep_wait_s
                unanswered = f"teleop stream lost: no answer to this observation within {wait:g} s"
            arb = self.arbiter.arbitrate(now_ns, unanswered)
            if arb.mode is Mode.HOLD:
                return self._hold("teleop", arb.reason, stamp)
        dec = None
        if arb is None or arb.needs_policy:
            try:
                self._trace.mark("infer_start", stamp)
                t_inf = time.perf_counter()
                dec = self.backend.decide(res.obs)
                self._trace.mark("infer_end", stamp)
                # OtfDecision's field: the selection, and a pixel policy's frames encoded on arrival
                inference_ms = (time.perf_counter() - t_inf) * 1e3 + dec.ahead_ms
            except Exception as e:  # a crash in inference must still end in a hold
                return self._hold("inference_error", f"{type(e).__name__}: {e}", stamp)
        elapsed = time.perf_counter() - t0
        if elapsed > self.cfg.deadline_s and not self.cfg.lockstep:
            self._latency.record(elapsed)
            budget = f"{elapsed * 1e3:.1f} ms > budget {self.cfg.deadline_ms:g} ms"
            return self._hold("inference_late", budget, stamp)
        ee = pieces[self._inputs.ee_piece]
        ee_pos, frame = ee[1][0], ee[2]
        # The operator's action and a hand-back blend go through the same filter as the policy's.
        proposal = dec.action if arb is None else arb.proposal(None if dec is None else dec.action)
        safe = filter_action(proposal, self._prev_action, ee_pos, self.cfg.safety)
        if safe.rejected:
            return self._hold("safety_rejected", "; ".join(safe.reasons), stamp)
        plan, plan_period_ns = command_plan(dec, proposal, safe.action, ee_pos, self.cfg)  # chunks
        n = self.backend.num_base_samples
        version = self.weights_version
        cmd = cv.Command(
            action=safe.action,
            stamp_ns=stamp,
            policy_version=version,
            candidate_index=-1 if dec is None else dec.index,  # -1: the operator's, no candidate
            is_edited=dec is not None and dec.index >= n,
            safety_modified=safe.modified,
            episode=self._episode,
            step=self._step,
            frame_id=frame,
            plan=plan,
            plan_period_ns=plan_period_ns,
        )
        self._trace.mark("action_publish", stamp)
        self._pubs["action"].publish(cv.action_command_msg(cmd))
        self._trace.mark("action_out", stamp)
        latency_s = time.perf_counter() - t0
        if dec is not None:
            self._pubs["otf_decision"].publish(
                cv.otf_decision_msg(dec.candidates, dec.q, dec.index, inference_ms, version, stamp)
            )
        if self.cfg.publish_markers and dec is not None:
            self._marker_anchor = (frame, np.asarray(ee_pos, dtype=np.float64))
        if dec is not None and self._markers_wanted():
            self._pubs["markers"].publish(
                decision_markers(
                    stamp,
                    frame,
                    ee_pos,
                    dec.candidates,
                    n,
                    dec.index,
                    safe.action,
                    self.cfg.safety.pos_scale,
                )
            )
        self._latency.record(latency_s)
        if self.cfg.publish_transitions:
            obs, images = self._transition_obs(res.obs, pieces)
            if not images and self._fresh_image(now):
                images = (self._image,)
            flag = arb is not None and arb.intervention
            record = StepRecord(self._episode, self._step, obs, safe.action, version, stamp, images, flag)
            self._assembler.add_step(record)
            self._last_decided = (record.episode, record.step)
        if self.last_hold_reason:
            self.get_logger().info(f"acting again after hold ({self.last_hold_reason})")
            self.last_hold_reason = ""
        self.counts["actions"] += 1
        self._advance(safe.action)

    def _markers_wanted(self) -> bool:
        """``publish_markers`` and something subscribes to ``markers`` (RViz, a Foxglove client):
        with no viewer, building and publishing the MarkerArray would only take CPU from the loop."""
        return self.cfg.publish_markers and self._pubs["markers"].get_subscription_count() > 0

    def _transition_obs(self, obs: Any, pieces: Pieces) -> tuple[np.ndarray, tuple]:
        """(obs, camera messages) as transitions carry them: a pixel policy's proprio + its frames."""
        if isinstance(self._inputs, PixelObservationInputs):
            return self._inputs.proprio(obs), self._inputs.images(pieces)
        return obs, ()

    def _fresh_image(self, now: float) -> bool:
        age = self._watchdog.age("image_raw", now)
        return self._image is not None and age is not None and age <= self.cfg.watchdog_max_age_s["image_raw"]

    def _hold(self, code: str, detail: str, stamp: int) -> None:
        """Publish the hold command (zero motion, gripper kept) and say why, loudly."""
        reason = f"{code}: {detail}" if detail else code
        action = hold_action(self._prev_action, self.cfg.safety.action_dim)
        frame = self._inputs.frame(self._inputs.ee_piece)
        cmd = cv.Command(
            action=action,
            stamp_ns=stamp,
            policy_version=self.weights_version,
            hold=True,
            hold_reason=reason,
            episode=self._episode,
            step=self._step,
            frame_id=frame,
        )
        self._pubs["action"].publish(cv.action_command_msg(cmd))
        if self._markers_wanted():
            self._pubs["markers"].publish(clear_markers(stamp, frame))
        if reason != self.last_hold_reason:
            self.get_logger().warning(f"hold: {reason}")
        else:
            self.get_logger().warning(f"still holding: {reason}", throttle_duration_sec=2.0)
        self.last_hold_reason = reason
        self.counts["holds"] += 1
        self._advance(action)

    def _advance(self, sent: np.ndarray) -> None:
        self._prev_action = sent
        if self.arbiter is not None:
            self.arbiter.on_sent(sent)  # the hand-back's anchor (a hold too)
        self._awaiting = (self._episode, self._step)
        self._awaiting_since = time.monotonic()
        self._step += 1

    def _publish_transitions(self, done: list) -> None:
        for t in done:
            self._pubs["transitions"].publish(cv.transition_msg(t, self.get_fully_qualified_name()))
            self.counts["transitions"] += 1
