"""The sim graph with ``intervene``: the scripted intervener beside the policy, interventions on
in the policy node, and the learner YAML's intervention switches equal to the learner's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from expo_bringup.graph import default_config_dir, sim_graph
from expo_bringup.launch_graph import read_params_file


def test_intervene_adds_the_intervener_and_enables_arbitration(tmp_path: Path) -> None:
    plain = sim_graph(task="can", namespace="robot1")
    assert [n.name for n in plain.nodes] == ["sim_bridge", "policy_node"]
    assert "intervention.enabled" not in plain.node("policy_node").parameters  # YAML: false
    g = sim_graph(task="can", namespace="robot1", intervene=True)
    assert [n.name for n in g.nodes] == ["sim_bridge", "policy_node", "intervener"]
    assert g.node("policy_node").parameters["intervention.enabled"] is True
    node = g.node("intervener")
    assert (node.package, node.module, node.namespace) == (
        "expo_sim",
        "expo_sim.ros.intervener_node",
        "/robot1",
    )
    assert node.parameters == {"task": "can", "use_sim_time": True}
    assert node.params_files[0].endswith("intervener.yaml") and Path(node.params_files[0]).is_file()
    both = sim_graph(
        checkpoint="/b/base.safetensors", learner=True, learner_dir=str(tmp_path), intervene=True
    )
    assert [n.name for n in both.nodes] == ["sim_bridge", "policy_node", "learner_node", "intervener"]


def test_learner_yaml_intervention_switches_match_the_learner_defaults() -> None:
    pytest.importorskip("yaml")
    from expo_learner.learner_params import PARAMETERS

    defaults = {p.name: p.default for p in PARAMETERS if p.name.startswith("intervention_")}
    values = read_params_file(default_config_dir() / "learner.yaml")["/**"]
    assert {k: v for k, v in values.items() if k.startswith("intervention_")} == defaults
    assert len(defaults) == 6
    policy = read_params_file(default_config_dir() / "policy.yaml")["/**"]
    assert policy["intervention.enabled"] is False
