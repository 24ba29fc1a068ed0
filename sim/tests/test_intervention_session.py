"""Issue 18's integration scenario over ROS, through ``make sim``'s path (``expo-sim session
--intervene --learn``, the graph started by ``ros2 launch expo_bringup sim.launch.py
intervene:=true``): a barely trained lift policy strays, the scripted intervener takes over and
hands back, and

- an independent rclpy subscriber (its own context, plain message fields, none of our
  converters) sees transitions with ``intervention`` true and false, both in one episode;
- the learner's rosbag2 mcap segments hold the same flags, read with ``rosbags`` (AnyReader, the
  types from the schemas embedded in the bag), not with our segment reader;
- the session summary counts the takeovers.

Tiny networks, short episodes, a sensitive distance rule so the takeover does not depend on
what 5 pretraining steps learned.
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import pytest
from bag_transitions import bag_transitions
from expo_interfaces.msg import Transition
from expo_sim.session.run import SessionConfig, run_session
from spun_node import SpunNode

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# test_session's range (61..75), never its value (or +7's, +11's) in one process; the retry below
# gets a domain of its own (+5), so that nothing left of the failed attempt can reach it
DOMAIN_IDS = itertools.cycle([61 + (os.getpid() + 3) % 15, 61 + (os.getpid() + 5) % 15])
EPISODES, HORIZON = 2, 60


class Listener(SpunNode):
    """An rclpy node on its own context, spun in a thread, recording (episode, step, intervention)."""

    def __init__(self, domain_id: int) -> None:
        super().__init__("independent_listener", domain_id)
        self.seen: list[tuple[int, int, bool]] = []
        self.node.create_subscription(
            Transition, "/transitions", lambda m: self.seen.append((m.episode, m.step, m.intervention)), 1000
        )
        self.start()


def _log_lines(summary: dict, words: tuple[str, ...], limit: int = 80) -> str:
    """The session's node log lines naming any of ``words`` (a failure's context), at most ``limit``."""
    log = Path(summary["run_dir"]) / "nodes.log"
    lines = [ln for ln in log.read_text().splitlines() if any(w in ln for w in words)] if log.exists() else []
    return "\n".join(lines[:limit])


def bag_flags(bags: Path) -> list[tuple[int, int, bool]]:
    """(episode, step, intervention) of every transition in the learner's segments, via rosbags."""
    return [(int(m.episode), int(m.step), bool(m.intervention)) for m in bag_transitions(bags)]


# one retry, as the other wall-clock integration tests: the take-over and hand-back of episode 0
# depend on where the policy's episode goes in real time (a clean-clone run once saw episode 0
# end one step after the take-over)
@pytest.mark.flaky(reruns=1)
def test_scripted_intervener_takes_over_hands_back_and_the_flags_reach_subscriber_and_bag(
    tmp_path: Path,
) -> None:
    domain_id = next(DOMAIN_IDS)
    cfg = SessionConfig(
        task="lift",
        episodes=EPISODES,
        demos=2,
        preset="tiny",
        pretrain_steps=5,
        horizon=HORIZON,
        data_dir=tmp_path / "data",
        out=tmp_path / "runs",
        domain_id=domain_id,
        timeout_s=170.0,
        learn=True,
        intervene=True,
        graph_overrides={
            "intervener": {
                "grace_steps": 3,
                "disagreement": 0.2,  # nearly any difference from the expert's translation
                "disagreement_steps": 2,
                "stall_steps": 0,
                "takeover_steps": 8,
                "cooldown_steps": 4,
                "max_takeovers": 3,
            },
            "policy_node": {"intervention.handback_steps": 3},
        },
    )
    listener = Listener(domain_id)
    try:
        summary = run_session(cfg, stream=io.StringIO(), progress=False)
    finally:
        listener.close()
    assert summary["exit_code"] == 0 and not summary["error"], summary
    assert summary["node_exit_codes"] == {
        "sim_bridge": 0,
        "policy_node": 0,
        "learner_node": 0,
        "intervener": 0,
    }

    seen = listener.seen
    assert len(seen) >= EPISODES * 10, seen
    first = sorted((s, f) for e, s, f in seen if e == 0)  # (step, flag) of episode 0
    flagged = [s for s, f in first if f]
    assert flagged and not all(f for _, f in first), first
    # taken over after the grace steps and handed back: a policy step after an operator step.
    # By step number, not by position in what the listener heard: a listener that matched the
    # policy's publisher late (discovery on a loaded machine) missed the first steps.
    start = flagged[0]
    assert start >= 3 and any(not f for s, f in first if s > start), (
        f"{first}\n{_log_lines(summary, ('intervener', 'teleop', 'policy_node'))}"
    )
    assert summary["intervention_takeovers"] >= 1 and 0 < summary["intervention_step_fraction"] < 1
    assert summary["intervention_steps"] == sum(f for _, _, f in seen)

    in_bag = bag_flags(Path(summary["learner_dir"]) / "bags")
    assert {f for _, _, f in in_bag} == {True, False}, in_bag
    heard = {(e, s): f for e, s, f in seen}
    common = [(k, f) for *k, f in in_bag if tuple(k) in heard]
    assert common and all(heard[tuple(k)] == f for k, f in common)
