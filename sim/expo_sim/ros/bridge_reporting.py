"""What :class:`~expo_sim.ros.bridge_node.SimBridge` reports: the summary line at the end, the
``diagnostics`` status (episodes, success, env steps/s, the obs -> action round trip, action ages,
command counts, learner pacing, realtime camera counts), and the throttled messages while episode
0 waits for the learner's first ``learner_stats`` (``wait_for_learner``).

A mixin, not a class of its own: it reads the node's stats, inbox, pacer and frame worker (set up
in ``SimBridge.on_configure`` and ``on_activate``) and publishes on its ``diagnostics`` publisher.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticStatus
from expo_ros import conversions as cv

#: Waiting this long for the learner's first report turns the info line into a warning [s].
LEARNER_WAIT_WARN_S = 30.0


class ReportingMixin:
    """Summary line, diagnostics and learner-wait messages; mixed into the sim bridge."""

    def _sync_inbox_counts(self) -> None:
        self.stats.superseded = self._inbox.superseded
        self.stats.dropped = dict(self._inbox.dropped)
        self.stats.plan_rows_dropped = self._plan.plan_rows_dropped

    def _log_summary(self) -> None:
        if not self._summary_logged:
            self._summary_logged = True
            self._sync_inbox_counts()
            stale = "" if self.cfg.realtime else f", {self._gate.stale} stale commands"
            bg = self._background
            frames = f", {bg.rendered} observations' frames rendered, {bg.dropped} dropped" if bg else ""
            if bg is not None and bg.callback_errors:
                frames += f", {bg.callback_errors} frames not published (first: {bg.last_error!r})"
            self.get_logger().info(f"summary: {self.stats.summary()}{stale}{frames}")

    def _learner_ready(self, what: str) -> bool:
        """``wait_for_learner``: whether the learner has reported yet; while not, say (throttled)
        that ``what`` waits for it, as a warning after LEARNER_WAIT_WARN_S; past
        ``learner_wait_timeout_s``, an error, ``exit_code`` 1 and the end of the run."""
        if self._pacer.ready:
            return True
        if self._learner_wait_since is None:
            self._learner_wait_since = time.monotonic()
        waited = time.monotonic() - self._learner_wait_since
        text = (
            f"waiting {waited:.0f} s for the learner's first learner_stats (wait_for_learner): {what} "
            "waits until it is active and subscribed to the transitions"
        )
        limit = self.cfg.learner_wait_timeout_s
        if limit and waited > limit:
            self.get_logger().error(
                f"the learner sent no learner_stats within learner_wait_timeout_s ({limit:g} s): {what} "
                "never went out; stopping with exit code 1. Is the learner activated, and is its "
                "learner_stats topic this bridge's? (its own log lines say why it is not)"
            )
            self.exit_code = 1
            self._finish()
            return False
        if waited < LEARNER_WAIT_WARN_S:
            self.get_logger().info(text, throttle_duration_sec=5.0)
        else:  # alive but silent: not activated, learner_stats remapped, or its trainer died
            self.get_logger().warning(
                f"{text}; is the learner activated, and is its learner_stats topic this bridge's?",
                throttle_duration_sec=10.0,
            )
        return False

    def _publish_diagnostics(self) -> None:
        """Episodes, success, env step rate, the obs -> action round trip, action ages and the
        command counts (cumulative and of the last episode)."""
        self._sync_inbox_counts()
        values = self.stats.diagnostics_values()
        if self.cfg.learner_pacing_backlog and not self.cfg.realtime:
            values.update(paced_steps=self._pacer.held, paced_s=self._pacer.held_s)
        if self.cfg.wait_for_learner:
            values.update(waiting_for_learner=not self._pacer.ready)
        bg = self._background
        if bg is not None:  # realtime cameras
            values.update(
                frame_sets_rendered=bg.rendered,
                frame_sets_dropped=bg.dropped,
                frame_errors=bg.callback_errors,
                frames_failed=self._frames_failed,
            )
        level, message = DiagnosticStatus.OK, "finished" if self.finished else "stepping"
        if not self._pacer.ready:
            message = "waiting for the learner's first learner_stats before episode 0"
        if self.stats.timeouts or self.stats.rejected:
            level = DiagnosticStatus.WARN
            message = f"{self.stats.timeouts} action timeouts, {self.stats.rejected} rejected commands"
        name = f"{self.get_fully_qualified_name()}: sim"
        msg = cv.diagnostics_msg(self.get_clock().now().nanoseconds, name, level, message, values, "expo_sim")
        self._pubs["diagnostics"].publish(msg)
