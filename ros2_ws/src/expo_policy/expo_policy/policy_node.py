"""EXPO real-time policy node (lifecycle): sensors in, safe actions out, transitions to the learner.

In: ``joint_states``, ``ee_pose``, ``object_poses``, ``image_raw`` (optional), ``env_feedback``,
``policy_weights``, ``teleop`` (``intervention.enabled``); a pixel policy takes ``ee_pose_base``
and one Image per camera of its checkpoint instead of ``ee_pose``, ``object_poses`` and
``image_raw``. Out (lifecycle publishers): ``action``, ``transitions``, ``otf_decision``,
``diagnostics``, ``markers``.

Lifecycle: configure reads the parameters (:mod:`expo_policy.params`), loads and warms up the
weights (:mod:`expo_policy.loading`), creates subscriptions, publishers and timers (stopped);
activate starts acting; deactivate publishes a last diagnostics report and a hold (waiting up
to 2 s for the reliable subscribers to acknowledge them, and for its last transitions) and
stops; cleanup/shutdown destroy everything. A stop request first drains
(:meth:`PolicyNode.begin_drain`; in real time after a hold; the stopping half:
:mod:`expo_policy.stopping`). The input callbacks (the receiving half:
:mod:`expo_policy.receiving`) hand observation sets, feedback and teleop to the acting half
(:mod:`expo_policy.acting`: triggers, the decision, the hold).

Reference (QoS, trigger and lockstep modes, the contract with the bridge, interventions, weight
swaps): docs/policy_node.md.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_interfaces.msg import (
    ActionCommand,
    EnvFeedback,
    OtfDecision,
    PolicyWeights,
    TeleopCommand,
    Transition,
)
from expo_ros import conversions as cv
from expo_ros import heap, realtime
from expo_ros.latency import LatencyTracker
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from expo_ros.realtime import RealtimeError
from expo_ros.step_trace import StepTrace
from expo_ros.transitions import TransitionAssembler
from expo_ros.watchdog import InputWatchdog
from geometry_msgs.msg import PoseArray, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from visualization_msgs.msg import MarkerArray

from .acting import ActingMixin
from .backends import InferenceBackend
from .camera_setup import watched_inputs
from .inputs import Pieces
from .intervention import InterventionArbiter
from .loading import load_policy
from .loop_status import OK, LoopStatus
from .markers import status_marker
from .params import PARAMETERS, WATCHED_INPUTS, PolicyNodeConfig
from .receiving import ReceivingMixin
from .stopping import StoppingMixin
from .weights_swap import WeightsSwapper

FAILURE = TransitionCallbackReturn.FAILURE
#: The node's counters (diagnostics): commands sent, watchdog holds among the holds (real time,
#: trigger observation), lockstep feedback waits given up, observation sets not decided on
#: because a newer one was already out (real time), transitions published, lockstep waits for
#: the teleop answer given up (intervention.lockstep_wait_s), camera frames encoded as they
#: arrived (observation.encode_on_arrival).
COUNTS = (
    "actions",
    "holds",
    "watchdog_holds",
    "feedback_timeouts",
    "observation_sets_skipped",
    "transitions",
    "teleop_timeouts",
    "frames_encoded_on_arrival",
)
_TELEOP_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Wall-clock period of the lockstep re-check while an observation waits for its teleop answer.
_TELEOP_WAIT_POLL_S = 0.05
_SENSOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# observation.best_effort: also hears best-effort publishers (franka_ros2's current_pose)
_BEST_EFFORT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
# The decisions stay with the writer for a reader that matches late: a writer learns of a new
# reader only some time after that reader sees the writer, and the first decisions of a session
# went to nobody (a monitor counting decisions missed the first two in ~1 of 15 sessions).
# Volatile readers (ros2 topic echo, Foxglove) match too and get no history.
_DECISION_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
_WEIGHTS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class PolicyNode(ReceivingMixin, ActingMixin, StoppingMixin, TeardownLifecycleNode):
    """The control loop around an :class:`~expo_policy.backends.InferenceBackend`."""

    def __init__(self, node_name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._trace = StepTrace.from_env(self.get_fully_qualified_name())  # off unless EXPO_STEP_TRACE
        for p in PARAMETERS:
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        self.cfg: PolicyNodeConfig | None = None
        self.backend: InferenceBackend | None = None
        self.weights: WeightsSwapper | None = None
        self.active = False
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._timers: list[Any] = []
        self._episode, self._step = 0, 0
        self._marker_anchor: tuple[str, np.ndarray] | None = None  # (frame, ee position) for the status text
        self.counts = dict.fromkeys(COUNTS, 0)
        self.last_hold_reason = ""
        self.arbiter: InterventionArbiter | None = None  # intervention.enabled
        self._teleop_sub = None
        self._control_tid: int | None = None  # the thread that configured the node (the executor's)
        # while rt_priority holds that thread at SCHED_FIFO: its scheduling before (what it
        # inherited), restored at cleanup
        self._rt_saved: tuple[int, int] | None = None
        self.messages_in = 0  # observation pieces and feedback taken (node_main's drain watches it)
        self._gc = heap.PauseMeter()  # installed from configure to cleanup: pauses in diagnostics
        self._reset_loop_state()

    @property
    def weights_version(self) -> int:
        """Version of the running weights (0 before configure and for a checkpoint)."""
        return self.weights.version if self.weights is not None else 0

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            cfg = PolicyNodeConfig.from_values({p.name: self.get_parameter(p.name).value for p in PARAMETERS})
            self._load(cfg)
            self._set_scheduling(cfg.rt_priority)
        except (ValueError, NotImplementedError) as e:
            log.error(f"configure failed: {e}")
            self._destroy()
            return FAILURE
        self._create_entities(cfg)
        if cfg.gc_freeze:  # after loading: the policy and its libraries are what gets frozen
            frozen, took_s = heap.freeze()
            log.info(f"gc_freeze: {frozen} objects frozen after a {took_s * 1e3:.0f} ms collection")
        elif heap.unfreeze():  # an earlier configure of this process froze them: not any more
            log.info("gc_freeze off: the heap frozen at an earlier configure is unfrozen")
        self._gc.uninstall()
        self._gc = heap.PauseMeter().install()
        if cfg.lockstep:
            mode = "lockstep"
        elif cfg.trigger == "observation":
            mode = f"on each synchronized observation (watchdog {cfg.control_rate_hz:g} Hz)"
        else:
            mode = f"timer {cfg.control_rate_hz:g} Hz"
        if cfg.intervention_enabled:
            ic = cfg.intervention
            mode += (
                f", interventions on (teleop timeout {ic.teleop_timeout_s:g} s, hand-back over "
                f"{ic.handback_steps} steps)"
            )
        log.info(
            f"configured: task {cfg.task}, {self.backend.name} on {cfg.device}, weights "
            f"v{self.weights_version} from {cfg.checkpoint}, {mode}, deadline {cfg.deadline_ms:g} ms, "
            f"control thread scheduling {self.scheduling}"
        )
        return super().on_configure(state)

    @property
    def scheduling(self) -> str:
        """The control thread's scheduling ('fifo 80', 'normal'): rt_priority's, or what the
        process inherited (a graph launched at SCHED_FIFO)."""
        return realtime.describe(self._control_tid) if self._control_tid is not None else "normal"

    def _set_scheduling(self, priority: int) -> None:
        """rt_priority > 0: this thread (the executor's, which runs every callback of the control
        loop) SCHED_FIFO at ``priority`` until cleanup; a refusal is a ValueError saying how to
        allow it."""
        self._control_tid = tid = threading.get_native_id()
        if priority > 0:
            saved = realtime.saved(tid)
            try:
                realtime.set_fifo(priority, tid)
            except RealtimeError as e:
                raise ValueError(f"parameter 'rt_priority': {e}") from e
            self._rt_saved = saved

    def _load(self, cfg: PolicyNodeConfig) -> None:
        """Backend + weights + the pure helpers (:func:`~expo_policy.loading.load_policy`); raises
        ValueError naming the parameter."""
        loaded = load_policy(cfg, self.get_logger())
        self.cfg, self.backend = cfg, loaded.backend
        self.weights = WeightsSwapper(loaded.backend, loaded.version)
        self._inputs = loaded.inputs

    def _create_entities(self, cfg: PolicyNodeConfig) -> None:
        self._watchdog = InputWatchdog()
        cam_spec = self.backend.obs_spec
        if cam_spec is None:
            watched = {n: (cfg.watchdog_max_age_s[n], req) for n, req in WATCHED_INPUTS.items()}
        else:
            watched = watched_inputs(cfg, cam_spec)
        for name, (max_age_s, required) in watched.items():
            self._watchdog.add_input(name, max_age_s, required)
        self._latency = LatencyTracker(cfg.latency_window, cfg.deadline_s)
        self._obs_age = LatencyTracker(cfg.latency_window)  # observation stamp -> decision start
        self._assembler = TransitionAssembler(continue_repeats=not cfg.lockstep)
        self._status = LoopStatus(cfg.deadline_ms)
        self._reset_loop_state()
        self._episode, self._step = 0, 0
        self.counts = dict.fromkeys(self.counts, 0)
        self.last_hold_reason = ""
        sub = self.create_subscription
        self._feedback_sub = sub(EnvFeedback, "env_feedback", self._on_feedback, QoSProfile(depth=50))
        qos = _BEST_EFFORT_QOS if self.cfg.best_effort_inputs else _SENSOR_QOS
        self._subs = [
            sub(JointState, "joint_states", self._on_joint_states, qos),
            sub(PolicyWeights, "policy_weights", self._on_weights, _WEIGHTS_QOS),
            self._feedback_sub,
        ]
        if cam_spec is None:
            self._subs += [
                sub(PoseStamped, "ee_pose", self._on_ee_pose, qos),
                sub(PoseArray, "object_poses", self._on_object_poses, qos),
                sub(Image, "image_raw", self._on_image, qos_profile_sensor_data),
            ]
        else:  # a pixel policy: base-frame pose + one Image per camera of its spec
            cam_qos = QoSProfile(depth=5, reliability=qos.reliability)
            self._subs.append(sub(PoseStamped, "ee_pose_base", self._on_ee_pose_base, qos))
            for key in cam_spec.rgb:
                topic = cfg.camera_topics[key.camera]
                self._subs.append(sub(Image, topic, lambda m, k=key: self._on_camera(k, m), cam_qos))
        self.arbiter, self._teleop_sub = None, None
        if cfg.intervention_enabled:
            self.arbiter = InterventionArbiter(cfg.intervention)
            self._teleop_sub = sub(TeleopCommand, "teleop", self._on_teleop, _TELEOP_QOS)
            self._subs.append(self._teleop_sub)
        pub = self.create_lifecycle_publisher
        # Reliable KEEP_LAST writers drop what a lagging reader has not acknowledged once their
        # history is full: the commands and decisions keep 100, so a recorder or monitor behind by
        # a second or so at lockstep rates (~130 steps/s) still gets every one.
        self._pubs = {
            "action": pub(ActionCommand, "action", 100),
            "transitions": pub(Transition, "transitions", 100),
            "otf_decision": pub(OtfDecision, "otf_decision", _DECISION_QOS),
            "diagnostics": pub(DiagnosticArray, "diagnostics", 10),
            "markers": pub(MarkerArray, "markers", 10),
        }
        self._timers = [
            self.create_timer(
                cfg.diagnostics_period_s,
                self._publish_diagnostics,
                clock=Clock(clock_type=ClockType.STEADY_TIME),
                autostart=False,
            )
        ]
        if not cfg.lockstep:  # on the node clock: follows /clock under use_sim_time
            self._timers.append(self.create_timer(1.0 / cfg.control_rate_hz, self._on_timer, autostart=False))
        elif cfg.intervention_enabled:  # bounds the wait for a teleop answer that never comes
            steady = Clock(clock_type=ClockType.STEADY_TIME)
            self._timers.append(
                self.create_timer(_TELEOP_WAIT_POLL_S, self._lockstep_act, clock=steady, autostart=False)
            )

    def _reset_loop_state(self) -> None:
        self._image: Image | None = None
        self._prev_action: np.ndarray | None = None
        self._awaiting: tuple[int, int] | None = None  # (episode, step) of the last command
        self._awaiting_since = 0.0  # time.monotonic() when it was sent
        self._last_set_ns: int | None = None  # stamp of the newest complete observation set
        self._first_seen: OrderedDict[int, int] = OrderedDict()  # stamp -> node time of its first piece
        self._pending_set: tuple[int, Pieces] | None = None
        self._done_stamp_ns = -1
        self._teleop_wait: tuple[int, float] | None = None  # (obs stamp, time.monotonic()) waiting
        self._teleop_unanswered_ns = -1  # lockstep: acted on this stamp without its teleop answer
        self._draining = False  # a stop was requested: no more decisions, transitions still complete
        self._last_decided: tuple[int, int] | None = None  # (episode, step) of the last step recorded

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self.active = True
        self._commit_weights()
        for t in self._timers:
            t.reset()
        self.get_logger().info(f"active: acting with weights v{self.weights_version}")
        return ret

    def _destroy(self) -> None:
        self._destroy_entities(self._timers, self._subs, self._pubs.values())
        if self.weights is not None:
            self.weights.close()
        self._timers, self._subs, self._pubs = [], [], {}
        self.cfg, self.backend, self.weights, self.active = None, None, None, False
        self.arbiter, self._teleop_sub = None, None
        self._gc.uninstall()
        if self._rt_saved is not None:  # back to what it inherited until configured again
            realtime.restore(self._control_tid, self._rt_saved)
            self._rt_saved = None

    def destroy_node(self) -> None:
        self._gc.uninstall()  # a node destroyed without cleanup (tests, a crash) leaves no hook
        super().destroy_node()

    def _on_weights(self, msg: PolicyWeights) -> None:
        # Decode + verify run in the swapper's worker thread; the swap happens between ticks.
        event = self.weights.offer(cv.policy_weights_to_numpy(msg))
        if event is not None:
            self._log_swap([event])

    def _commit_weights(self) -> None:
        self._log_swap(self.weights.poll())

    def _log_swap(self, events: list) -> None:
        log = self.get_logger()
        for e in events:
            if e.ok:
                log.info(f"swapped in policy weights v{e.version}")
            elif e.error.startswith("ignored"):
                log.info(f"policy weights v{e.version} {e.error}")
            else:
                log.error(f"policy weights v{e.version} {e.error}; keeping v{self.weights_version}")

    # --- diagnostics ----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        self._commit_weights()
        age = self._obs_age.stats()
        sync = self._inputs.sync
        extra = {
            "mode": "lockstep" if self.cfg.lockstep else self.cfg.trigger,
            "observation_kind": "state" if self.backend.obs_spec is None else "pixels",
            "obs_age_count": age.count,
            "obs_age_p50_ms": age.p50_s * 1e3,
            "obs_age_p99_ms": age.p99_s * 1e3,
            "obs_age_max_ms": age.max_s * 1e3,
            "observation_sets_late": sync.late,
            "observation_sets_dropped": sync.dropped,
            "weights_version": self.weights_version,
            "weights_accepted": self.weights.accepted,
            "weights_rejected": self.weights.rejected,
            "weights_ignored": self.weights.ignored,
            "transitions_dropped": self._assembler.dropped,
            "transitions_continued": self._assembler.continued,
            "episode": self._episode,
            "step": self._step,
            "intervention/enabled": self.arbiter is not None,
            "scheduling": self.scheduling,
            **self._gc.values(),
        }
        if self.arbiter is not None:
            extra.update(self.arbiter.status(self._now_ns()))
        level, message, values = self._status.report(
            self._latency.stats(), self._watchdog.stale_events, self.counts, self.last_hold_reason, extra
        )
        level = DiagnosticStatus.OK if level == OK else DiagnosticStatus.WARN
        name = f"{self.get_fully_qualified_name()}: control loop"
        self._pubs["diagnostics"].publish(cv.diagnostics_msg(self._now_ns(), name, level, message, values))
        if self._marker_anchor is not None and self._markers_wanted():
            frame, ee_pos = self._marker_anchor
            text = (
                f"{message} | {values['loop_rate_hz']:.1f} Hz | p99 {values['latency_p99_ms']:.1f} ms | "
                f"weights v{self.weights_version}"
            )
            above = ee_pos + np.array([0.0, 0.0, 0.15])
            marker = status_marker(self._now_ns(), frame, above, text, level != DiagnosticStatus.OK)
            self._pubs["markers"].publish(marker)


def main(args: list[str] | None = None) -> None:
    """Run the node; Ctrl-C / SIGTERM deactivate it (a final hold) before exiting 0."""
    # Our own signal handling: rclpy's would shut the context down before the final hold.
    run_lifecycle_node(PolicyNode, args)


if __name__ == "__main__":
    main()
