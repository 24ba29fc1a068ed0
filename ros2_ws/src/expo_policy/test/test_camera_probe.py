"""expo_policy.camera_probe: the summary it prints, and the entry point with no node to answer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from expo_policy.camera_probe import summarize


def test_summary_counts_from_the_first_action_on() -> None:
    sent = {100: 1.0, 200: 2.0, 300: 3.0}
    replies = [
        (True, "stale_input: joint_states never received", 50, 0.5),  # before the first action
        (False, "", 200, 2.01),
        (True, "bad_observation: camera_late: agentview: frame 1.0 s old", 300, 3.002),
        (False, "", 300, 3.03),
    ]
    s = summarize(replies, sent, 20.0)
    assert s["actions"] == 2 and s["holds"] == {"bad_observation": 1} and s["ticks_published"] == 2
    assert s["latency_p50_ms"] == pytest.approx(20.0) and s["latency_p90_ms"] == pytest.approx(28.0)
    empty = summarize([(True, "x: y", 1, 1.0)], sent, 1.0)
    assert empty["actions"] == 0 and empty["latency_p50_ms"] is None and empty["ticks_published"] == 0


@pytest.mark.ros
def test_probe_without_a_node_exits_1(tmp_path) -> None:
    env = {**os.environ, "ROS_DOMAIN_ID": str(81 + os.getpid() % 20), "ROS_LOG_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "expo_policy.camera_probe", "--namespace", "/nobody", "--wait", "1.5"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert '"actions": 0' in out.stdout
