"""CDR bytes <-> one transition, through the project's single Transition encode/decode pair.

The numpy <-> message conversion lives in :mod:`expo_ros.conversions` (``transition_msg`` /
``transition_to_numpy``, one pair per channel); this module only adds the byte layer around it:

- encode: :class:`~expo_ros.transitions.TransitionData` -> rclpy ``Transition`` ->
  ``rclpy.serialization.serialize_message`` -> CDR bytes, identical (up to CDR padding bytes) to
  what the policy node publishes and what a ``raw=True`` subscription hands the learner;
- decode: CDR bytes -> a rosbags message object (typestore built from the bag's embedded schema)
  -> ``transition_to_numpy``, which reads the same field names from it as from an rclpy message.
  rosbags decodes ~1.7x faster than ``rclpy.serialization.deserialize_message`` and needs no
  generated Python message classes, only the schema text.
"""

from __future__ import annotations

from expo_ros.conversions import transition_msg, transition_to_numpy
from expo_ros.transitions import TransitionData
from rclpy.serialization import serialize_message
from rosbags.typesys.store import Typestore

from .bag_types import TRANSITION_TYPE, project_typestore


def encode_transition(t: TransitionData, source: str) -> bytes:
    """One transition -> CDR bytes of ``expo_interfaces/msg/Transition``.

    ``t.obs``/``t.next_obs`` (obs_dim,) and ``t.action`` (act_dim,) are stored as float32;
    ``t.stamp_ns`` (integer ns) becomes ``header.stamp``; ``t.images`` must hold
    ``sensor_msgs/Image`` rclpy messages (or be empty).
    """
    return serialize_message(transition_msg(t, source))


def decode_transition(
    data: bytes | memoryview, typestore: Typestore | None = None, typename: str = TRANSITION_TYPE
) -> tuple[TransitionData, str]:
    """CDR bytes -> ``(TransitionData, source)``; images come back as rosbags Image objects.

    ``typestore`` defaults to the installed definitions (:func:`project_typestore`); readers of
    bags pass the store of the file's own schema. Raises on bytes that do not decode.
    """
    store = project_typestore() if typestore is None else typestore
    msg = store.deserialize_cdr(bytes(data) if isinstance(data, memoryview) else data, typename)
    return transition_to_numpy(msg), str(msg.source)
