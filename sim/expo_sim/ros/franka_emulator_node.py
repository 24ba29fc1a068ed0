"""Emulated franka_ros2 controller (lifecycle): equilibrium poses in, the sim bridge's actions out.

With the sim bridge in realtime mode (joint names fr3_*, fingers as franka_ros2 reports them,
``ee_pose`` remapped to ``franka_robot_state_broadcaster/current_pose``), this node makes the
simulated arm speak what the Franka adapter expects from franka_ros2, so the hardware graph
(policy -> adapter -> franka_ros2) runs in CI without hardware
(:func:`expo_bringup.franka_graph.franka_graph` with ``emulate=True``).

Topics (names are parameters, ``topics.*``; defaults are franka_ros2's, relative):

========================================================  ===============================  ===========
in                                                        type                             QoS
========================================================  ===============================  ===========
cartesian_impedance_example_controller/equilibrium_pose   geometry_msgs/PoseStamped        reliable, 10
gripper_width_cmd (the adapter's ``width_topic`` gripper)  std_msgs/Float64 [m]             reliable, 10
franka_robot_state_broadcaster/current_pose (the bridge)  geometry_msgs/PoseStamped        best effort
env_feedback (the bridge; episode indices only)           expo_interfaces/EnvFeedback      reliable, 50
out (lifecycle publishers)
action (to the sim bridge)                                expo_interfaces/ActionCommand    reliable, 10
diagnostics                                               diagnostic_msgs/DiagnosticArray  reliable, 10
========================================================  ===============================  ===========

Control: the realtime bridge publishes the measured pose at each control period's end (and at
every 10 ms chunk of its physics with ``realtime_ee_pose_every_substep``; franka_ros2's state
broadcaster publishes faster still); on each one, once an equilibrium has arrived, the emulator
sends one command computed against that very pose
(:func:`expo_sim.ros.franka_emulation.emulated_action`), which the bridge applies at the next
chunk boundary after it arrives. So a new equilibrium takes effect only with the next pose: up
to a period later at 20 Hz poses (the real controller pulls toward it at once), within about a
chunk at 100 Hz poses, which cost more than they gained on a loaded 2-core machine (see
``sim_bridge.yaml``). A pose already a whole pose interval old on the node clock (a newer one is
out: the emulator is behind) is skipped and counted (``skipped_stale``). Like the real
controller it keeps the last equilibrium for as long as no new one arrives; before the first
one it sends nothing (the realtime bridge does not step until a command arrives: the arm stays
where it is).

Diagnostics count what reached the emulated controller (equilibrium poses, gripper commands)
and what it sent (actions, saturated ones), plus the last tracking error; tests read them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_core.tasks import CONTROL_FREQ_HZ
from expo_franka.franka_conversions import Pose
from expo_interfaces.msg import ActionCommand, EnvFeedback
from expo_ros import conversions as cv
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64

from expo_sim.ros.franka_emulation import EpisodeIndices, emulated_action
from expo_sim.ros.franka_emulator_params import PARAMETERS, FrankaEmulatorConfig

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Counter keys, in report order.
COUNTERS = (
    "equilibrium_poses",
    "gripper_commands",
    "measured_poses",
    "actions_sent",
    "saturated",
    "waiting_for_equilibrium",
    "rejected",
    "skipped_stale",
    "reaims",
)


class FrankaEmulator(TeardownLifecycleNode):
    """Equilibrium pose + gripper width -> OSC_POSE ActionCommand for the sim bridge."""

    def __init__(self, node_name: str = "franka_emulator", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for p in PARAMETERS:
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        self.cfg: FrankaEmulatorConfig | None = None
        self.active = False
        self.counters: Counter[str] = Counter()
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._timers: list[Any] = []
        self._reset()

    def _reset(self) -> None:
        self._equilibrium: Pose | None = None
        self._width: float | None = None
        self._indices = EpisodeIndices(round(1e9 / CONTROL_FREQ_HZ))
        self._errors = (float("nan"), float("nan"))  # last translation [m], rotation [rad] error
        self._prev_pose_ns: int | None = None  # stamp of the previous measured pose
        self._last_pose: PoseStamped | None = None  # the newest measured pose answered
        self._reaim_ns = 0  # stamp of the newest re-aim command (strictly increasing)

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = FrankaEmulatorConfig.from_values(
                {p.name: self.get_parameter(p.name).value for p in PARAMETERS}
            )
        except ValueError as e:
            self.get_logger().error(f"configure failed: {e}")
            return FAILURE
        self.cfg = cfg
        self._reset()
        t, sub = cfg.topics, self.create_subscription
        self._subs = [
            sub(PoseStamped, t["equilibrium_pose"], self._on_equilibrium, _RELIABLE),
            sub(Float64, t["gripper_width_cmd"], self._on_gripper_width, _RELIABLE),
            sub(PoseStamped, t["current_pose"], self._on_current_pose, _BEST_EFFORT),
            sub(EnvFeedback, t["env_feedback"], self._on_feedback, QoSProfile(depth=50)),
        ]
        pub = self.create_lifecycle_publisher
        self._pubs = {
            "action": pub(ActionCommand, t["action"], 10),
            "diagnostics": pub(DiagnosticArray, "diagnostics", 10),
        }
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timers = [
            self.create_timer(
                cfg.diagnostics_period_s, self._publish_diagnostics, clock=steady, autostart=False
            )
        ]
        self.get_logger().info(
            f"configured: '{t['equilibrium_pose']}' + '{t['gripper_width_cmd']}' -> '{t['action']}', "
            f"one command per measured pose on '{t['current_pose']}'"
        )
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self.active = True
        for t in self._timers:
            t.reset()
        self.get_logger().info("active: waiting for the first equilibrium pose")
        return ret

    def _stop(self, reason: str = "") -> None:
        """Stop sending: the realtime bridge then holds the arm by itself (no command = hold)."""
        for t in self._timers:
            t.cancel()
        if self.active:
            self.get_logger().info(f"stopped: {self._summary()}")
        self.active = False

    def _destroy(self) -> None:
        self._destroy_entities(self._timers, self._subs, self._pubs.values())
        self._timers, self._subs, self._pubs = [], [], {}
        self.cfg, self.active = None, False

    # --- callbacks ------------------------------------------------------------------------
    def _on_equilibrium(self, msg: PoseStamped) -> None:
        self.counters["equilibrium_poses"] += 1
        self._equilibrium = Pose(*cv.pose_stamped_to_numpy(msg))
        if self.active and self.cfg.reaim_on_equilibrium and self._last_pose is not None:
            # franka's controller tracks a new equilibrium at once: aim the arm at it now, from
            # the newest measured pose, stamped just after it so the bridge's newest-wins rule
            # takes it over that pose's own command (and applies the delta to that pose)
            pose_ns = cv.stamp_ns(self._last_pose.header.stamp)
            self._reaim_ns = max(pose_ns, self._reaim_ns) + 1
            if self._send(self._last_pose, self._reaim_ns):
                self.counters["reaims"] += 1

    def _on_gripper_width(self, msg: Float64) -> None:
        self.counters["gripper_commands"] += 1
        self._width = float(msg.data)

    def _on_feedback(self, msg: EnvFeedback) -> None:
        fb = cv.env_feedback_to_numpy(msg)
        self._indices.feedback(fb.episode, fb.done, fb.stamp_ns)

    def _on_current_pose(self, msg: PoseStamped) -> None:
        self.counters["measured_poses"] += 1
        stamp = cv.stamp_ns(msg.header.stamp)
        interval = stamp - self._prev_pose_ns if self._prev_pose_ns is not None else 0
        self._prev_pose_ns = stamp
        if not self.active:
            return
        if interval > 0 and self.get_clock().now().nanoseconds - stamp >= interval:
            self.counters["skipped_stale"] += 1  # a newer pose is already out: answer that one
            return
        if self._equilibrium is None:
            self.counters["waiting_for_equilibrium"] += 1
            return
        self._last_pose = msg
        self._send(msg, stamp)

    def _send(self, msg: PoseStamped, stamp_ns: int) -> bool:
        """The command driving the arm from the measured pose ``msg`` to the equilibrium, stamped
        ``stamp_ns``; False when none could be made (counted, logged)."""
        measured = Pose(*cv.pose_stamped_to_numpy(msg))
        try:
            action, delta = emulated_action(
                self._equilibrium, measured, self._width, self.cfg.osc, self.cfg.gripper
            )
        except ValueError as e:
            self.counters["rejected"] += 1
            self.get_logger().error(f"no command this period: {e}", throttle_duration_sec=2.0)
            return False
        episode, step = self._indices.next(stamp_ns)
        cmd = cv.Command(
            action=action,
            stamp_ns=stamp_ns,  # the measured pose it answers (a re-aim: 1 ns after it)
            episode=episode,
            step=step,
            frame_id=msg.header.frame_id,
        )
        self._pubs["action"].publish(cv.action_command_msg(cmd))
        self.counters["actions_sent"] += 1
        self.counters["saturated"] += int(delta.saturated)
        self._errors = (delta.translation_error_m, delta.rotation_error_rad)
        return True

    # --- diagnostics ----------------------------------------------------------------------
    def _summary(self) -> str:
        return ", ".join(f"{k} {self.counters[k]}" for k in COUNTERS)

    def _publish_diagnostics(self) -> None:
        values: dict[str, float | int | str | bool] = {
            **{k: self.counters[k] for k in COUNTERS},
            "tracking_error_m": self._errors[0],
            "tracking_error_rad": self._errors[1],
            "gripper_width_cmd_m": self._width if self._width is not None else "none",
            "episode": self._indices.episode,
        }
        if self._equilibrium is None:
            level, message = DiagnosticStatus.WARN, "waiting for the first equilibrium pose"
        else:
            level, message = DiagnosticStatus.OK, "tracking the equilibrium pose"
        name = f"{self.get_fully_qualified_name()}: franka emulator"
        ns = self.get_clock().now().nanoseconds
        self._pubs["diagnostics"].publish(cv.diagnostics_msg(ns, name, level, message, values, "expo_sim"))


def main(args: list[str] | None = None) -> None:
    """Run the emulator until Ctrl-C / SIGTERM (exit 0); exit 1 when autostart fails."""
    run_lifecycle_node(FrankaEmulator, args)


if __name__ == "__main__":
    main()
