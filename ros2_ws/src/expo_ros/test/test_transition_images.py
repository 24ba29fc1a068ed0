"""Camera frames of s and s' on a Transition (issue 13): the assembler carries the next
observation's frames as ``next_images``, and both lists survive the wire."""

from __future__ import annotations

import numpy as np
from expo_interfaces.msg import Transition
from expo_ros import conversions as cv
from expo_ros.transitions import Feedback, StepRecord, TransitionAssembler, TransitionData
from rclpy.serialization import deserialize_message, serialize_message

RNG = np.random.default_rng(13)


def _frame(stamp: int, camera: str):
    return cv.image_msg(RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8), stamp, camera)


def test_assembler_takes_next_images_from_the_next_observation() -> None:
    a = TransitionAssembler()
    s0 = (_frame(1000, "agentview"), _frame(1000, "robot0_eye_in_hand"))
    s1 = (_frame(1050, "agentview"), _frame(1050, "robot0_eye_in_hand"))
    reset = (_frame(1100, "agentview"), _frame(1100, "robot0_eye_in_hand"))
    a.add_step(StepRecord(0, 0, np.zeros(3, np.float32), np.zeros(7, np.float32), 1, 1000, s0))
    a.add_observation(1050, np.ones(3), s1)  # the terminal observation
    a.add_observation(1100, np.full(3, 2.0), reset)  # the next episode's first
    (t,) = a.add_feedback(Feedback(0, 0, 1.0, True, False, True, 1050))
    assert t.images == s0 and t.next_images == s1, "next frames are the terminal observation's"
    a.add_step(StepRecord(1, 0, np.zeros(3, np.float32), np.zeros(7, np.float32), 1, 1100))
    a.add_observation(1150, np.ones(3))  # a low-dim observation: no frames
    (t,) = a.add_feedback(Feedback(1, 0, 0.0, False, False, False, 1150))
    assert t.images == () and t.next_images == ()


def test_images_and_next_images_round_trip_through_cdr() -> None:
    img, nxt = _frame(5, "agentview"), _frame(7, "agentview")
    t = cv.transition_to_numpy(cv.transition_msg(_data((img,), (nxt,)), "sim"))
    wire = deserialize_message(serialize_message(cv.transition_msg(t, "sim")), Transition)
    got = cv.transition_to_numpy(wire)
    assert [bytes(m.data) for m in got.images] == [bytes(img.data)]
    assert [bytes(m.data) for m in got.next_images] == [bytes(nxt.data)]
    assert cv.stamp_ns(got.next_images[0].header.stamp) == 7


def test_a_message_without_next_images_decodes_with_none() -> None:
    class Old:  # a decoded message of the definition before next_images (rosbags builds it from the bag)
        def __init__(self) -> None:
            self.msg = cv.transition_msg(_data((), ()), "old")

        def __getattr__(self, name: str):
            if name == "next_images":
                raise AttributeError(name)
            return getattr(self.msg, name)

    assert cv.transition_to_numpy(Old()).next_images == ()


def _data(images: tuple, next_images: tuple) -> TransitionData:
    return TransitionData(
        obs=np.zeros(16, np.float32),
        action=np.zeros(7, np.float32),
        reward=0.0,
        next_obs=np.zeros(16, np.float32),
        terminated=False,
        truncated=False,
        episode=0,
        step=0,
        policy_version=0,
        stamp_ns=7,
        images=images,
        next_images=next_images,
    )
