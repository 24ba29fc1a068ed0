"""Take the observation inputs' messages that have already arrived, from inside an input's
callback (the policy node's ``observation.take_pending``).

An observation set has several pieces (joint_states, a pose, object poses or camera frames), each
its own message. The executor hands them over one wake-up at a time, and each wake-up costs the
waiting thread a trip through the wait set (rclpy rebuilds it in Python). When a piece arrives and
the set is not complete, the rest of the set has often arrived already: :meth:`PendingInputs.take`
takes those messages now, in the same wake-up, and passes each to its subscription's callback, as
the executor would (rclpy's own take: ``handle.take_message``). A subscription with nothing
waiting gives nothing; what arrives later comes through the executor as before, and a message
taken here is never delivered twice (the executor's take then finds nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def take_now(sub: Any) -> Any | None:
    """The subscription's next waiting message, or None (never blocks)."""
    with sub.handle:
        taken = sub.handle.take_message(sub.msg_type, sub.raw)
    return None if taken is None else taken[0]


class PendingInputs:
    """The observation inputs' subscriptions, to be drained from within one of their callbacks."""

    def __init__(self, subs: Sequence[Any], max_passes: int = 4) -> None:
        self._subs = list(subs)
        self._max_passes = max_passes
        self._busy = False
        self.taken = 0  # messages handed over here instead of by the executor

    def take(self) -> int:
        """Passes over the subscriptions, one waiting message from each per pass handed to its
        callback, until a pass finds nothing (at most ``max_passes``). Returns how many were
        taken. A call from inside one of those callbacks does nothing (no recursion)."""
        if self._busy:
            return 0
        self._busy = True
        n = 0
        try:
            for _ in range(self._max_passes):
                got = 0
                for sub in self._subs:
                    msg = take_now(sub)
                    if msg is not None:
                        got += 1
                        sub.callback(msg)
                n += got
                if not got:
                    break
        finally:
            self._busy = False
        self.taken += n
        return n
