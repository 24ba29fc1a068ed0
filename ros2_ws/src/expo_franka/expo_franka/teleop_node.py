"""Teleop node (lifecycle): sensor_msgs/Joy from a SpaceMouse, a gamepad or the keyboard tool ->
the operator's TeleopCommand for the policy node's arbitration.

==================  ===============================  ==========================================
in                  type                             notes
==================  ===============================  ==========================================
joy                 sensor_msgs/Joy                  ``topics.joy``: spacenav/joy, joy, ...
e_stop              std_msgs/Bool                    true latches the teleop e-stop (the same
                                                     topic the Franka adapter latches on)
action              expo_interfaces/ActionCommand    ``topics.action``: what the policy node
                                                     sent; its gripper seeds an engagement
out (lifecycle)
teleop              expo_interfaces/TeleopCommand    reliable, depth 10; on every Joy message
                                                     and at ``publish_rate_hz``
e_stop              std_msgs/Bool                    true when the mapping's e-stop button
                                                     is pressed
diagnostics         diagnostic_msgs/DiagnosticArray  1 Hz: deadman, valid, reason, joy age,
                                                     counts; WARN when not valid while held
service             std_srvs/Trigger                 ``~/clear_e_stop`` (then release the
                                                     deadman to re-arm)
==================  ===============================  ==========================================

The mapping, the deadman, arming, the e-stop latch and the Joy watchdog are
:mod:`expo_franka.teleop_mapping`; the parameters (one YAML per device under
``expo_bringup/config/teleop_*.yaml``) are :mod:`expo_franka.teleop_params`. The steady
republication matters: the policy node holds the arm when TeleopCommands stop while the deadman
was held. On deactivate the node publishes one last state with the deadman as it was and
``valid`` false ("teleop node stopped"): an operator who held control keeps the arm held, and the
policy only resumes after a fresh teleop node sees the deadman released.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_interfaces.msg import ActionCommand, TeleopCommand
from expo_ros import conversions as cv
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from .teleop_mapping import TeleopMapper
from .teleop_params import PARAMETERS, TeleopNodeConfig

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class TeleopNode(TeardownLifecycleNode):
    """Joy -> TeleopCommand through :class:`~expo_franka.teleop_mapping.TeleopMapper`."""

    def __init__(self, node_name: str = "teleop", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for p in PARAMETERS:
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        self.cfg: TeleopNodeConfig | None = None
        self.mapper: TeleopMapper | None = None
        self.active = False
        self.published = 0
        self._last_state = None
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._timers: list[Any] = []
        self._service = None

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = TeleopNodeConfig.from_values({p.name: self.get_parameter(p.name).value for p in PARAMETERS})
        except ValueError as e:
            self.get_logger().error(f"configure failed: {e}")
            return FAILURE
        self.cfg, self.mapper = cfg, TeleopMapper(cfg.mapping, cfg.joy_timeout_s)
        sub = self.create_subscription
        self._subs = [
            sub(Joy, cfg.joy_topic, self._on_joy, 10),
            sub(Bool, "e_stop", self._on_e_stop, _RELIABLE),
            sub(ActionCommand, cfg.action_topic, self._on_action, 10),
        ]
        pub = self.create_lifecycle_publisher
        self._pubs = {
            "teleop": pub(TeleopCommand, "teleop", _RELIABLE),
            "e_stop": pub(Bool, "e_stop", _RELIABLE),
            "diagnostics": pub(DiagnosticArray, "diagnostics", 10),
        }
        self._service = self.create_service(Trigger, "~/clear_e_stop", self._on_clear_e_stop)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timers = [  # publication on the node clock (sim time in sim), diagnostics on wall time
            self.create_timer(1.0 / cfg.publish_rate_hz, self._publish, autostart=False),
            self.create_timer(1.0, self._publish_diagnostics, clock=steady, autostart=False),
        ]
        m = cfg.mapping
        self.get_logger().info(
            f"configured: {m.device} on '{cfg.joy_topic}' ({m.num_axes} axes, deadman button "
            f"{m.deadman_button}); publishing 'teleop' at {cfg.publish_rate_hz:g} Hz"
        )
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        self.active = True
        for t in self._timers:
            t.reset()
        return ret

    def _stop(self, reason: str) -> None:
        for t in self._timers:
            t.cancel()
        if self.active and self.mapper is not None:
            now = self._now_ns()
            last = self.mapper.state(now)
            final = cv.TeleopState(
                now, last.deadman, False, last.action * 0, f"teleop node stopped ({reason})", last.device
            )
            self._pubs["teleop"].publish(cv.teleop_msg(final))
        self.active = False

    def _destroy(self) -> None:
        services = () if self._service is None else (self._service,)
        self._destroy_entities(self._timers, self._subs, self._pubs.values(), services)
        self._timers, self._subs, self._pubs, self._service = [], [], {}, None
        self.cfg, self.mapper, self.active = None, None, False

    # --- callbacks ------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_joy(self, msg: Joy) -> None:
        if self.mapper is None:
            return
        pressed_e_stop = self.mapper.on_joy(cv.joy_to_numpy(msg), self._now_ns())
        if pressed_e_stop:
            self.get_logger().error("e-stop button pressed: teleop latched, publishing e_stop")
            if self.active:
                self._pubs["e_stop"].publish(Bool(data=True))
        self._publish()

    def _on_e_stop(self, msg: Bool) -> None:
        if msg.data and self.mapper is not None and self.mapper.e_stop_reason is None:
            self.mapper.e_stop("e_stop topic")
            self.get_logger().error("e-stop: teleop latched (clear_e_stop, then release the deadman)")

    def _on_action(self, msg: ActionCommand) -> None:
        if self.mapper is not None and len(msg.action):
            self.mapper.on_sent_gripper(float(msg.action[-1]))

    def _on_clear_e_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.mapper is None:
            response.success, response.message = False, "not configured"
            return response
        self.mapper.clear_e_stop()
        response.success = True
        response.message = "e-stop cleared" + ("" if self.mapper.armed else ": release the deadman to re-arm")
        self.get_logger().info(response.message)
        return response

    def _publish(self) -> None:
        if not self.active or self.mapper is None:
            return
        state = self.mapper.state(self._now_ns())
        self._pubs["teleop"].publish(cv.teleop_msg(state))
        self.published += 1
        last = self._last_state
        if last is None or (last.deadman, last.valid, last.reason) != (
            state.deadman,
            state.valid,
            state.reason,
        ):
            log = self.get_logger()
            if state.deadman and not state.valid:
                log.warning(f"operator holds the deadman but the input is not usable: {state.reason}")
            elif state.deadman:
                log.info("operator has control")
            elif last is not None and last.deadman:
                log.info("operator released control")
        self._last_state = state

    def _publish_diagnostics(self) -> None:
        if not self.active or self.mapper is None:
            return
        now = self._now_ns()
        m, state = self.mapper, self.mapper.state(now)
        age = m.joy_age_s(now)
        values: dict[str, float | int | str | bool] = {
            "device": m.m.device,
            "deadman": state.deadman,
            "valid": state.valid,
            "reason": state.reason,
            "armed": m.armed,
            "e_stop": m.e_stop_reason is not None,
            "joy_age_ms": -1.0 if age is None else age * 1e3,
            "joy_messages": m.messages,
            "joy_rejected": sum(m.rejected.values()),
            "teleop_published": self.published,
        }
        if state.deadman and not state.valid:
            level, message = DiagnosticStatus.WARN, f"holding: {state.reason}"
        elif m.e_stop_reason is not None:
            level, message = DiagnosticStatus.WARN, state.reason
        else:
            level, message = DiagnosticStatus.OK, "operator in control" if state.deadman else "standing by"
        self._pubs["diagnostics"].publish(
            cv.diagnostics_msg(
                now, f"{self.get_fully_qualified_name()}: teleop", level, message, values, "expo_teleop"
            )
        )


def main(args: list[str] | None = None) -> None:
    """Run the node; Ctrl-C / SIGTERM deactivate it (a last 'not valid' state) before exiting 0."""
    run_lifecycle_node(TeleopNode, args)


if __name__ == "__main__":
    main()
