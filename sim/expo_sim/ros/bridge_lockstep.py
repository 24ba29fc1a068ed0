"""The lockstep half of :class:`~expo_sim.ros.bridge_node.SimBridge` (``realtime: false``): the
first observation once a policy is there, one env step per answered observation, timeouts,
learner pacing.

``_on_watch`` (a wall timer) publishes the first observation once a policy subscribes to the
observation topics and publishes on ``action`` (and, with ``wait_for_learner``, once the learner
has reported: it is active and subscribed to the transitions), and re-publishes the current state with a new
stamp when no command answers it within ``action_timeout_s``. ``_lockstep_step`` applies a
command the :class:`~expo_sim.ros.bridge_protocol.LockstepGate` accepted: one env step (a hold:
none) and one control period of sim time, then the step's feedback and the observation (with
cameras: the proprioception, then each frame as soon as it is rendered), and at an episode's
end the reset (none after the last). With ``learner_pacing_backlog`` a command waits
while the learner lags (:class:`~expo_sim.ros.bridge_protocol.LearnerPacer`) and
``_on_learner_stats`` steps it once the learner has caught up. The protocol:
:mod:`expo_sim.ros.bridge_protocol`.

A mixin, not a class of its own: every method reads and advances the node's episode state (set
up in ``SimBridge.on_configure`` and ``on_activate``), steps its env and publishes through its
lifecycle publishers (``_tick_clock``, ``_publish_obs``, ``_publish_feedback``, ``_end_episode``).
"""

from __future__ import annotations

import time

from expo_interfaces.msg import LearnerStats
from expo_ros import conversions as cv

OBS_TOPICS = ("joint_states", "ee_pose", "object_poses")


class LockstepMixin:
    """Lockstep stepping, timeouts and pacing; mixed into the sim bridge (see the module docstring)."""

    def _on_learner_stats(self, msg: LearnerStats) -> None:
        """Pacing: the learner's backlog; step a held command once it has caught up."""
        if not self.active:  # configured but not yet activated (or stopped): no episode to pace
            return
        d = cv.learner_stats_to_numpy(msg)
        backlog, warm = int(d.scalars.get("backlog", 0)), bool(d.scalars.get("warmed_up", 1.0))
        self._pacer.report(backlog, warm, self.stats.env_steps)
        if self._held is not None and self.active and not self._pacer.should_hold(self.stats.env_steps):
            cmd, t_held = self._held
            self._held = None
            t0 = time.monotonic()
            self._pacer.held_s += t0 - t_held
            self._lockstep_step(cmd)
            self.stats.timing(time.monotonic() - t0)

    def _lockstep_step(self, cmd: cv.Command) -> None:
        action = None if cmd.hold else self._checked(cmd)
        self.stats.took_effect(self._sim_clock.now_ns - cmd.stamp_ns)  # 0 unless re-published
        ns = self._tick_clock()
        # The feedback goes out before the observation: a lockstep policy acts on an observation
        # once the previous command's step is reported, and the frames take the longest to go out.
        if action is None:  # a hold: the arm keeps still for one period, the env is not stepped
            self.stats.holds += int(cmd.hold)
            self._publish_feedback(ns, (0.0, False, False, False), (cmd.episode, cmd.step))
            self._publish_obs(ns)
            self._gate.published(ns, new_state=False)
            return
        result = self._step_env(action)
        self._publish_feedback(ns, result, (cmd.episode, cmd.step))
        self._publish_obs(ns)
        if result[1] or result[2]:
            if self._end_episode(result[3]):
                return
            ns = self._tick_clock()  # the reset takes one period: the next state is strictly later
            self._reset_env()
            self._publish_obs(ns)
        self._gate.published(ns, new_state=True)

    def _on_watch(self) -> None:
        """Lockstep, wall timer: first observation once the policy is there; timeouts."""
        if self.finished:
            return
        if not self._first_sent:
            if not self._policy_connected():
                self.get_logger().info(
                    f"waiting for a policy: subscribers on {', '.join(self._policy_inputs())} and a "
                    "publisher on action",
                    throttle_duration_sec=5.0,
                )
                return
            if not self._learner_ready("the first observation"):
                return
            self._first_sent = True
            ns = self._tick_clock()
            self._publish_obs(ns)
            self._gate.published(ns, new_state=True)
            self.get_logger().info("policy connected: first observation published")
        elif self._gate.overdue(self.cfg.action_timeout_s):
            self.stats.timeouts += 1
            self.get_logger().warning(
                f"no command for the current observation within {self.cfg.action_timeout_s:g} s: "
                "re-publishing it with a new stamp"
            )
            ns = self._tick_clock()
            self._publish_obs(ns)
            self._gate.published(ns, new_state=False)

    def _policy_inputs(self) -> tuple[str, ...]:
        """The topics a policy of this observation kind subscribes to (lockstep waits for them):
        state: joint_states, ee_pose, object_poses; pixels: joint_states, each camera, and
        ee_pose or ee_pose_base (no object poses)."""
        if not self.cfg.cameras:
            return OBS_TOPICS
        return ("joint_states", *(f"{c}/image_raw" for c in self.cfg.cameras), "ee_pose|ee_pose_base")

    def _policy_connected(self) -> bool:
        def subscribed(topic: str) -> bool:
            return any(self._pubs[t].get_subscription_count() > 0 for t in topic.split("|"))

        return all(map(subscribed, self._policy_inputs())) and self._action_sub.get_publisher_count() > 0
