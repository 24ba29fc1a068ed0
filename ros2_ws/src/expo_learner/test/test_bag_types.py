"""Typestore registration, the CDR codec and the transition table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ament_index_python.packages import get_package_share_directory
from expo_interfaces.msg import Transition
from expo_learner.bag_types import (
    TRANSITION_TYPE,
    interface_msg_dir,
    message_definition,
    project_typestore,
    typestore_for_schema,
)
from expo_learner.transition_codec import decode_transition, encode_transition
from expo_learner.transition_table import TransitionTable
from expo_ros.transitions import TransitionData
from rclpy.serialization import deserialize_message

pytestmark = pytest.mark.ros  # expo_ros.conversions and rclpy serialization (built messages)


def test_every_interface_type_is_registered_with_the_hashes_rosidl_generated() -> None:
    """Our .msg parse and rosbags' Kilted std types give exactly the installed RIHS01 hashes."""
    store = project_typestore()
    generated = sorted((Path(get_package_share_directory("expo_interfaces")) / "msg").glob("*.json"))
    assert {p.stem for p in generated} == {p.stem for p in interface_msg_dir().glob("*.msg")}
    for path in generated:
        for h in json.loads(path.read_text())["type_hashes"]:  # the type and all it depends on
            assert store.hash_rihs01(h["type_name"]) == h["hash_string"], (path.name, h["type_name"])


def test_message_definition_embeds_every_dependency() -> None:
    text, rihs01 = message_definition(TRANSITION_TYPE)
    assert rihs01.startswith("RIHS01_")
    for dep in ("MSG: std_msgs/Header", "MSG: builtin_interfaces/Time", "MSG: sensor_msgs/Image"):
        assert dep in text
    store = typestore_for_schema(TRANSITION_TYPE, text)  # what a reader rebuilds from a file
    assert store.hash_rihs01(TRANSITION_TYPE) == rihs01
    with pytest.raises(ValueError, match="does not parse"):
        typestore_for_schema(TRANSITION_TYPE, "float32[ obs")


def test_codec_round_trip_matches_rclpy() -> None:
    t = TransitionData(
        obs=np.arange(19, dtype=np.float32),
        action=np.linspace(-1, 1, 7, dtype=np.float32),
        reward=1.0,
        next_obs=np.arange(19, dtype=np.float32) + 0.5,
        terminated=True,
        truncated=False,
        episode=12,
        step=399,
        policy_version=4,
        stamp_ns=1_700_000_000_123_456_789,
    )
    data = encode_transition(t, "/robot1")
    msg = deserialize_message(data, Transition)  # the bytes are what the policy node publishes
    assert msg.source == "/robot1" and msg.step == 399 and msg.header.stamp.nanosec == 123_456_789
    back, source = decode_transition(data)
    assert source == "/robot1"
    for name in ("obs", "action", "next_obs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))
    for name in ("reward", "terminated", "truncated", "episode", "step", "policy_version", "stamp_ns"):
        assert getattr(back, name) == getattr(t, name), name


def test_table_from_arrays_broadcasts_and_validates(make_table) -> None:
    n = 4
    t = TransitionTable.from_arrays(
        np.zeros((n, 3)), np.zeros((n, 2)), np.ones(n), np.ones((n, 3)), np.zeros(n), np.zeros(n), source="a"
    )
    assert t.obs.dtype == np.float32 and t.step.tolist() == [0, 1, 2, 3] and set(t.source) == {"a"}
    assert t.stamp_ns.min() > 1_600_000_000 * 10**9  # "now"
    with pytest.raises(ValueError, match="action"):
        TransitionTable.from_arrays(
            np.zeros((n, 3)), np.zeros((n + 1, 2)), np.ones(n), np.ones((n, 3)), np.zeros(n), np.zeros(n)
        )
    with pytest.raises(ValueError, match="disagree"):
        TransitionTable.concat([make_table(2), TransitionTable.empty(), t])


def test_episode_groups_follow_source_and_step(make_table) -> None:
    a, b = make_table(20, source="a", episode_len=10), make_table(10, source="b", episode_len=10)
    mixed = TransitionTable.concat([a.select(np.arange(5)), b, a.select(np.arange(5, 20))])
    shuffled = mixed.select(np.r_[1, 0, 2:30])  # steps 0 and 1 of the first episode swapped
    groups = shuffled.episode_groups()
    assert [(shuffled.source[g[0]], shuffled.episode[g[0]]) for g in groups] == [("a", 0), ("b", 0), ("a", 1)]
    for g in groups:
        assert shuffled.step[g].tolist() == list(range(10))
    arrays = shuffled.to_transition_arrays({"env_name": "Lift"})
    assert arrays.num_episodes == 3 and arrays.demo_names == ("a/0", "b/0", "a/1")
    assert arrays.episode.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    np.testing.assert_array_equal(arrays.obs[:10, 0], np.arange(10))
