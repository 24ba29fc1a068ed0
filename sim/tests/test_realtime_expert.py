"""Integration (issue 19): the scripted lift expert through the real ROS loop in realtime mode
succeeds as often as it does run directly, and the loop keeps its timing contract.

Directly: the clean expert steps the env itself, seeds SEED..SEED+2. Over ROS: the sim graph in
realtime mode (bridge: wall-time physics in 10 ms chunks, commands taking effect on arrival)
with the policy node swapped for :mod:`expo_sim.ros.expert_policy_node` (the policy node's whole
path: observation sync, acting on each observation, safety filter, stamped commands; only the
decision is the expert's), separate processes on DDS, the bridge seeded alike. The expert is a
robust P-controller (it also succeeded with 60 +- 40 ms of injected latency on a loaded machine),
so besides success the test checks what a timing regression breaks first: every observation is
answered at most once (a free-running timer answers some twice and others never), most are
answered, and the median command takes effect within about a control period of its observation.
"""

from __future__ import annotations

import uuid
from collections import Counter

import numpy as np
import pytest
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from expo_sim.envs.robosuite_env import make_env
from expo_sim.envs.scripted import make_expert
from expo_sim.ros.expert_policy_node import CLEAN, expert_obs_dict
from expo_sim.session.timing_study import run_graph, study_graph
from geometry_msgs.msg import PoseStamped

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 97  # apart from the other test files' ranges
EPISODES, HORIZON, SEED = 3, 100, 0
PERIOD_MS = 50.0


def direct_successes() -> int:
    env = make_env("lift", horizon=HORIZON)
    wins = 0
    try:
        for ep in range(EPISODES):
            obs, _ = env.reset(seed=SEED + ep)
            expert = make_expert(env, CLEAN, np.random.default_rng([SEED, ep]))
            for _ in range(HORIZON):
                obs, _, terminated, truncated, _ = env.step(expert.act(expert_obs_dict("lift", obs)))
                if terminated or truncated:
                    wins += int(terminated)
                    break
    finally:
        env.close()
    return wins


# Wall-clock real time: a machine loaded by other work (load average 8-10 seen) can miss
# periods; one retry, so a timing regression still fails both tries.
@pytest.mark.flaky(reruns=1)
def test_scripted_expert_succeeds_over_the_realtime_ros_loop_as_directly(record_property) -> None:
    direct = direct_successes()
    assert direct == EPISODES, "the clean expert solves these seeds when run directly"

    ns = f"t_{uuid.uuid4().hex[:8]}"
    bridge = {"num_episodes": EPISODES, "horizon": HORIZON, "seed": SEED}
    policy = {"safety.max_delta": [2.0] * 7, "publish_markers": False}  # the expert as it runs directly
    graph = study_graph("realtime", "scripted", "lift", ns, expert=True, bridge=bridge, policy=policy)
    commands: list[ActionCommand] = []
    observed: list[int] = []

    def listen(node) -> None:
        node.create_subscription(ActionCommand, "action", commands.append, 1000)
        node.create_subscription(
            PoseStamped, "ee_pose", lambda m: observed.append(cv.stamp_ns(m.header.stamp)), 1000
        )

    r = run_graph(graph, EPISODES, DOMAIN_ID, ns, timeout_s=150.0, listen=listen)
    tail = r.get("node_output_tail", "")
    assert not r["error"], f"{r['error']}\n{tail}"
    assert r["episodes"] == EPISODES, r

    # 1. As successful as directly (all but one at worst: a loaded machine may cost one).
    assert r["successes"] >= direct - 1, r["episode_commands"]

    # 2. One decision per observation: no observation answered twice, most answered.
    acted = [cv.stamp_ns(m.header.stamp) for m in commands if not m.hold]
    twice = [s for s, n in Counter(acted).items() if n > 1]
    assert not twice, f"{len(twice)} observations answered more than once"
    stepping = [s for s in observed if acted and acted[0] <= s <= acted[-1]]
    answered = len(set(acted) & set(stepping)) / max(len(stepping), 1)
    assert answered >= 0.8, f"only {answered:.0%} of the observations were answered"

    # 3. Commands take effect within about a control period of their observation (median; 1.5
    # periods: on 2 cores at load ~9 it was 60 ms, with the policy on a free-running timer and
    # next-period application 100 ms).
    assert r["action_age_p50_ms"] <= 1.5 * PERIOD_MS, r

    for key in ("successes", "action_age_p50_ms", "action_age_p99_ms", "obs_to_action_p99_ms", "load_mean"):
        record_property(key, r[key])
    record_property("answered", round(answered, 3))
    record_property("dropped", r["dropped"])
    record_property("wall_s", round(r["wall_s"], 1))
