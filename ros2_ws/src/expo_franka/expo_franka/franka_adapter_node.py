"""Franka adapter (lifecycle): policy actions in, franka_ros2 setpoints out, arm safety in between.

Topics (names are parameters, ``topics.*``; defaults are franka_ros2's, relative):

==========================================================  ===================================  ============
in                                                          type                                 QoS
==========================================================  ===================================  ============
action                                                      expo_interfaces/ActionCommand        reliable, 10
franka_robot_state_broadcaster/current_pose                 geometry_msgs/PoseStamped            best effort
joint_states                                                sensor_msgs/JointState               best effort
e_stop (true latches; false does nothing)                   std_msgs/Bool                        reliable, 10
out (lifecycle publishers)
cartesian_impedance_example_controller/equilibrium_pose     geometry_msgs/PoseStamped            reliable, 10
gripper goals (``gripper.interface``)                       see :mod:`franka_gripper_io`
dry_run/equilibrium_pose, dry_run/gripper_width_cmd         PoseStamped, std_msgs/Float64        reliable, 10
diagnostics                                                 diagnostic_msgs/DiagnosticArray      reliable, 10
services: trigger_e_stop, clear_e_stop                      std_srvs/Trigger
==========================================================  ===================================  ============

(franka_ros2 publishes ``current_pose`` best effort since v2.4; a best-effort subscription also
hears reliable publishers.) A new action is first checked for freshness
(:mod:`expo_franka.action_freshness`, parameter ``executor.max_action_age_ms``): one not newer
than the newest applied, or older than the bound (node clock minus its stamp, the stamp of the
observation it answers), is dropped and counted; the ages of the others are reported
(``action_age_*``). With ``executor.plan_mode`` receding or ensemble (:mod:`expo_ros.action_plan`)
an admitted command's plan is kept and a tick without a new command applies the plan's row due
then, like a new action (``plan_ticks``, ``plan_rows_dropped`` in diagnostics; an e-stop or a
policy hold ends every plan). Each admitted action is converted once (:mod:`franka_conversions`,
robosuite OSC_POSE relative to the pose measured at that moment), filtered by
:class:`~expo_franka.arm_safety.ArmSafety` and published at once; a fixed-rate tick on the node
clock republishes the current equilibrium and turns stale inputs, a silent policy or an e-stop
into a hold (equilibrium = the measured pose, latched). In ``dry_run`` (the default) the
equilibrium and gripper publishers to the arm are never created: the would-be commands go to
the ``dry_run/*`` topics. Every rejection and limit is logged and counted in diagnostics.

Lifecycle: configure validates the parameters (:mod:`franka_adapter_params`), resolves the
gripper interface and creates everything; activate starts sending; deactivate sends a final
hold and stops. The e-stop latch survives deactivate and cleanup: only ``clear_e_stop`` clears it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_interfaces.msg import ActionCommand
from expo_ros import conversions as cv
from expo_ros.action_plan import PlanExecutor
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from expo_ros.watchdog import InputWatchdog
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger

from . import action_freshness
from .action_freshness import ActionFreshness
from .arm_safety import COUNTERS, REJECTIONS, ArmSafety, Decision
from .franka_adapter_params import PARAMETERS, FrankaAdapterConfig
from .franka_conversions import (
    ACTION_DIM,
    GRIPPER_DIM,
    Pose,
    gripper_command,
    gripper_state_from_action,
    gripper_width_from_joints,
    osc_target_pose,
)
from .franka_gripper_io import GripperSink, make_sink, resolve_interface
from .pose_anchor import PoseHistory

FAILURE = TransitionCallbackReturn.FAILURE
_BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class FrankaAdapterNode(TeardownLifecycleNode):
    """ActionCommand -> equilibrium pose + gripper goals, through :class:`ArmSafety`."""

    def __init__(self, node_name: str = "franka_adapter", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for p in (*PARAMETERS, *action_freshness.PARAMETERS):
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        self.cfg: FrankaAdapterConfig | None = None
        self.freshness: ActionFreshness | None = None
        self.safety: ArmSafety | None = None
        self.active = False
        self.gripper_interface = ""
        self._e_stop_reason: str | None = None  # node-level: survives cleanup
        self._sink: GripperSink | None = None
        self._subs: list[Any] = []
        self._services: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._timers: list[Any] = []
        self._reset_inputs()

    def _reset_inputs(self) -> None:
        self._measured: Pose | None = None
        self._frame = ""
        self._width: float | None = None
        self._logged_codes: tuple[str, ...] = ()
        self.gripper_failures = 0

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            cfg = FrankaAdapterConfig.from_values(
                {p.name: self.get_parameter(p.name).value for p in PARAMETERS}
            )
            interface, note = resolve_interface(cfg.gripper_interface, cfg.topics["gripper_width_cmd"])
            max_age = action_freshness.max_age_s(self.get_parameter("executor.max_action_age_ms").value)
            plan = action_freshness.plan_config(lambda name: self.get_parameter(name).value)
            anchor = action_freshness.anchor_config(lambda name: self.get_parameter(name).value)
        except ValueError as e:
            log.error(f"configure failed: {e}")
            return FAILURE
        if note:
            log.warning(note)
        self.cfg, self.gripper_interface = cfg, interface
        self.freshness = ActionFreshness(max_age)
        self.plan = PlanExecutor(plan)
        self.anchor_deltas, tolerance_ns = anchor
        self.poses: PoseHistory[Pose] = PoseHistory(tolerance_ns=tolerance_ns)
        self._create_entities(cfg)
        out = (
            "DRY RUN: nothing is sent to the arm"
            if cfg.dry_run
            else f"sending to '{cfg.topics['equilibrium_pose']}'"
        )
        plans = "" if plan.mode == "off" else f"; plan_mode {plan.mode}"
        log.info(f"configured: {out}; gripper via {interface}; tick {cfg.control_rate_hz:g} Hz{plans}")
        return super().on_configure(state)

    def _create_entities(self, cfg: FrankaAdapterConfig) -> None:
        self.safety = ArmSafety(cfg.limits)
        if self._e_stop_reason is not None:
            self.safety.e_stop(self._e_stop_reason, None)
        self._watchdog = InputWatchdog()
        self._watchdog.add_input("current_pose", cfg.current_pose_max_age_s)
        self._watchdog.add_input("joint_states", cfg.joint_states_max_age_s)
        self._reset_inputs()
        t, sub = cfg.topics, self.create_subscription
        self._subs = [
            sub(ActionCommand, t["action"], self._on_action, _RELIABLE),
            sub(PoseStamped, t["current_pose"], self._on_current_pose, _BEST_EFFORT),
            sub(JointState, t["joint_states"], self._on_joint_states, _BEST_EFFORT),
            sub(Bool, "e_stop", self._on_e_stop, _RELIABLE),
        ]
        self._services = [
            self.create_service(Trigger, "trigger_e_stop", self._on_trigger_e_stop),
            self.create_service(Trigger, "clear_e_stop", self._on_clear_e_stop),
        ]
        pub = self.create_lifecycle_publisher
        self._pubs = {"diagnostics": pub(DiagnosticArray, "diagnostics", 10)}
        if cfg.dry_run:  # the publishers to the arm are never created
            self._pubs["equilibrium"] = pub(PoseStamped, t["dry_run_equilibrium_pose"], 10)
            self._pubs["gripper"] = pub(Float64, t["dry_run_gripper_width_cmd"], 10)
        else:
            self._pubs["equilibrium"] = pub(PoseStamped, t["equilibrium_pose"], 10)
            self._sink = make_sink(self, self.gripper_interface, t, cfg.gripper_actions)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timers = [  # the tick runs on the node clock: follows /clock under use_sim_time
            self.create_timer(1.0 / cfg.control_rate_hz, self._on_tick, autostart=False),
            self.create_timer(
                cfg.diagnostics_period_s, self._publish_diagnostics, clock=steady, autostart=False
            ),
        ]

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self.active = True
        for t in self._timers:
            t.reset()
        self.get_logger().info("active" + (" (DRY RUN)" if self.cfg.dry_run else ": commands go to the arm"))
        return ret

    def _stop(self, reason: str) -> None:
        """Stop sending; while the publishers are still enabled, send one last hold and wait
        (bounded) until the reliable subscribers have it (``_flush``)."""
        for t in self._timers:
            t.cancel()
        if self.active:
            self._send(self.safety.hold(self._measured, reason))
            self._flush(self._pubs["equilibrium"], f"the final hold ({reason})")
        self.active = False
        if self.safety is not None:
            self.safety.reset()
            self._watchdog.reset()
        if self.freshness is not None:
            self.freshness.reset()
            self.plan.reset()

    def _destroy(self) -> None:
        self._destroy_entities(self._timers, self._subs, self._pubs.values(), self._services)
        if self._sink is not None:
            self._sink.destroy()
        self._timers, self._subs, self._services, self._pubs, self._sink = [], [], [], {}, None
        self.cfg, self.safety, self.active = None, None, False

    # --- inputs ---------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stale(self, now: float) -> str:
        status = self._watchdog.check(now)
        return "" if status.ok else status.reason.removeprefix("hold: ")

    def _on_current_pose(self, msg: PoseStamped) -> None:
        self._measured = Pose(*cv.pose_stamped_to_numpy(msg))
        self.poses.add(cv.stamp_ns(msg.header.stamp), self._measured)
        self._frame = msg.header.frame_id
        self._watchdog.mark("current_pose", self._now())

    def _on_joint_states(self, msg: JointState) -> None:
        names, pos = cv.joint_state_to_numpy(msg)
        if set(self.cfg.arm_joints) <= set(names):  # a gripper-only message does not prove the arm alive
            self._watchdog.mark("joint_states", self._now())
        width = gripper_width_from_joints(names, pos, self.cfg.finger_joints)
        if width is not None:
            self._width = width

    def _on_action(self, msg: ActionCommand) -> None:
        if not self.active:
            return
        now_ns = self.get_clock().now().nanoseconds
        now, cmd = now_ns * 1e-9, cv.action_command_to_numpy(msg)
        dropped = self.freshness.admit(cmd.stamp_ns, now_ns, cmd.hold)
        if dropped:
            age_ms = (now_ns - cmd.stamp_ns) * 1e-6
            self.get_logger().warning(
                f"dropped a {dropped.replace('_', ' ')} command ({age_ms:.1f} ms old, bound "
                f"{self.freshness.max_age_s * 1e3:g} ms); the previous target stays",
                throttle_duration_sec=2.0,
            )
            return
        planned = self.plan.command(cmd, now_ns) if not cmd.hold else self.plan.reset()
        # the pose the policy saw: its own action's delta applies there (not to where the arm
        # is by now); a plan row or an ensemble blend is for a later period: the latest pose
        own = planned is not None and np.array_equal(planned, np.asarray(cmd.action, dtype=np.float32))
        anchor = self.poses.at(cmd.stamp_ns) if self.anchor_deltas and own else None
        hold_reason = cmd.hold_reason if cmd.hold else None
        self._apply(now, cmd.action if planned is None else planned, hold_reason, anchor)

    def _apply(
        self, now: float, action: np.ndarray, hold_reason: str | None, anchor: Pose | None = None
    ) -> None:
        """One action (a command's, or a plan row) -> target pose + gripper, through ArmSafety;
        ``hold_reason``: the policy's hold (None for an action); ``anchor``: the pose the action's
        delta applies to (None: the latest measured pose)."""
        a = np.asarray(action, dtype=np.float64)
        target, gripper = None, None
        if a.shape == (ACTION_DIM,) and np.all(np.isfinite(a)):
            gripper = gripper_state_from_action(a[GRIPPER_DIM], self.safety.gripper_state, self.cfg.gripper)
            last = self.safety.last_sent
            if self._measured is not None:
                try:
                    target = osc_target_pose(
                        a, anchor or self._measured, self.cfg.osc, None if last is None else last.quat
                    )
                except ValueError:  # unusable measured pose: the safety gate reports it
                    target = None
        policy_hold = (hold_reason or "no reason given") if hold_reason is not None else None
        decision = self.safety.on_action(now, target, gripper, self._measured, self._stale(now), policy_hold)
        self._send(decision, action=True)

    def _on_tick(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        planned = self.plan.due(now_ns)  # plan_mode receding/ensemble: the row due now, if new
        if planned is not None and not self.safety.e_stopped:
            return self._apply(now_ns * 1e-9, planned, None)
        now = now_ns * 1e-9
        self._send(self.safety.on_tick(now, self._measured, self._stale(now)))

    # --- e-stop ---------------------------------------------------------------------------
    def _on_e_stop(self, msg: Bool) -> None:
        if msg.data:
            self._latch_e_stop("e_stop topic")

    def _on_trigger_e_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._latch_e_stop("trigger_e_stop service")
        response.success, response.message = True, "e-stop latched: holding until clear_e_stop"
        return response

    def _on_clear_e_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        was = self.safety.clear_e_stop()
        self._e_stop_reason = None
        response.success = True
        response.message = (
            "e-stop cleared: holding until the next new action" if was else "no e-stop was latched"
        )
        self.get_logger().warning(response.message)
        return response

    def _latch_e_stop(self, source: str) -> None:
        self._e_stop_reason = source
        self.plan.reset()  # no plan row resumes the arm after an e-stop: only a new action
        if self.safety.e_stop(source, self._measured):
            self.get_logger().error(
                f"E-STOP latched ({source}): holding at the measured pose until clear_e_stop"
            )
        if self.active:  # the hold goes out now, not at the next tick
            self._send(self.safety.on_tick(self._now(), self._measured))

    # --- output ---------------------------------------------------------------------------
    def _send(self, d: Decision, action: bool = False) -> None:
        """Publish ``d``; ``action``: it answers a new action (a clean one re-arms the logging)."""
        self._log_reasons(d.reasons, rearm=action)
        if d.pose is None:
            return
        ns = self.get_clock().now().nanoseconds
        self._pubs["equilibrium"].publish(cv.pose_stamped_msg(d.pose.position, d.pose.quat, ns, self._frame))
        if d.gripper is None:
            return
        cmd = gripper_command(d.gripper, self.cfg.gripper)
        if self.cfg.dry_run:
            self._pubs["gripper"].publish(Float64(data=float(cmd.width)))
            return
        error = self._sink.send(cmd)
        if error:
            self.gripper_failures += 1
            self.get_logger().error(f"gripper {d.gripper.value} not sent: {error}")

    def _log_reasons(self, reasons: tuple[str, ...], rearm: bool) -> None:
        """A new kind of rejection/limit is logged at once, the same kind again at most every 2 s
        until a clean answer to an action (``rearm``) ends the streak."""
        codes = tuple(r.split(":", 1)[0] for r in reasons)
        log = self.get_logger()
        if codes and codes != self._logged_codes:
            for r in reasons:
                log.warning(r)
        elif codes:
            log.warning(f"still: {'; '.join(reasons)}", throttle_duration_sec=2.0)
        if codes or rearm:
            self._logged_codes = codes

    def _publish_diagnostics(self) -> None:
        s = self.safety
        values: dict[str, float | int | str | bool] = {
            "dry_run": self.cfg.dry_run,
            "gripper_interface": self.gripper_interface,
            "e_stop": s.e_stopped,
            "e_stop_reason": s.e_stop_reason,
            "holding": s.holding,
            "hold_reason": s.hold_reason,
            "gripper_state": s.gripper_state.value if s.gripper_state else "unknown",
            "gripper_width_m": self._width if self._width is not None else "unknown",
            "gripper_send_failures": self.gripper_failures,
            **{f"stale_{k}": v for k, v in self._watchdog.stale_events.items()},
            **{k: s.counters[k] for k in COUNTERS},
            **self.freshness.values(),
            "plan_mode": self.plan.mode,
            "plan_ticks": self.plan.plan_steps,
            "plan_rows_dropped": self.plan.plan_rows_dropped,
            "anchor_deltas": self.anchor_deltas,
            "anchored": self.poses.hits,
            "anchor_misses": self.poses.misses,
        }
        rejected = sum(s.counters[f"rejected_{c}"] for c in REJECTIONS)
        if s.e_stopped:
            level, message = DiagnosticStatus.ERROR, f"E-STOP latched ({s.e_stop_reason})"
        elif s.holding:
            level, message = DiagnosticStatus.WARN, f"holding: {s.hold_reason}"
        else:
            level, message = DiagnosticStatus.OK, f"sending targets; {rejected} rejections so far"
        name = f"{self.get_fully_qualified_name()}: franka adapter"
        ns = self.get_clock().now().nanoseconds
        self._pubs["diagnostics"].publish(cv.diagnostics_msg(ns, name, level, message, values, "expo_franka"))


def main(args: list[str] | None = None) -> None:
    """Run the node; Ctrl-C / SIGTERM deactivate it (a final hold) before exiting 0."""
    run_lifecycle_node(FrankaAdapterNode, args)


if __name__ == "__main__":
    main()
