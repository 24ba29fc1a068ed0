"""Scripted intervener (lifecycle, sim only): the task's scripted expert takes over from the
policy when it strays, publishing the operator's TeleopCommand with the deadman held.

==============  ================================  =============================================
in              type                              notes
==============  ================================  =============================================
ee_pose         geometry_msgs/PoseStamped         the sim bridge's, world frame (the expert's)
object_poses    geometry_msgs/PoseArray           same stamp as ee_pose: one observation
action          expo_interfaces/ActionCommand     what the policy sent (the distance rule)
env_feedback    expo_interfaces/EnvFeedback       a done step ends the episode (new expert)
out (lifecycle)
teleop          expo_interfaces/TeleopCommand     one per observation, stamped like it:
                                                  deadman = the expert acts, action = the
                                                  expert's; device 'scripted'
diagnostics     diagnostic_msgs/DiagnosticArray   1 Hz: engaged, takeovers, steps, last event
==============  ================================  =============================================

Per observation: :class:`~expo_sim.ros.intervener_expert.ScriptedIntervener` (the task's
noise-free scripted expert and :class:`~expo_sim.ros.intervener_rule.InterventionRule`: stall /
distance from the expert, budget per episode) -> one TeleopCommand. The policy's action for the
previous observation (``action``, matched by stamp) feeds the distance rule.
Answering every observation with a stamped message lets a lockstep policy node wait for the
verdict (``expo_policy.intervention.InterventionArbiter.answered``), which makes the loop
deterministic. The expert needs the constants of the task's scene (bin and peg positions), so
the node builds the task's environment once at configure (~1 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_interfaces.msg import ActionCommand, EnvFeedback, TeleopCommand
from expo_policy.sync import ExactStampSync
from expo_ros import conversions as cv
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from expo_ros.params import ParamSpec, as_bool, as_float, as_int, as_str
from geometry_msgs.msg import PoseArray, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy

from expo_sim.envs.scripted import SCRIPTED_TASKS

from .intervener_expert import ScriptedIntervener
from .intervener_rule import IntervenerConfig

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure + activate at startup (pip mode has no lifecycle manager)"),
    ParamSpec("task", "lift", f"task with a scripted expert, one of {list(SCRIPTED_TASKS)}"),
    ParamSpec("seed", 0, "expert randomness of episode i: seed + i (the style is noise-free)"),
    ParamSpec("stall_steps", 30, "stall rule window [steps]; 0 = off"),
    ParamSpec("stall_distance_m", 0.01, "stall: end effector moved less than this over the window [m]"),
    ParamSpec("disagreement", 1.0, "distance rule: |policy - expert| over dx, dy, dz above this; 0 = off"),
    ParamSpec("disagreement_steps", 10, "... for this many consecutive steps"),
    ParamSpec("grace_steps", 10, "no takeover in an episode's first steps"),
    ParamSpec("takeover_steps", 40, "the expert hands back after this many steps"),
    ParamSpec("cooldown_steps", 20, "no takeover this many steps after a hand-back"),
    ParamSpec("max_takeovers", 2, "takeovers per episode (budget)"),
    ParamSpec("max_steps", 120, "expert steps per episode (budget)"),
)


@dataclass(frozen=True)
class IntervenerNodeConfig:
    autostart: bool
    task: str
    seed: int
    rule: IntervenerConfig

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> IntervenerNodeConfig:
        task = as_str("task", v["task"])
        if task not in SCRIPTED_TASKS:
            raise ValueError(f"parameter 'task' must be one of {list(SCRIPTED_TASKS)}, got {task!r}")
        rule = IntervenerConfig(
            stall_steps=as_int("stall_steps", v["stall_steps"], 0),
            stall_distance_m=as_float("stall_distance_m", v["stall_distance_m"], 0.0, lo_open=False),
            disagreement=as_float("disagreement", v["disagreement"], 0.0, lo_open=False),
            disagreement_steps=as_int("disagreement_steps", v["disagreement_steps"], 1),
            grace_steps=as_int("grace_steps", v["grace_steps"], 0),
            takeover_steps=as_int("takeover_steps", v["takeover_steps"], 1),
            cooldown_steps=as_int("cooldown_steps", v["cooldown_steps"], 0),
            max_takeovers=as_int("max_takeovers", v["max_takeovers"], 0),
            max_steps=as_int("max_steps", v["max_steps"], 0),
        )
        return cls(as_bool("autostart", v["autostart"]), task, as_int("seed", v["seed"], 0), rule)


class IntervenerNode(TeardownLifecycleNode):
    """Observations -> expert action + takeover decision -> TeleopCommand."""

    def __init__(self, node_name: str = "intervener", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for p in PARAMETERS:
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        self.cfg: IntervenerNodeConfig | None = None
        self.intervener: ScriptedIntervener | None = None
        self.env = None
        self.active = False
        self.published = 0
        self.last_event = ""
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._timer = None

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = IntervenerNodeConfig.from_values(
                {p.name: self.get_parameter(p.name).value for p in PARAMETERS}
            )
        except ValueError as e:
            self.get_logger().error(f"configure failed: {e}")
            return FAILURE
        from expo_sim.envs.robosuite_env import make_env  # MuJoCo: only once configured

        self.env = make_env(cfg.task)
        self.env.reset(seed=cfg.seed)  # scene constants (peg, bins) are read from a reset scene
        self.cfg = cfg
        self.intervener = ScriptedIntervener(self.env, cfg.task, cfg.rule, cfg.seed)
        self._sync = ExactStampSync(("ee_pose", "object_poses"))
        self._actions: dict[int, np.ndarray] = {}  # obs stamp -> the policy's action for it
        self._done_stamp = -1  # stamp of the last done feedback
        self._episode_start: int | None = None  # stamp of this episode's first observation
        self._prev_stamp: int | None = None  # the previous observation answered
        sub = self.create_subscription
        self._subs = [
            sub(PoseStamped, "ee_pose", lambda m: self._piece("ee_pose", m), 10),
            sub(PoseArray, "object_poses", lambda m: self._piece("object_poses", m), 10),
            sub(ActionCommand, "action", self._on_action, 10),
            sub(EnvFeedback, "env_feedback", self._on_feedback, QoSProfile(depth=50)),
        ]
        self._pubs = {
            "teleop": self.create_lifecycle_publisher(TeleopCommand, "teleop", _RELIABLE),
            "diagnostics": self.create_lifecycle_publisher(DiagnosticArray, "diagnostics", 10),
        }
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        r = cfg.rule
        self.get_logger().info(
            f"configured: {cfg.task} expert; stall {r.stall_steps} steps < {r.stall_distance_m * 1e3:g} mm, "
            f"distance > {r.disagreement:g} for {r.disagreement_steps} steps; {r.takeover_steps} steps per "
            f"takeover, budget {r.max_takeovers} takeovers / {r.max_steps} steps per episode"
        )
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        self.active = True
        return ret

    def _stop(self, reason: str) -> None:
        self.active = False

    def _destroy(self) -> None:
        timers = () if self._timer is None else (self._timer,)
        self._destroy_entities(timers, self._subs, self._pubs.values())
        if self.env is not None:
            self.env.close()
        self._timer, self._subs, self._pubs, self.env, self.cfg = None, [], {}, None, None

    # --- callbacks ------------------------------------------------------------------------
    @property
    def rule(self):
        return self.intervener.rule

    @property
    def expert(self):
        return self.intervener.expert

    @property
    def episode(self) -> int:
        return self.intervener.episode

    def _on_action(self, msg: ActionCommand) -> None:
        cmd = cv.action_command_to_numpy(msg)
        if not cmd.hold and cmd.action.shape == (7,):
            self._actions[cmd.stamp_ns] = cmd.action
            while len(self._actions) > 64:
                del self._actions[min(self._actions)]

    def _on_feedback(self, msg: EnvFeedback) -> None:
        fb = cv.env_feedback_to_numpy(msg)
        if fb.done and fb.stamp_ns > self._done_stamp:
            self._done_stamp = fb.stamp_ns

    def _piece(self, name: str, msg: PoseStamped | PoseArray) -> None:
        ns = cv.stamp_ns(msg.header.stamp)
        payload = cv.pose_stamped_to_numpy(msg) if name == "ee_pose" else cv.pose_array_to_numpy(msg)
        pieces = self._sync.add(name, ns, payload)
        if pieces is not None and self.active:
            self._on_observation(ns, pieces)

    def _on_observation(self, stamp: int, pieces: dict) -> None:
        if stamp <= self._done_stamp:
            return  # the terminal observation: nobody acts on it
        if self._episode_start is not None and self._done_stamp > self._episode_start:
            self.intervener.new_episode()  # the episode ended since it started
            self._actions.clear()
            self._episode_start = self._prev_stamp = None
        if self._episode_start is None:
            self._episode_start = stamp
        ee_pos, ee_quat = pieces["ee_pose"]
        policy = self._actions.get(self._prev_stamp) if self._prev_stamp is not None else None
        answer = self.intervener.answer(ee_pos, ee_quat, pieces["object_poses"], policy)
        self._prev_stamp = stamp
        if answer.event:
            self.last_event = f"episode {self.episode} step {self.rule.t}: {answer.event}"
            self.get_logger().info(self.last_event)
        state = cv.TeleopState(stamp, answer.engaged, True, answer.action, "", "scripted")
        self._pubs["teleop"].publish(cv.teleop_msg(state))
        self.published += 1

    def _publish_diagnostics(self) -> None:
        if not self.active or self.rule is None:
            return
        r = self.rule
        values = {
            "engaged": r.engaged,
            "episode": self.episode,
            "takeovers_episode": r.takeovers,
            "steps_episode": r.steps_used,
            "takeovers_total": r.total_takeovers,
            "steps_total": r.total_steps,
            "last_event": self.last_event,
            "expert_phase": self.expert.phase if self.expert is not None else "",
        }
        now = self.get_clock().now().nanoseconds
        message = "expert in control" if r.engaged else "policy in control"
        self._pubs["diagnostics"].publish(
            cv.diagnostics_msg(
                now,
                f"{self.get_fully_qualified_name()}: intervener",
                DiagnosticStatus.OK,
                message,
                values,
                "expo_intervener",
            )
        )


def main(args: list[str] | None = None) -> None:
    run_lifecycle_node(IntervenerNode, args)


if __name__ == "__main__":
    main()
