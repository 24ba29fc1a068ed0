"""Gripper sinks: the goals sent for open/close, with stand-ins for franka_msgs / control_msgs
(not installable in pip mode) and for rclpy's ActionClient. The real action round trip needs a
full ROS 2 install with franka_ros2 and is not tested here."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
from expo_franka import franka_gripper_io as gio
from expo_franka.franka_conversions import GripperConfig, GripperState, gripper_command


class _Goal(SimpleNamespace):
    pass


def _action_type(name: str, **defaults: object) -> type:
    def goal(**kw: object) -> _Goal:
        fields = {k: (v() if callable(v) else v) for k, v in defaults.items()}
        return _Goal(**{**fields, **kw})

    return type(name, (), {"Goal": staticmethod(goal)})


class FakeClient:
    """Records goals; ``ready`` plays the action server being up."""

    made: list[FakeClient] = []

    def __init__(self, node: object, action_type: type, name: str) -> None:
        self.type, self.name, self.goals, self.ready, self.destroyed = action_type, name, [], True, False
        FakeClient.made.append(self)

    def server_is_ready(self) -> bool:
        return self.ready

    def send_goal_async(self, goal: object) -> None:
        self.goals.append(goal)

    def destroy(self) -> None:
        self.destroyed = True


@pytest.fixture
def fakes(monkeypatch):
    FakeClient.made = []
    monkeypatch.setattr(gio, "ActionClient", FakeClient)
    franka = types.ModuleType("franka_msgs.action")
    franka.Move = _action_type("Move", width=0.0, speed=0.0)
    franka.Grasp = _action_type(
        "Grasp", width=0.0, speed=0.0, force=0.0, epsilon=lambda: SimpleNamespace(inner=0.005, outer=0.005)
    )
    control = types.ModuleType("control_msgs.action")
    control.GripperCommand = _action_type(
        "GripperCommand", command=lambda: SimpleNamespace(position=0.0, max_effort=0.0)
    )
    monkeypatch.setitem(sys.modules, "franka_msgs.action", franka)
    monkeypatch.setitem(sys.modules, "control_msgs.action", control)
    return FakeClient


CFG = GripperConfig(open_width=0.08, force=30.0, speed=0.05, epsilon_outer=0.07)


def test_franka_actions_open_with_move_and_close_with_grasp(fakes) -> None:
    sink = gio.FrankaActionSink(object(), "franka_gripper/move", "franka_gripper/grasp")
    move, grasp = fakes.made
    assert (move.name, grasp.name) == ("franka_gripper/move", "franka_gripper/grasp")
    assert sink.send(gripper_command(GripperState.OPEN, CFG)) == ""
    assert sink.send(gripper_command(GripperState.CLOSED, CFG)) == ""
    assert (move.goals[0].width, move.goals[0].speed) == (0.08, 0.05)
    g = grasp.goals[0]
    assert (g.width, g.speed, g.force, g.epsilon.inner, g.epsilon.outer) == (0.0, 0.05, 30.0, 0.005, 0.07)
    grasp.ready = False
    assert "'franka_gripper/grasp' is not available" in sink.send(gripper_command(GripperState.CLOSED, CFG))
    assert len(grasp.goals) == 1
    sink.destroy()
    assert move.destroyed and grasp.destroyed


def test_gripper_action_sends_half_the_width_as_franka_gripper_doubles_it(fakes) -> None:
    sink = gio.GripperActionSink(object(), "franka_gripper/gripper_action")
    (client,) = fakes.made
    sink.send(gripper_command(GripperState.OPEN, CFG))
    assert client.goals[0].command.position == pytest.approx(0.04)
    assert client.goals[0].command.max_effort == 30.0


def test_auto_prefers_franka_actions_then_gripper_action(monkeypatch) -> None:
    monkeypatch.setattr(gio, "available", lambda pkg: pkg == "control_msgs")
    interface, note = gio.resolve_interface("auto", "w")
    assert interface == "gripper_action" and "franka_msgs is not installed" in note
    monkeypatch.setattr(gio, "available", lambda pkg: True)
    assert gio.resolve_interface("auto", "w") == ("franka_actions", "")
