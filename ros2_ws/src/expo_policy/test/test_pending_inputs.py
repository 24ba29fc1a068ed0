"""PendingInputs without ROS: subscriptions stand-ins whose handles give queued messages."""

from contextlib import nullcontext

from expo_policy.pending_inputs import PendingInputs


class FakeHandle:
    def __init__(self, queue):
        self.queue = queue

    def __enter__(self):
        return nullcontext().__enter__()

    def __exit__(self, *exc):
        return False

    def take_message(self, msg_type, raw):
        return (self.queue.pop(0), "info") if self.queue else None


class FakeSub:
    msg_type, raw = object, False

    def __init__(self, name, queue, log, pending=None):
        self.handle, self.name, self.log, self.pending = FakeHandle(list(queue)), name, log, pending

    def callback(self, msg):
        self.log.append((self.name, msg))
        if self.pending is not None:
            self.pending[0].take()  # a callback that takes again (as the node's does): no recursion


def test_take_passes_until_nothing_waits_and_never_recurses():
    log, holder = [], []
    subs = [FakeSub("a", [1, 2], log, holder), FakeSub("b", [10], log, holder), FakeSub("c", [], log, holder)]
    pending = PendingInputs(subs)
    holder.append(pending)
    assert pending.take() == 3
    assert log == [("a", 1), ("b", 10), ("a", 2)]  # one message per subscription per pass, in order
    assert pending.take() == 0 and pending.taken == 3


def test_take_stops_after_max_passes():
    log = []
    pending = PendingInputs([FakeSub("a", range(10), log)], max_passes=4)
    assert pending.take() == 4 and [m for _, m in log] == [0, 1, 2, 3]
