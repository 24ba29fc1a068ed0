"""Several actors, one learner: the node graph for users with several robots or sim instances.

Actor ``i`` is a sim bridge + policy node in namespace ``/actor_<i>`` with its own sim clock
(``/actor_<i>/clock``) and its own episode seeds; the learner runs in the root namespace. The
learner's three channels are global topics: every policy publishes ``/transitions`` (each
Transition carries its source, the policy node's fully qualified name, which the learner counts)
and listens to ``/policy_weights``; in lockstep every bridge paces itself on ``/learner_stats``.
"""

from __future__ import annotations

from pathlib import Path

from expo_bringup.graph import Graph, sim_graph

ACTOR_SEED_STRIDE = 1000  # actor i's episodes start at reset seed i * 1000


def actor_namespace(i: int) -> str:
    return f"actor_{i}"


def multi_actor_graph(
    num_actors: int,
    checkpoint: str,
    learner_dir: str,
    task: str = "lift",
    offline_dataset: str = "",
    backend: str = "auto",
    realtime: bool = False,
    config_dir: Path | str | None = None,
) -> Graph:
    """``num_actors`` (>= 1) actors feeding one learner; see the module doc."""
    if not isinstance(num_actors, int) or num_actors < 1:
        raise ValueError(f"multi_actor_graph num_actors must be an integer >= 1, got {num_actors!r}")
    with_learner = sim_graph(
        task, checkpoint, backend, realtime, config_dir=config_dir,
        learner=True, learner_dir=learner_dir, offline_dataset=offline_dataset,
    )  # fmt: skip
    pacing = with_learner.node("sim_bridge").parameters.get("learner_pacing_backlog")
    nodes = []
    for i in range(num_actors):
        ns = actor_namespace(i)
        actor = sim_graph(task, checkpoint, backend, realtime, namespace=ns, config_dir=config_dir)
        bridge_params = {
            "seed": i * ACTOR_SEED_STRIDE,
            "wait_for_learner": True,  # the shared learner's first report (remapped below)
            **({"learner_pacing_backlog": pacing} if pacing else {}),
        }
        actor = actor.with_overrides(f"/{ns}/clock", sim_bridge=bridge_params)
        global_topics = {
            "sim_bridge": (("learner_stats", "/learner_stats"),),
            "policy_node": (("transitions", "/transitions"), ("policy_weights", "/policy_weights")),
        }
        nodes += [n.adapted(remappings=global_topics[n.name]) for n in actor.nodes]
    return Graph((*nodes, with_learner.node("learner_node")))
