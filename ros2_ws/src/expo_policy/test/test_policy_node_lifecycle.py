"""PolicyNode on an isolated ROS domain: the lifecycle through the standard services, bad
parameters failing configure with a clear message, the executable with autostart, and the
control thread at SCHED_FIFO (``rt_priority``), the heap frozen at configure (``gc_freeze``).

One rclpy context per module on its own domain id; every test puts its nodes in a fresh namespace
so tests never hear each other. Waits are for conditions (matching, messages), with timeouts;
the only fixed windows are the short ones that check that something does *not* happen.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from expo_interfaces.msg import ActionCommand
from lifecycle_msgs.msg import Transition as LifecycleTransition
from lifecycle_msgs.srv import ChangeState, GetState
from policy_node_harness import FAILURE, SUCCESS, Harness, node_fixtures
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros

DOMAIN_ID = 101 + (os.getpid() + 25) % 100  # test_policy_node's range, never its value in one process


ros_ctx, harness = node_fixtures(DOMAIN_ID)


def _call(h: Harness, srv_type, name: str, request):
    client = h.io.create_client(srv_type, f"{h.ns}/policy_node/{name}")
    h.spin_until(client.service_is_ready, f"service {name}")
    future = client.call_async(request)
    h.spin_until(future.done, f"{name} response")
    h.io.destroy_client(client)
    return future.result()


def test_lifecycle_through_the_standard_services(harness) -> None:
    h = harness()

    def change(transition_id: int) -> bool:
        req = ChangeState.Request(transition=LifecycleTransition(id=transition_id))
        return _call(h, ChangeState, "change_state", req).success

    def state() -> str:
        return _call(h, GetState, "get_state", GetState.Request()).current_state.label

    assert state() == "unconfigured"
    assert change(LifecycleTransition.TRANSITION_CONFIGURE) and state() == "inactive"
    assert h.node.cfg is not None and h.node.backend is not None
    h.spin_for(0.3)
    assert h.got["action"] == []  # configured, but not acting
    assert change(LifecycleTransition.TRANSITION_ACTIVATE) and state() == "active"
    hold = h.wait_command(lambda c: c.hold, "a hold (no inputs yet)")
    assert "stale_input" in hold.hold_reason and "joint_states never received" in hold.hold_reason
    assert hold.candidate_index == -1 and np.all(hold.action == 0.0)
    assert change(LifecycleTransition.TRANSITION_DEACTIVATE) and state() == "inactive"
    last = h.commands()[-1]
    assert last.hold and last.hold_reason == "deactivated"
    n = len(h.got["action"])
    h.spin_for(0.3)
    assert len(h.got["action"]) == n  # stopped
    assert change(LifecycleTransition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert h.node.cfg is None and h.node.backend is None


def test_deactivate_reports_the_loop_once_more_before_the_final_hold(harness) -> None:
    # A run shorter than the diagnostics period (a short sim session) still reports its loop.
    h = harness(diagnostics_period_s=3600.0)
    h.start()
    h.streaming = {"joint_states", "ee_pose", "object_poses"}
    h.wait_command(lambda c: not c.hold, "a policy action")
    assert h.got["diagnostics"] == []
    assert h.node.trigger_deactivate() == SUCCESS
    h.spin_until(lambda: h.got["diagnostics"], "the final diagnostics")
    h.spin_until(lambda: h.got["action"][-1].hold_reason == "deactivated", "the final hold")
    assert float(h.diagnostics()["actions"]) >= 1 and float(h.diagnostics()["latency_p99_ms"]) > 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"control_rate_hz": 0.0}, "parameter 'control_rate_hz' must be > 0.0"),
        (
            {"backend": "tensorrt"},
            "parameter 'backend': inference backend 'tensorrt' is not available on this machine",
        ),
        ({"task": "can"}, "parameter 'checkpoint': weights expect 19 observation values, task 'can'"),
        ({"checkpoint": "/nonexistent/ckpt"}, "parameter 'checkpoint': no checkpoint or policy-weights file"),
        ({"gc_freeze": "yes"}, "parameter 'gc_freeze'"),
    ],
)
def test_bad_parameters_fail_configure_with_a_clear_message(
    harness, checkpoint, capfd, params, message
) -> None:
    h = harness(**params)
    assert h.node.trigger_configure() == FAILURE
    assert h.node.cfg is None and h.node.backend is None
    assert message in capfd.readouterr().err
    good = {
        "control_rate_hz": 20.0,
        "backend": "torch",
        "task": "lift",
        "checkpoint": str(checkpoint),
        "gc_freeze": False,
    }
    h.node.set_parameters([Parameter(k, value=good[k]) for k in params])
    assert h.node.trigger_configure() == SUCCESS  # a failed configure leaves it re-configurable


def _spawn(ns: str, checkpoint: Path, *params: str) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID)}
    args = ["--ros-args", "-r", f"__ns:={ns}", "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true"]
    for p in params:
        args += ["-p", p]
    cmd = [sys.executable, "-m", "expo_policy.policy_node", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_gc_freeze_freezes_the_loaded_heap_at_configure_and_diagnostics_report_gc_pauses(harness) -> None:
    """gc_freeze (on by default; the harness turns it off) collects once at configure and freezes
    every object then alive; from configure on, the diagnostics count the collector's pauses."""
    gc.unfreeze()
    try:
        h = harness(gc_freeze=True, diagnostics_period_s=0.1)
        h.start()
        assert gc.get_freeze_count() > 0
        gc.collect()  # a pause of this process, which the node's meter must count
        h.spin_until(lambda: int(h.diagnostics().get("gc_collections", "0")) >= 1, "a collection reported")
        d = h.diagnostics()
        assert 0 < float(d["gc_pause_max_ms"]) <= float(d["gc_pause_total_ms"])
        assert int(d["gc_pause_max_generation"]) in (0, 1, 2)
        # one meter per node, whatever the lifecycle does; gone with the node
        assert h.node.trigger_deactivate() == SUCCESS and h.node.trigger_cleanup() == SUCCESS
        assert h.node._gc not in gc.callbacks
        h.node.set_parameters([Parameter("gc_freeze", value=False)])
        assert h.node.trigger_configure() == SUCCESS
        assert gc.get_freeze_count() == 0  # off at this configure: the earlier freeze is undone
        meters = [cb for cb in gc.callbacks if type(cb).__name__ == "PauseMeter"]
        assert meters.count(h.node._gc) == 1
        h.node.destroy_node()
        assert h.node._gc not in gc.callbacks
    finally:
        gc.unfreeze()


