"""The stopping half of :class:`~expo_policy.policy_node.PolicyNode`: the last reports when it
stops acting (deactivate, cleanup, shutdown) and the drain before a requested stop.

``_stop`` sends, while the lifecycle publishers are still enabled, one last diagnostics report
and one last hold, and waits (bounded) until the reliable subscribers have them and the last
transitions. ``begin_drain`` / ``drain_done`` are what :func:`expo_ros.node_main.run_lifecycle_node`
calls on a stop request (SIGINT, SIGTERM): no decision from then on, but what was already
delivered is still taken so the last decided step's transition completes before deactivation
flushes it. docs/policy_node.md describes the behaviour.

A mixin, not a class of its own: it reads and resets the node's loop state (set up in
``PolicyNode._create_entities`` and ``_reset_loop_state``), as :mod:`expo_policy.acting` does.
"""

from __future__ import annotations

#: node_main's drain ends after this long without a delivered message (lockstep; in real time
#: :meth:`StoppingMixin.drain_done` ends it as soon as the last transition is complete)
DRAIN_QUIET_S = 0.1


class StoppingMixin:
    """Mixed into :class:`~expo_policy.policy_node.PolicyNode` (module docstring)."""

    def _stop(self, reason: str) -> None:
        """Stop acting; while the publishers are still enabled, send one last diagnostics report
        (a run shorter than ``diagnostics_period_s`` still reports its loop) and one last hold,
        and wait (bounded) until the reliable subscribers have them (``_flush``)."""
        for t in self._timers:
            t.cancel()
        if self.active:
            self._publish_diagnostics()
            self._hold(reason, "", self._now_ns())
            self._flush(self._pubs["diagnostics"], f"the final diagnostics ({reason})")
            self._flush(self._pubs["action"], f"the final hold ({reason})")
            if self.cfg.publish_transitions:
                self._flush(self._pubs["transitions"], f"the last transitions ({reason})")
        self.active = False
        self._reset_loop_state()
        if self._step > 0:  # indices stay monotonic: acting again starts a new episode
            self._episode, self._step = self._episode + 1, 0
        if self.cfg is not None:
            self._watchdog.reset()
            self._inputs.reset()
            self._assembler.reset()
        if self.arbiter is not None:
            self.arbiter.reset()

    def begin_drain(self) -> float:
        """A stop was requested (node_main). Decide no more, but keep taking what was already
        delivered, so the last step's feedback and next observation still complete its
        transition; deactivation then flushes it. In real time the hold goes out first, now, so
        the arm never waits for the drain, and :meth:`drain_done` ends the drain as soon as the
        last decided step's transition is complete (a robot's inputs never go quiet). Returns
        the quiet window (node_main's drain); 0 when there are no transitions to finish."""
        if self.cfg is None or not self.cfg.publish_transitions or not self.active:
            return 0.0
        self._draining = True
        if not self.cfg.lockstep:
            for t in self._timers:  # no decision, no watchdog hold from now on: the arm holds
                t.cancel()
            self._hold("stopping", "holding while the last transition completes", self._now_ns())
        return DRAIN_QUIET_S

    def drain_done(self) -> bool:
        """Real time: whether the last decided step's transition is complete (or there is none);
        lockstep drains by the quiet window alone (its inputs stop with the sim)."""
        if self.cfg is None or self.cfg.lockstep:
            return False
        return self._last_decided is None or not self._assembler.is_pending(*self._last_decided)
