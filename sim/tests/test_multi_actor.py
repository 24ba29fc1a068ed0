"""Two actors (sim bridge + policy node in /actor_0 and /actor_1, lockstep) feeding one learner
over DDS, started by the runner: the learner receives and tags transitions from both, trains, and
both policies swap in its weights. Tiny networks; the test is about the wiring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from expo_bringup.multi_actor import multi_actor_graph
from expo_bringup.runner import LineBuffer, Runner
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import save_checkpoint
from expo_core.presets import preset_config
from expo_interfaces.msg import LearnerStats
from expo_ros.conversions import learner_stats_to_numpy
from expo_sim.ros.lifecycle_client import spin_until
from rclpy.executors import SingleThreadedExecutor

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 21 + os.getpid() % 19  # 21..39: apart from the other test files' ranges
TIMEOUT_S = 180.0


def test_two_actors_feed_one_learner_and_both_get_its_weights(tmp_path: Path) -> None:
    ckpt = tmp_path / "base"
    save_checkpoint(ckpt, ExpoAgent(preset_config("tiny", 19, 7), seed=0))
    graph = multi_actor_graph(
        2, str(ckpt.with_suffix(".safetensors")), str(tmp_path / "learner")
    ).with_overrides(
        learner_node={"warmup_transitions": 20, "publish_every_updates": 10, "publish_every_s": 1.0},
    )
    graph = type(graph)(
        tuple(
            n
            if n.name != "sim_bridge"
            else type(n)(**{**n.__dict__, "parameters": {**n.parameters, "horizon": 30}})
            for n in graph.nodes
        )
    )
    assert [(n.namespace, n.name) for n in graph.nodes] == [
        ("/actor_0", "sim_bridge"),
        ("/actor_0", "policy_node"),
        ("/actor_1", "sim_bridge"),
        ("/actor_1", "policy_node"),
        ("", "learner_node"),
    ]
    out = LineBuffer()
    runner = Runner(graph, domain_id=DOMAIN_ID, sink=out)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    node = rclpy.create_node("multi_actor_test", context=ctx)
    stats: list = []
    versions: dict[str, int] = {}

    def on_diag(ns: str, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith(": control loop"):
                values = {kv.key: kv.value for kv in st.values}
                versions[ns] = int(values.get("weights_version", 0))

    node.create_subscription(
        LearnerStats, "/learner_stats", lambda m: stats.append(learner_stats_to_numpy(m)), 50
    )
    for ns in ("actor_0", "actor_1"):
        node.create_subscription(DiagnosticArray, f"/{ns}/diagnostics", lambda m, ns=ns: on_diag(ns, m), 50)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    sources = ("transitions//actor_0/policy_node", "transitions//actor_1/policy_node")

    def done() -> bool:
        if runner.wait(timeout=0) is not None:
            pytest.fail(f"a node exited: {runner.first_exit}\n{out.text()}")
        last = stats[-1].scalars if stats else {}
        fed = all(last.get(s, 0) > 0 for s in sources) and last.get("updates", 0) > 0
        return fed and all(versions.get(ns, 0) >= 2 for ns in ("actor_0", "actor_1"))

    try:
        runner.start()
        try:
            spin_until(
                executor, done, "both actors' transitions, learner updates and weights in both", TIMEOUT_S
            )
        except TimeoutError as e:
            last = stats[-1].scalars if stats else {}
            pytest.fail(f"{e}; last learner stats {last}; policy versions {versions}\n{out.text()}")
    finally:
        code = runner.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert code == 0, out.text()
    codes = runner.exit_codes  # every process of both actors was supervised and has exited
    assert set(codes) == {f"/actor_{i}/{n}" for i in (0, 1) for n in ("sim_bridge", "policy_node")} | {
        "learner_node"
    } and all(c is not None for c in codes.values()), codes
    last = stats[-1]
    assert last.env_steps_received >= sum(last.scalars[s] for s in sources) - 1e-6 > 0
    assert all((tmp_path / "learner" / "bags").glob("seg_*"))
