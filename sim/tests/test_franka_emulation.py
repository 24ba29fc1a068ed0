"""The hardware graph (policy node -> Franka adapter -> franka_ros2) against the emulated Franka
(sim bridge realtime + Franka emulator), brought up through the runner as ``expo-bringup franka
--emulate`` does, on an isolated ROS domain and namespace: three short lift episodes with a tiny
untrained policy; commands must reach the emulated controller and move the simulated arm, and an
e-stop on the adapter's ``e_stop`` topic must latch a hold within one control period until
``clear_e_stop``. Every wait is bounded; the test waits for matching, never for fixed times.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from expo_bringup.franka_graph import CURRENT_POSE, EQUILIBRIUM_POSE, POLICY_ACTION, franka_graph
from expo_bringup.runner import LineBuffer, Runner
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import save_checkpoint
from expo_core.presets import preset_config
from expo_core.spec import task_obs_spec
from expo_franka.franka_conversions import OscScaling, Pose, osc_target_pose, rotation_angle
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from expo_sim.ros.graph_observer import GraphObserver
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = 81 + os.getpid() % 15  # 81..95: apart from the other test files' ranges
EPISODES, HORIZON = 3, 60
PERIOD_S = 0.05  # one control period at 20 Hz
OBS_DIM = task_obs_spec("lift").dim  # 19
STARTUP_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 120.0
HOLD_WINDOW = 30  # equilibria to see during the e-stop (the adapter sends ~2 per period)
SAME_POSE = 1e-9  # the adapter re-publishes the measured pose it latched, unchanged up to rounding


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained EXPO agent for lift (the test checks plumbing, not learning)."""
    path = tmp_path_factory.mktemp("policy") / "ckpt"
    save_checkpoint(path, ExpoAgent(preset_config("tiny", OBS_DIM, 7), seed=0))
    return path.with_suffix(".safetensors")


def pose_of(msg: PoseStamped) -> np.ndarray:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w])


class Timed:
    """Messages of one topic with their receive times (time.monotonic())."""

    def __init__(self) -> None:
        self.items: list[tuple[float, object]] = []

    def __call__(self, msg: object) -> None:
        self.items.append((time.monotonic(), msg))

    def since(self, t: float) -> list[tuple[float, object]]:
        return [(ti, m) for ti, m in self.items if ti >= t]


def adapter_status(obs: GraphObserver, start: int) -> list[dict[str, str]]:
    """The adapter's diagnostics values received after the first ``start`` diagnostics messages."""
    return [
        {kv.key: kv.value for kv in st.values}
        for msg in obs.got["diagnostics"][start:]
        for st in msg.status
        if st.name.endswith(": franka adapter")
    ]


