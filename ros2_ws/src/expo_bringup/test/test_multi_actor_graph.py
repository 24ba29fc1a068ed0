"""multi_actor_graph: namespaces, clocks, seeds and the learner's global channels."""

from __future__ import annotations

import pytest
from expo_bringup.multi_actor import ACTOR_SEED_STRIDE, multi_actor_graph


def test_actors_have_own_namespace_clock_and_seeds_and_share_the_learner(tmp_path) -> None:
    g = multi_actor_graph(3, "/b/base.safetensors", str(tmp_path))
    assert [n.name for n in g.nodes] == ["sim_bridge", "policy_node"] * 3 + ["learner_node"]
    for i in range(3):
        bridge, policy = g.nodes[2 * i], g.nodes[2 * i + 1]
        assert bridge.namespace == policy.namespace == f"/actor_{i}"
        assert ("/clock", f"/actor_{i}/clock") in bridge.remappings and (
            "/clock",
            f"/actor_{i}/clock",
        ) in policy.remappings
        assert bridge.parameters["seed"] == i * ACTOR_SEED_STRIDE
        assert bridge.parameters["learner_pacing_backlog"] > 0  # lockstep paces on the shared learner
        assert bridge.parameters["wait_for_learner"] is True  # episode 0 waits for its first report
        assert ("learner_stats", "/learner_stats") in bridge.remappings
        assert {("transitions", "/transitions"), ("policy_weights", "/policy_weights")} <= set(
            policy.remappings
        )
    assert g.nodes[-1].namespace == "" and g.nodes[-1].parameters["checkpoint"] == "/b/base.safetensors"
    realtime = multi_actor_graph(2, "/b/base.safetensors", str(tmp_path), realtime=True)
    assert "learner_pacing_backlog" not in realtime.nodes[0].parameters
    assert realtime.nodes[0].parameters["wait_for_learner"] is True
    with pytest.raises(ValueError, match="num_actors"):
        multi_actor_graph(0, "/b/base.safetensors", str(tmp_path))