def test_gc_freeze_off_freezes_nothing(harness) -> None:
    gc.unfreeze()
    h = harness(gc_freeze=False)
    h.start()
    assert gc.get_freeze_count() == 0


def test_executable_autostarts_holds_and_exits_cleanly_on_sigint(ros_ctx, checkpoint: Path) -> None:
    ns = f"/t_{uuid.uuid4().hex[:8]}"
    good = _spawn(ns, checkpoint, "lockstep:=false")
    bad = _spawn(ns + "_bad", checkpoint, "lockstep:=false", "safety.pos_scale:=2.0")
    io = rclpy.create_node("io", namespace=ns, context=ros_ctx)
    got: list[ActionCommand] = []
    io.create_subscription(ActionCommand, "action", got.append, 100)
    ex = SingleThreadedExecutor(context=ros_ctx)
    ex.add_node(io)

    def spin_until(done: Callable[[], object], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                good.kill()
                pytest.fail(f"timed out waiting for {what}; node output:\n{good.communicate()[0]}")
            ex.spin_once(timeout_sec=0.05)

    try:
        spin_until(lambda: any(m.hold for m in got), "a hold from the autostarted node")
        assert "never received" in got[0].hold_reason
        good.send_signal(signal.SIGINT)
        spin_until(lambda: good.poll() is not None, "the node to exit", timeout=15.0)
        out = good.communicate()[0]
        assert good.returncode == 0, out
        spin_until(lambda: got[-1].hold_reason == "deactivated", "the final hold")
        assert bad.wait(timeout=60) == 1
        assert "parameter 'safety.pos_scale'" in bad.communicate()[0]
    finally:
        for p in (good, bad):
            if p.poll() is None:
                p.kill()
                p.communicate()
        ex.shutdown()
        io.destroy_node()


def _fifo_refused() -> str:
    """Why SCHED_FIFO cannot be tested here ('' when it can)."""
    from concurrent.futures import ThreadPoolExecutor

    from expo_ros import realtime

    def probe() -> str:
        try:
            realtime.set_fifo(1)
        except realtime.RealtimeError as e:
            return str(e)
        realtime.set_normal()
        return ""

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(probe).result(timeout=10)


def test_rt_priority_holds_the_control_thread_fifo_until_cleanup(harness) -> None:
    from expo_ros import realtime

    why = _fifo_refused()
    if why:
        pytest.skip(f"SCHED_FIFO refused here: {why}")
    h = harness(rt_priority=7)
    try:
        h.start()  # configure runs on this thread, which also spins the node's callbacks
        assert h.node.scheduling == "fifo 7" and realtime.describe() == "fifo 7"
        assert h.node.weights._pool.submit(realtime.describe).result(timeout=10) == "normal"
        h.streaming = {"joint_states", "ee_pose", "object_poses"}
        h.wait_command(lambda c: not c.hold, "a policy action at SCHED_FIFO")
        h.spin_until(lambda: h.diagnostics().get("scheduling") == "fifo 7", "diagnostics saying fifo 7")
        h.streaming = set()
        assert h.node.trigger_deactivate() == SUCCESS and h.node.trigger_cleanup() == SUCCESS
        assert realtime.describe() == "normal" and h.node.scheduling == "normal"
    finally:
        realtime.set_normal()


def test_an_inherited_real_time_scheduling_is_reported_and_restored_after_cleanup(harness) -> None:
    """A graph launched at SCHED_FIFO (expo-sim session --sched-fifo): the node reports the
    scheduling its control thread inherited, and rt_priority's cleanup gives that back, not
    normal scheduling."""
    from expo_ros import realtime

    why = _fifo_refused()
    if why:
        pytest.skip(f"SCHED_FIFO refused here: {why}")
    try:
        realtime.set_fifo(5)  # as inherited from ros2 launch started at SCHED_FIFO 5
        h = harness()
        h.start()
        assert h.node.scheduling == "fifo 5"
        assert h.node.trigger_deactivate() == SUCCESS and h.node.trigger_cleanup() == SUCCESS
        h = harness(rt_priority=7)
        h.start()
        assert h.node.scheduling == "fifo 7"
        assert h.node.trigger_deactivate() == SUCCESS and h.node.trigger_cleanup() == SUCCESS
        assert realtime.describe() == "fifo 5" and h.node.scheduling == "fifo 5"
    finally:
        realtime.set_normal()


def test_rt_priority_refused_fails_configure_saying_how(harness, capfd, monkeypatch) -> None:
    def refuse(*_args) -> None:
        raise PermissionError(1, "Operation not permitted")

    h = harness(rt_priority=80)
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert h.node.trigger_configure() == FAILURE
    err = capfd.readouterr().err
    assert "parameter 'rt_priority': SCHED_FIFO priority 80 refused" in err and "rtprio" in err
    assert h.node.cfg is None and h.node.backend is None