# Wall-clock real time: a machine loaded by other work (load average 8-10 seen) can miss
# periods; one retry, so a timing regression still fails both tries.
@pytest.mark.flaky(reruns=1)
def test_franka_graph_runs_against_the_emulated_franka(checkpoint: Path, record_property) -> None:
    ns = f"t_{uuid.uuid4().hex[:8]}"
    clock_topic = f"/{ns}/clock"
    graph = franka_graph(task="lift", checkpoint=str(checkpoint), namespace=ns, emulate=True).with_overrides(
        clock_topic,
        # The test is the bridge's lifecycle manager: it activates the bridge once it hears
        # every publisher, so that no message of the run goes out before it listens.
        sim_bridge={"horizon": HORIZON, "num_episodes": EPISODES, "autostart": False},
        franka_adapter={"diagnostics_period_s": 0.1},
        franka_emulator={"diagnostics_period_s": 0.2},
    )
    out = LineBuffer()
    runner = Runner(graph, domain_id=DOMAIN_ID, stop_timeout_s=10.0, sink=out)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    obs = GraphObserver(ctx, f"/{ns}", clock_topic=clock_topic)
    equilibrium, measured, policy_actions = Timed(), Timed(), Timed()
    node = obs.node
    subs = [
        node.create_subscription(PoseStamped, EQUILIBRIUM_POSE, equilibrium, 1000),
        node.create_subscription(PoseStamped, CURRENT_POSE, measured, 1000),
        node.create_subscription(ActionCommand, POLICY_ACTION, policy_actions, 1000),
    ]
    e_stop = node.create_publisher(Bool, "e_stop", 10)
    clear = node.create_client(Trigger, "clear_e_stop")
    code: list[int | None] = [None]

    def finished() -> bool:
        code[0] = runner.wait(timeout=0)
        return code[0] is not None

    def wait(done: Callable[[], object], what: str, timeout: float) -> None:
        try:
            obs.spin_until(lambda: done() or finished(), what, timeout)
        except TimeoutError as e:
            pytest.fail(f"{e}; node output:\n{out.text()}")
        if code[0] is not None and not done():
            pytest.fail(f"the graph ended while waiting for {what}:\n{out.text()}")

    def recent_measured(before: float, n: int = 5) -> list[np.ndarray]:
        return [pose_of(m) for t, m in measured.items if t <= before][-n:]

    def targets_moving() -> bool:  # equilibria that are policy targets, not holds at the measured pose
        return (
            sum(
                np.max(np.abs(pose_of(m)[:3] - recent_measured(t, 1)[0][:3])) > 1e-3
                for t, m in equilibrium.items
                if recent_measured(t, 1)
            )
            >= 5
        )

    try:
        runner.start()
        try:
            obs.configure_bridge(timeout=STARTUP_TIMEOUT_S)
        except (TimeoutError, RuntimeError) as e:
            pytest.fail(f"{e}; node output:\n{out.text()}")
        wait(
            lambda: (
                obs.matched()
                and all(s.get_publisher_count() > 0 for s in subs)
                and e_stop.get_subscription_count() > 0
                and clear.service_is_ready()
            ),
            "the observer to hear every publisher and the adapter's e-stop topic and service",
            STARTUP_TIMEOUT_S,
        )
        obs.activate_bridge(timeout=STARTUP_TIMEOUT_S)
        t_active = time.monotonic()

        # 1. Commands reach the emulated controller and move the arm: policy targets, not holds.
        wait(targets_moving, "policy targets on the equilibrium pose", RUN_TIMEOUT_S)
        # 2. E-stop a few steps into the second episode, so the hold window sees no env reset.
        wait(
            lambda: obs.episodes_done() >= 1 and sum(m.episode == 1 for m in obs.got["env_feedback"]) >= 5,
            "the second episode",
            RUN_TIMEOUT_S,
        )
        diag_start = len(obs.got["diagnostics"])
        t_stop = time.monotonic()
        e_stop.publish(Bool(data=True))

        def held() -> np.ndarray | None:
            """The hold pose once an equilibrium after the e-stop equals a measured pose."""
            for t, m in equilibrium.since(t_stop):
                p = pose_of(m)
                if any(np.max(np.abs(p - q)) < SAME_POSE for q in recent_measured(t)):
                    return p
            return None

        wait(lambda: held() is not None, "the e-stop hold on the equilibrium pose", 10.0)
        hold = held()
        t_hold = next(
            t for t, m in equilibrium.since(t_stop) if np.max(np.abs(pose_of(m) - hold)) < SAME_POSE
        )
        n_policy = len(policy_actions.items)
        wait(
            lambda: (
                len(equilibrium.since(t_hold)) >= HOLD_WINDOW
                and len(policy_actions.items) >= n_policy + HOLD_WINDOW // 3
                and any(s.get("e_stop") == "true" for s in adapter_status(obs, diag_start))
            ),
            "equilibria and policy actions during the e-stop, and the adapter's report",
            10.0,
        )
        t_clear = time.monotonic()
        latched = equilibrium.items[:]
        future = clear.call_async(Trigger.Request())
        wait(future.done, "clear_e_stop", 10.0)
        assert future.result().success, future.result().message
        wait(
            lambda: any(np.max(np.abs(pose_of(m) - hold)) > SAME_POSE for _, m in equilibrium.since(t_clear)),
            "a policy target after clear_e_stop",
            10.0,
        )
        t_release = next(
            t for t, m in equilibrium.since(t_clear) if np.max(np.abs(pose_of(m) - hold)) > SAME_POSE
        )
        diag_clear = len(obs.got["diagnostics"])
        wait(
            lambda: any(s.get("e_stop") == "false" for s in adapter_status(obs, diag_clear)),
            "the adapter's report of the cleared e-stop",
            10.0,
        )
        # 3. The rest of the run: three episodes, then the bridge exits and the graph stops.
        wait(lambda: obs.episodes_done() >= EPISODES, f"{EPISODES} episodes", RUN_TIMEOUT_S)
        wall_s = time.monotonic() - t_active
        wait(finished, "the bridge to exit after its last episode", 30.0)
    finally:
        runner.stop()
        obs.close()
        rclpy.try_shutdown(context=ctx)

    log = out.text()
    assert code[0] == 0 and runner.first_exit == (f"/{ns}/sim_bridge", 0), log
    assert all(c == 0 for c in runner.exit_codes.values()), (runner.exit_codes, log)
    assert f"summary: {EPISODES} episodes" in log, log

    # The e-stop latched within one control period and held while the policy kept acting.
    latency_s = t_hold - t_stop
    assert latency_s < PERIOD_S, f"e-stop hold after {1e3 * latency_s:.1f} ms"
    during = [pose_of(m) for t, m in latched if t_hold <= t < t_clear]
    assert len(during) >= HOLD_WINDOW and all(np.max(np.abs(p - hold)) < SAME_POSE for p in during)
    window = [s for s in adapter_status(obs, diag_start) if s.get("e_stop") == "true"]
    assert window and all(s["holding"] == "true" for s in window), window
    # ... and the emulator drove the sim toward it: every unsaturated command it answered a pose
    # of the window with aims exactly at the hold pose (robosuite's OSC goal = pose + delta).
    pose_at = {cv.stamp_ns(m.header.stamp): (t, pose_of(m)) for t, m in measured.items}
    aimed = []
    for cmd in obs.got["action"]:
        t, pose = pose_at.get(cv.stamp_ns(cmd.header.stamp), (None, None))
        a = np.frombuffer(cmd.action, dtype=np.float32).astype(np.float64)
        if t is None or not t_hold + PERIOD_S <= t < t_clear - PERIOD_S or np.max(np.abs(a[:6])) >= 1.0:
            continue
        goal = osc_target_pose(a, Pose(pose[:3], pose[3:]), OscScaling())
        aimed.append(
            max(float(np.max(np.abs(goal.position - hold[:3]))), rotation_angle(goal.quat, hold[3:]))
        )
    assert len(aimed) >= 3 and max(aimed) < 1e-5, aimed  # float32 actions: ~1e-8 m
    # How still the simulated arm held is robosuite's dynamics (a soft OSC, kp 150), reported only.
    settled = [
        float(np.linalg.norm(pose_of(m)[:3] - hold[:3])) for t, m in measured.items if t_hold <= t < t_clear
    ]
    # The emulator answers every measured pose (100 Hz: the bridge publishes the pose at every
    # chunk) with a command for the coming env step; the feedback echoes the command in effect
    # at the end of each step: mostly one made for that very step, so the equilibria took effect
    # within the step they were meant for.
    by_episode: dict[int, list[int]] = {}
    for f in obs.got["env_feedback"]:
        by_episode.setdefault(f.episode, []).append(f.step)
    lags = Counter(i - step for steps in by_episode.values() for i, step in enumerate(steps))
    assert min(lags) >= 0, f"a command claimed a later step than it took effect in: {lags}"
    # On time mostly, unless the machine could not keep the bridge on wall time (it counts the
    # periods it fell behind by more than a period: a world that does not wait drops the late
    # commands, and the arm keeps its previous equilibrium meanwhile).
    overruns = int(float(obs.latest_status(": sim").get("overruns", "0")))
    if overruns <= 0.1 * len(obs.got["env_feedback"]):
        assert lags[0] >= 0.5 * sum(lags.values()), (lags, overruns)

    # Env steps advanced in every episode; the emulated controller got the commands.
    feedback = obs.got["env_feedback"]
    assert obs.episodes_done() == EPISODES
    assert len(feedback) >= EPISODES * (HORIZON // 2), len(feedback)
    stopped = re.search(r"franka_emulator\]: stopped: (.*)", log)
    assert stopped, log
    counts = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", stopped.group(1))}
    assert counts["equilibrium_poses"] >= len(feedback) * 0.9, (counts, len(feedback))
    assert counts["actions_sent"] >= len(feedback) * 0.9, (counts, len(feedback))
    assert counts["rejected"] == 0, counts
    emulator = obs.latest_status(": franka emulator")
    assert int(emulator["equilibrium_poses"]) > 0 and int(emulator["actions_sent"]) > 0, emulator
    actions = [np.frombuffer(m.action, dtype=np.float32) for m in obs.got["action"]]
    assert actions and max(float(np.max(np.abs(a[:6]))) for a in actions) > 0.01  # the arm was driven

    record_property("env_steps", len(feedback))
    record_property("wall_s_active", round(wall_s, 2))
    record_property("e_stop_latency_ms", round(1e3 * latency_s, 2))
    record_property("release_latency_ms", round(1e3 * (t_release - t_clear), 2))
    record_property("hold_drift_max_m", round(max(settled), 4))
    record_property("command_lag_periods", dict(lags))
    record_property("bridge_overruns", overruns)
    record_property("emulator_counts", counts)
