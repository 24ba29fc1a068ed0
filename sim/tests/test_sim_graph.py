"""The sim graph (sim bridge + policy node) brought up through the runner, as `expo-bringup sim`
does, on an isolated ROS domain and namespace: three lift episodes in lockstep with a tiny policy,
checked from a test-side node (actions, env feedback, transitions, diagnostics) and from the
nodes' logs. Every wait is bounded.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import rclpy
from expo_bringup.graph import sim_graph
from expo_bringup.runner import LineBuffer, Runner
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import save_checkpoint
from expo_core.presets import preset_config
from expo_core.spec import task_obs_spec
from expo_ros import conversions as cv
from expo_sim.ros.graph_observer import GraphObserver

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 216 + os.getpid() % 15  # 216..230: apart from the other test files' ranges
EPISODES, HORIZON = 3, 40
OBS_DIM = task_obs_spec("lift").dim  # 19
RUN_TIMEOUT_S = 240.0
STARTUP_TIMEOUT_S = 90.0
BRIDGE_PARAMS = {"horizon": HORIZON, "num_episodes": EPISODES, "action_timeout_s": 10.0}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained EXPO agent for lift (the test checks plumbing, not learning)."""
    path = tmp_path_factory.mktemp("policy") / "ckpt"
    save_checkpoint(path, ExpoAgent(preset_config("tiny", OBS_DIM, 7), seed=0))
    return path.with_suffix(".safetensors")


def test_sim_graph_runs_three_lockstep_episodes(checkpoint: Path, record_property) -> None:
    ns = f"t_{uuid.uuid4().hex[:8]}"
    clock_topic = f"/{ns}/clock"
    graph = sim_graph(task="lift", checkpoint=str(checkpoint), namespace=ns).with_overrides(
        clock_topic,
        # The test is the bridge's lifecycle manager: it activates the bridge once it hears
        # every publisher, so that no message of the run goes out before it listens.
        sim_bridge={**BRIDGE_PARAMS, "autostart": False},
        policy_node={"diagnostics_period_s": 0.2},
    )
    out = LineBuffer()
    runner = Runner(graph, domain_id=DOMAIN_ID, stop_timeout_s=10.0, sink=out)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    obs = GraphObserver(ctx, f"/{ns}", clock_topic=clock_topic)
    code: list[int | None] = [None]

    def finished() -> bool:
        code[0] = runner.wait(timeout=0)
        return code[0] is not None

    def wait(done: Callable[[], object], what: str, timeout: float) -> None:
        try:
            obs.spin_until(done, what, timeout)
        except TimeoutError as e:
            pytest.fail(f"{e}; node output:\n{out.text()}")

    try:
        runner.start()
        try:
            obs.configure_bridge(timeout=STARTUP_TIMEOUT_S)
        except (TimeoutError, RuntimeError) as e:
            pytest.fail(f"{e}; node output:\n{out.text()}")
        wait(lambda: obs.matched() or finished(), "the observer to hear every publisher", STARTUP_TIMEOUT_S)
        assert code[0] is None, f"a node exited during startup:\n{out.text()}"
        obs.activate_bridge(timeout=STARTUP_TIMEOUT_S)
        t0 = time.monotonic()
        wait(lambda: obs.episodes_done() >= EPISODES or finished(), f"{EPISODES} episodes", RUN_TIMEOUT_S)
        wall_s = time.monotonic() - t0
        wait(finished, "the bridge to exit after its last episode", 30.0)
        # The bridge had its last messages acknowledged before exiting; the policy's final
        # transition may still be on its way.
        wait(lambda: obs.episodes_done() >= EPISODES, "the final feedback", 10.0)
        n_steps = len(obs.got["env_feedback"])
        wait(lambda: len(obs.got["transitions"]) >= n_steps, "a transition per step", 10.0)
        # Every step's action is in its transition and in the bridge's count (below); this
        # observer's own copies may lag or be lost on a loaded machine (recorded, not required).
        missed = obs.wait_for_action_copies(10.0)
    finally:
        runner.stop()
        obs.close()
        rclpy.try_shutdown(context=ctx)

    log = out.text()
    assert code[0] == 0 and runner.first_exit == (f"/{ns}/sim_bridge", 0), log
    assert all(c == 0 for c in runner.exit_codes.values()), (runner.exit_codes, log)
    assert f"summary: {EPISODES} episodes" in log, log

    feedback = obs.decoded()[0]
    problems = obs.lockstep_problems(EPISODES, HORIZON, OBS_DIM)
    assert not problems, "\n".join(problems) + f"\nnode output:\n{log}"
    assert all(m.source == f"/{ns}/policy_node" for m in obs.got["transitions"])

    # Diagnostics from the policy node, with the control-loop values, and from the bridge, whose
    # final status counts every episode and every answered observation (the round trip).
    values = obs.latest_status(": control loop")
    assert {"latency_p50_ms", "latency_p99_ms", "deadline_misses", "actions"} <= set(values), values
    assert int(values["actions"]) > 0
    sim = obs.latest_status(": sim")
    assert int(sim["episodes"]) == EPISODES and int(sim["env_steps"]) == len(feedback), sim
    assert int(float(sim["obs_to_action_count"])) == len(feedback), sim
    assert 0.0 < float(sim["obs_to_action_p50_ms"]) <= float(sim["obs_to_action_p99_ms"]), sim

    # Sim time came from the bridge, on the remapped clock topic.
    clock = obs.got["clock"]
    assert clock and cv.stamp_ns(clock[-1].clock) >= feedback[-1].stamp_ns

    sim_s = (feedback[-1].stamp_ns - feedback[0].stamp_ns) * 1e-9
    record_property("env_steps", len(feedback))
    record_property("observer_action_copies_missed", missed or "none")
    record_property("wall_s_active", round(wall_s, 2))
    record_property("env_steps_per_wall_s", round(len(feedback) / wall_s, 1))
    record_property("sim_s", round(sim_s, 2))
