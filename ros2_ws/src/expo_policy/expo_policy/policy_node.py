"""EXPO real-time policy node (lifecycle): sensors in, safe actions out, transitions to the learner.

Topics (relative names; remap in the graph):

========================  =================================  ======================================
in                        type                               QoS
========================  =================================  ======================================
joint_states              sensor_msgs/JointState             reliable (observation.best_effort:
                                                             best effort), volatile, depth 10
ee_pose                   geometry_msgs/PoseStamped          as joint_states
object_poses              geometry_msgs/PoseArray            as joint_states
image_raw (optional)      sensor_msgs/Image                  best effort, depth 5 (sensor data)
env_feedback              expo_interfaces/EnvFeedback        reliable, volatile, depth 50
policy_weights            expo_interfaces/PolicyWeights      reliable, transient local, depth 1
teleop (intervention.     expo_interfaces/TeleopCommand      reliable, volatile, depth 10
enabled)
out (lifecycle pubs)
action                    expo_interfaces/ActionCommand      reliable, volatile, depth 10
transitions               expo_interfaces/Transition         reliable, volatile, depth 100
otf_decision              expo_interfaces/OtfDecision        reliable, volatile, depth 10
diagnostics               diagnostic_msgs/DiagnosticArray    reliable, volatile, depth 10
markers                   visualization_msgs/MarkerArray     reliable, volatile, depth 10
========================  =================================  ======================================

A pixel policy (a checkpoint whose spec has cameras: ``backend.obs_spec``; docs/pixels.md) takes
other inputs instead of ee_pose, object_poses and image_raw:

========================  =================================  ======================================
joint_states              sensor_msgs/JointState             as above: fingers + the 7
                                                             ``observation.arm_joint_names``
ee_pose_base              geometry_msgs/PoseStamped          as joint_states; the end effector in
                                                             the robot base frame
``cameras.<cam>.topic``   sensor_msgs/Image                  as joint_states, depth 5; one per
(``<cam>/image_raw``)                                        camera of the checkpoint, rgb8/bgr8
========================  =================================  ======================================

Its observation sets are approximate-time (:mod:`expo_policy.camera_inputs`: once every input has
a new piece, each input's piece closest to the oldest of the newest stamps, all within
``observation.max_skew_s``); a bad frame holds with a
``camera_*`` / ``observation_skew`` / ``proprio_unusable`` reason (``bad_observation: <code>: ...``),
and in real time the watchdog timer reports the same reasons when no usable set comes. The safety
filter's workspace box is then in the base frame of ``ee_pose_base``.

Lifecycle: configure reads the parameters (:mod:`expo_policy.params`), loads and warms up the
weights, creates subscriptions, publishers and timers (stopped); activate starts acting;
deactivate publishes a hold (waiting up to 2 s for the reliable subscribers to acknowledge it)
and stops; cleanup/shutdown destroy everything.

Acting. Real time (``lockstep: false``), ``trigger: observation`` (default): once per new
observation set (all three pieces with one header stamp, :mod:`expo_policy.sync`), as soon as its
last piece arrives, so every action answers the newest observation and is stamped with it; the
timer (``control_rate_hz`` on the node clock) is a watchdog only: while a required input is stale,
or no complete set came for ``observation.max_age_s``, each tick publishes a hold saying why.
A set that is already a whole observation interval old when it completes (node clock: the next
one is out; the node is behind) is skipped and counted (``observation_sets_skipped``), so a
loaded machine answers the newest observation instead of working through a backlog.
``trigger: timer``: every timer period on the latest piece of each input (sources whose pieces
never share a stamp). Lockstep mode: once per new observation set, after the feedback of the
previous command has arrived (when env_feedback has a publisher; a done feedback ends the wait
for any command of its episode; after ``feedback_timeout_s`` of wall time with a newer set
waiting the node acts without it and counts a feedback timeout), and never on the terminal
observation of an episode (a set stamped at or before a done feedback). Each decision: watchdog
-> observation -> backend -> safety filter -> ActionCommand + OtfDecision + markers. Anything
wrong publishes a hold saying why. In real time a decision later than the deadline is replaced
by a hold (its observation is too old); in lockstep the sim waits, so a late decision is only
counted. Each decision records the observation's age when it starts (node clock minus the
observation's stamp: wall time on a robot, sim time in sim, which in realtime sim follows wall
time to a 10 ms chunk): ``obs_age_*`` in diagnostics.

Action chunks: the command carries up to ``plan.max_steps`` rows of ``Decision.plan`` (a base
predicting k actions), filtered as the action's continuation (:mod:`expo_policy.plan`).

Episode/step indices are the node's: each command takes the next step; a done feedback for the
current episode starts the next one. Contract with the bridge: all pieces of one observation
carry one header stamp, strictly later than the previous observation's; a command's header
stamp is that of the observation it answers (lockstep: apply the command stamped like the
current observation); the feedback of a step echoes the command's (episode, step) and carries
the stamp of the observation published after the step (:mod:`expo_ros.transitions`).

Interventions (``intervention.enabled``, :mod:`expo_policy.intervention`, docs/interventions.md):
each decision first asks the arbiter who acts. The operator's action (deadman held, valid, fresh)
replaces inference and goes through the same safety filter; its step is marked ``intervention``
in the transition. A claimed but unusable or silent teleop stream holds the arm (``teleop: ...``
hold reason). After a release the policy's actions are blended in over ``handback_steps`` steps.
In lockstep, with a teleop publisher present, an observation is acted on only once the teleop
message answering it (stamped at or after it) has arrived, or after ``lockstep_wait_s`` of wall
time (counted in ``teleop_timeouts``; a hold if the operator had control). A done feedback ends a
hand-back blend.

Weights: a PolicyWeights message newer than the running version is decoded and verified in a
worker thread; the swap is a reference change between ticks. Failures keep the old weights.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_core.spec import task_obs_spec
from expo_interfaces.msg import (
    ActionCommand,
    EnvFeedback,
    OtfDecision,
    PolicyWeights,
    TeleopCommand,
    Transition,
)
from expo_ros import conversions as cv
from expo_ros import realtime
from expo_ros.latency import LatencyTracker
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from expo_ros.realtime import RealtimeError
from expo_ros.transitions import StepRecord, TransitionAssembler
from expo_ros.watchdog import InputWatchdog
from geometry_msgs.msg import PoseArray, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from .backends import InferenceBackend, is_pixel_weights, make_backend, resolve_device
from .camera_inputs import PixelObservationInputs
from .camera_setup import frame_from_image, pixel_inputs, watched_inputs
from .inputs import ObservationInputs, Pieces
from .intervention import InterventionArbiter, Mode
from .loop_status import OK, LoopStatus
from .markers import clear_markers, decision_markers, status_marker
from .obs_builder import ObservationBuilder
from .params import PARAMETERS, WATCHED_INPUTS, PolicyNodeConfig
from .plan import command_plan
from .safety import filter_action, hold_action
from .weights_swap import WeightsSwapper

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
#: The node's counters (diagnostics): commands sent, watchdog holds among the holds (real time,
#: trigger observation), lockstep feedback waits given up, observation sets not decided on
#: because a newer one was already out (real time), transitions published, lockstep waits for
#: the teleop answer given up (intervention.lockstep_wait_s).
COUNTS = (
    "actions",
    "holds",
    "watchdog_holds",
    "feedback_timeouts",
    "observation_sets_skipped",
    "transitions",
    "teleop_timeouts",
)
_TELEOP_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Wall-clock period of the lockstep re-check while an observation waits for its teleop answer.
_TELEOP_WAIT_POLL_S = 0.05
_SENSOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# observation.best_effort: also hears best-effort publishers (franka_ros2's current_pose)
_BEST_EFFORT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
_WEIGHTS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class PolicyNode(TeardownLifecycleNode):
    """The control loop around an :class:`~expo_policy.backends.InferenceBackend`."""

    def __init__(self, node_name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
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
        self._rt_tid: int | None = None  # the control thread while rt_priority holds it at SCHED_FIFO
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
        """The control thread's scheduling ('fifo 80', 'normal'); see parameter rt_priority."""
        return realtime.describe(self._rt_tid) if self._rt_tid is not None else "normal"

    def _set_scheduling(self, priority: int) -> None:
        """rt_priority > 0: this thread (the executor's, which runs every callback of the control
        loop) SCHED_FIFO at ``priority`` until cleanup; a refusal is a ValueError saying how to
        allow it."""
        if priority > 0:
            tid = threading.get_native_id()
            try:
                realtime.set_fifo(priority, tid)
            except RealtimeError as e:
                raise ValueError(f"parameter 'rt_priority': {e}") from e
            self._rt_tid = tid

    def _load(self, cfg: PolicyNodeConfig) -> None:
        """Backend + weights + the pure helpers; raises ValueError naming the parameter."""
        spec = task_obs_spec(cfg.task)
        try:
            resolve_device(cfg.device)
        except ValueError as e:
            raise ValueError(f"parameter 'device': {e}") from e
        try:  # the kind first: backend auto must not pick one that refuses pixel weights
            pixels = is_pixel_weights(cfg.checkpoint)
        except (ValueError, OSError) as e:
            raise ValueError(f"parameter 'checkpoint': {e}") from e
        try:
            backend = make_backend(
                cfg.backend,
                pixels=pixels,
                device=cfg.device,
                seed=cfg.seed,
                num_base_samples=cfg.num_base_samples,
                num_threads=cfg.num_threads,
            )
        except (ValueError, NotImplementedError) as e:
            raise ValueError(f"parameter 'backend': {e}") from e
        if backend.selection:  # backend: auto says what it chose and why
            self.get_logger().info(f"backend: {backend.selection}")
        try:
            src = backend.load(cfg.checkpoint)
        except (ValueError, OSError) as e:  # WeightsError is a ValueError
            raise ValueError(f"parameter 'checkpoint': {e}") from e
        o, a = backend.config.obs_dim, backend.config.act_dim
        if backend.obs_spec is not None:  # a pixel policy: its own spec says what it observes
            inputs = pixel_inputs(cfg, backend.obs_spec)
        elif o != spec.dim:
            raise ValueError(
                f"parameter 'checkpoint': weights expect {o} observation values, "
                f"task '{cfg.task}' observations have {spec.dim} ({', '.join(spec.names)})"
            )
        if a != cfg.safety.action_dim:
            raise ValueError(
                f"parameter 'safety.action_low': limits are for {cfg.safety.action_dim} action dims, "
                f"the weights act in {a}"
            )
        backend.warmup()
        self.cfg, self.backend, self.weights = cfg, backend, WeightsSwapper(backend, src.version)
        if backend.obs_spec is None:
            builder = ObservationBuilder(
                spec, cfg.obs_max_age_s, cfg.obs_max_skew_s, cfg.finger_joint_names, cfg.finger_signs
            )
            inputs = ObservationInputs(cfg.task, builder)
        self._inputs = inputs

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
        self._pubs = {
            "action": pub(ActionCommand, "action", 10),
            "transitions": pub(Transition, "transitions", 100),
            "otf_decision": pub(OtfDecision, "otf_decision", 10),
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
        self._pending_set: tuple[int, Pieces] | None = None
        self._done_stamp_ns = -1
        self._teleop_wait: tuple[int, float] | None = None  # (obs stamp, time.monotonic()) waiting
        self._teleop_unanswered_ns = -1  # lockstep: acted on this stamp without its teleop answer

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self.active = True
        self._commit_weights()
        for t in self._timers:
            t.reset()
        self.get_logger().info(f"active: acting with weights v{self.weights_version}")
        return ret

    def _stop(self, reason: str) -> None:
        """Stop acting; while the publishers are still enabled, send one last hold and wait
        (bounded) until the reliable subscribers have it (``_flush``)."""
        for t in self._timers:
            t.cancel()
        if self.active:
            self._hold(reason, "", self._now_ns())
            self._flush(self._pubs["action"], f"the final hold ({reason})")
        self.active = False
        self._reset_loop_state()
        if self._step > 0:  # indices stay monotonic: acting again starts a new episode
            self._episode, self._step = self._episode + 1, 0
        if self.cfg is not None:
            self._watchdog.reset()
            self._inputs.reset()
            self._assembler.reset()
        if self.arbiter is not None:
            self.arbiter.reset()

    def _destroy(self) -> None:
        for t in self._timers:
            self.destroy_timer(t)
        for s in self._subs:
            self.destroy_subscription(s)
        for p in self._pubs.values():
            self.destroy_lifecycle_publisher(p)
        if self.weights is not None:
            self.weights.close()
        self._timers, self._subs, self._pubs = [], [], {}
        self.cfg, self.backend, self.weights, self.active = None, None, None, False
        self.arbiter, self._teleop_sub = None, None
        if self._rt_tid is not None:  # back to normal scheduling until configured again
            realtime.set_normal(self._rt_tid)
            self._rt_tid = None

    def autostart(self) -> bool:
        """Configure and activate when the ``autostart`` parameter is true; False on failure."""
        if not self.get_parameter("autostart").value:
            return True
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    # --- inputs ---------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_joint_states(self, msg: JointState) -> None:
        names, pos = cv.joint_state_to_numpy(msg)
        if self._inputs.accepts_joint_state(names):
            self._store("joint_states", msg.header, (names, pos))

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        self._store("ee_pose", msg.header, cv.pose_stamped_to_numpy(msg))

    def _on_ee_pose_base(self, msg: PoseStamped) -> None:
        self._store("ee_pose_base", msg.header, cv.pose_stamped_to_numpy(msg))

    def _on_camera(self, key: Any, msg: Image) -> None:
        self._store(key.camera, msg.header, frame_from_image(key, msg, self._now_ns() * 1e-9))

    def _on_object_poses(self, msg: PoseArray) -> None:
        self._store("object_poses", msg.header, cv.pose_array_to_numpy(msg))

    def _on_image(self, msg: Image) -> None:
        self._image = msg
        self._watchdog.mark("image_raw", self._now_ns() * 1e-9)

    def _store(self, name: str, header: Header, payload: Any) -> None:
        self._watchdog.mark(name, self._now_ns() * 1e-9)
        ns = cv.stamp_ns(header.stamp)
        pieces = self._inputs.add(name, ns, payload, header.frame_id)
        if pieces is None or not self.active:
            return
        # The set's stamp: its newest piece's (exact sets: every piece's; a pixel set pairs pieces of
        # one moment, which need not be the moment of the piece that completed it).
        ns = max(p[0] for p in pieces.values())
        interval = ns - self._last_set_ns if self._last_set_ns is not None else 0
        self._last_set_ns = ns
        now_ns = self._now_ns()
        res = None
        try:
            if self.cfg.lockstep:
                self._pending_set = (ns, pieces)
                self._lockstep_act()
            elif self.cfg.trigger == "observation":
                res = self._inputs.build(pieces, now_ns * 1e-9)
                if res.ok and interval > 0 and now_ns - ns >= interval:
                    # A whole observation interval old: the next set is already out (behind on a
                    # loaded machine); deciding on this one would only answer it later still. A bad
                    # observation is never skipped: it must end in a hold with its reason.
                    self.counts["observation_sets_skipped"] += 1
                    return
                self._control_step(pieces, ns)
        finally:
            # The transition bookkeeping this observation triggers comes after the decision it
            # releases: building its copy for the learner and serializing the transitions it
            # completes (a pixel policy's carry four camera frames) stay off the obs -> action path.
            if self.cfg.publish_transitions:
                if res is None:
                    res = self._inputs.build(pieces, now_ns * 1e-9)
                if res.ok:
                    obs, images = self._transition_obs(res.obs, pieces)  # a pixel policy's: next_images
                    self._publish_transitions(self._assembler.add_observation(ns, obs, images))

    def _on_feedback(self, msg: EnvFeedback) -> None:
        fb = cv.env_feedback_to_numpy(msg)
        self._watchdog.mark("env_feedback", self._now_ns() * 1e-9)
        if not self.active:
            return
        if self._awaiting is not None and (
            (fb.episode, fb.step) >= self._awaiting or (fb.done and fb.episode >= self._awaiting[0])
        ):
            self._awaiting = None  # that step was reported, or its episode ended (no step will come)
        if fb.done and fb.episode >= self._episode:
            self._episode, self._step = fb.episode + 1, 0
            self._done_stamp_ns = fb.stamp_ns
            if self.arbiter is not None:
                self.arbiter.reset()  # a hand-back blend ends with its episode
        try:
            self._lockstep_act()
        finally:  # after the decision this feedback released (as in _store)
            if self.cfg.publish_transitions:
                self._publish_transitions(self._assembler.add_feedback(fb))

    def _on_teleop(self, msg: TeleopCommand) -> None:
        self.arbiter.on_teleop(cv.teleop_to_numpy(msg), self._now_ns())
        self._lockstep_act()  # the answer an observation may be waiting for

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

    # --- acting ---------------------------------------------------------------------------
    def _on_timer(self) -> None:
        if self.cfg.trigger == "timer":
            self._control_step(self._inputs.latest, None)
            return
        # trigger observation: decisions follow the observations; the timer only holds when they stop
        now_ns = self._now_ns()
        status = self._watchdog.check(now_ns * 1e-9)
        if not status.ok:
            self.counts["watchdog_holds"] += 1
            return self._hold("stale_input", status.reason.removeprefix("hold: "), now_ns)
        last = self._last_set_ns
        if last is None or (now_ns - last) * 1e-9 > self.cfg.obs_max_age_s:
            age = "none yet" if last is None else f"the newest is {(now_ns - last) * 1e-9:.3f} s old"
            self.counts["watchdog_holds"] += 1
            detail = f"{age} (> {self.cfg.obs_max_age_s:g} s): input stamps never coincide?"
            if isinstance(self._inputs, PixelObservationInputs):  # say which camera or piece
                res = self._inputs.build(self._inputs.latest, now_ns * 1e-9)
                if not res.ok:
                    return self._hold("bad_observation", res.reason, now_ns)
            return self._hold("no_synchronized_observation", detail, now_ns)

    def _lockstep_act(self) -> None:
        if not (self.cfg.lockstep and self.active) or self._pending_set is None:
            return
        if self._awaiting is not None and self._feedback_sub.get_publisher_count() > 0:
            waited = time.monotonic() - self._awaiting_since
            if waited <= self.cfg.feedback_timeout_s:
                return  # the previous command's step has not been reported yet
            self.counts["feedback_timeouts"] += 1
            self.get_logger().warning(
                f"no feedback for command {self._awaiting[0]}/{self._awaiting[1]} after {waited:.1f} s "
                "while a newer observation waits: acting without it"
            )
            self._awaiting = None
        ns, pieces = self._pending_set
        if ns <= self._done_stamp_ns:
            self._pending_set = None
            return  # the terminal observation of a finished episode: next_obs only, no action
        if self._awaiting_teleop(ns):
            return
        self._pending_set = None
        self._control_step(pieces, ns)

    def _awaiting_teleop(self, ns: int) -> bool:
        """Lockstep: whether the observation stamped ``ns`` still waits (bounded, wall time) for the
        TeleopCommand answering it; only while a teleop publisher is present."""
        arb = self.arbiter
        if arb is None or arb.answered(ns) or self._teleop_sub.get_publisher_count() == 0:
            self._teleop_wait = None
            return False
        if self._teleop_wait is None or self._teleop_wait[0] != ns:
            self._teleop_wait = (ns, time.monotonic())
        waited = time.monotonic() - self._teleop_wait[1]
        if waited <= self.cfg.intervention_lockstep_wait_s:
            return True
        self.counts["teleop_timeouts"] += 1
        self.get_logger().warning(
            f"no teleop answer to the observation after {waited:.1f} s: acting without it"
        )
        self._teleop_wait = None
        self._teleop_unanswered_ns = ns
        return False

    def _control_step(self, pieces: Pieces, set_ns: int | None) -> None:
        """One decision; ``set_ns``: the lockstep observation's stamp (None in timer mode)."""
        t0 = time.perf_counter()
        self._commit_weights()
        now_ns = self._now_ns()
        now = now_ns * 1e-9
        self._latency.tick(now)
        if set_ns is not None or pieces:
            observed = set_ns if set_ns is not None else self._inputs.stamp_ns(pieces)
            self._obs_age.record(max(now_ns - observed, 0) * 1e-9)
        stamp = set_ns if set_ns is not None else now_ns
        status = self._watchdog.check(now)
        if not status.ok:
            return self._hold("stale_input", status.reason.removeprefix("hold: "), stamp)
        res = self._inputs.build(pieces, now)
        if not res.ok:
            return self._hold("bad_observation", res.reason, stamp)
        stamp = set_ns if set_ns is not None else self._inputs.stamp_ns(pieces)
        arb = None
        if self.arbiter is not None:
            unanswered = ""
            if set_ns is not None and set_ns == self._teleop_unanswered_ns:  # lockstep wait gave up
                wait = self.cfg.intervention_lockstep_wait_s
                unanswered = f"teleop stream lost: no answer to this observation within {wait:g} s"
            arb = self.arbiter.arbitrate(now_ns, unanswered)
            if arb.mode is Mode.HOLD:
                return self._hold("teleop", arb.reason, stamp)
        dec = None
        if arb is None or arb.needs_policy:
            try:
                t_inf = time.perf_counter()
                dec = self.backend.decide(res.obs)
                inference_ms = (time.perf_counter() - t_inf) * 1e3  # selection only: OtfDecision's field
            except Exception as e:  # a crash in inference must still end in a hold
                return self._hold("inference_error", f"{type(e).__name__}: {e}", stamp)
        elapsed = time.perf_counter() - t0
        if elapsed > self.cfg.deadline_s and not self.cfg.lockstep:
            self._latency.record(elapsed)
            budget = f"{elapsed * 1e3:.1f} ms > budget {self.cfg.deadline_ms:g} ms"
            return self._hold("inference_late", budget, stamp)
        ee = pieces[self._inputs.ee_piece]
        ee_pos, frame = ee[1][0], ee[2]
        # The operator's action and a hand-back blend go through the same filter as the policy's.
        proposal = dec.action if arb is None else arb.proposal(None if dec is None else dec.action)
        safe = filter_action(proposal, self._prev_action, ee_pos, self.cfg.safety)
        if safe.rejected:
            return self._hold("safety_rejected", "; ".join(safe.reasons), stamp)
        plan, plan_period_ns = command_plan(dec, proposal, safe.action, ee_pos, self.cfg)  # chunks
        n = self.backend.num_base_samples
        version = self.weights_version
        cmd = cv.Command(
            action=safe.action,
            stamp_ns=stamp,
            policy_version=version,
            candidate_index=-1 if dec is None else dec.index,  # -1: the operator's, no candidate
            is_edited=dec is not None and dec.index >= n,
            safety_modified=safe.modified,
            episode=self._episode,
            step=self._step,
            frame_id=frame,
            plan=plan,
            plan_period_ns=plan_period_ns,
        )
        self._pubs["action"].publish(cv.action_command_msg(cmd))
        latency_s = time.perf_counter() - t0
        if dec is not None:
            self._pubs["otf_decision"].publish(
                cv.otf_decision_msg(dec.candidates, dec.q, dec.index, inference_ms, version, stamp)
            )
        if self.cfg.publish_markers and dec is not None:
            self._marker_anchor = (frame, np.asarray(ee_pos, dtype=np.float64))
            self._pubs["markers"].publish(
                decision_markers(
                    stamp,
                    frame,
                    ee_pos,
                    dec.candidates,
                    n,
                    dec.index,
                    safe.action,
                    self.cfg.safety.pos_scale,
                )
            )
        self._latency.record(latency_s)
        if self.cfg.publish_transitions:
            obs, images = self._transition_obs(res.obs, pieces)
            if not images and self._fresh_image(now):
                images = (self._image,)
            flag = arb is not None and arb.intervention
            record = StepRecord(self._episode, self._step, obs, safe.action, version, stamp, images, flag)
            self._assembler.add_step(record)
        if self.last_hold_reason:
            self.get_logger().info(f"acting again after hold ({self.last_hold_reason})")
            self.last_hold_reason = ""
        self.counts["actions"] += 1
        self._advance(safe.action)

    def _transition_obs(self, obs: Any, pieces: Pieces) -> tuple[np.ndarray, tuple]:
        """(obs, camera messages) as transitions carry them: a pixel policy's proprio + its frames."""
        if isinstance(self._inputs, PixelObservationInputs):
            return self._inputs.proprio(obs), self._inputs.images(pieces)
        return obs, ()

    def _fresh_image(self, now: float) -> bool:
        age = self._watchdog.age("image_raw", now)
        return self._image is not None and age is not None and age <= self.cfg.watchdog_max_age_s["image_raw"]

    def _hold(self, code: str, detail: str, stamp: int) -> None:
        """Publish the hold command (zero motion, gripper kept) and say why, loudly."""
        reason = f"{code}: {detail}" if detail else code
        action = hold_action(self._prev_action, self.cfg.safety.action_dim)
        frame = self._inputs.frame(self._inputs.ee_piece)
        cmd = cv.Command(
            action=action,
            stamp_ns=stamp,
            policy_version=self.weights_version,
            hold=True,
            hold_reason=reason,
            episode=self._episode,
            step=self._step,
            frame_id=frame,
        )
        self._pubs["action"].publish(cv.action_command_msg(cmd))
        if self.cfg.publish_markers:
            self._pubs["markers"].publish(clear_markers(stamp, frame))
        if reason != self.last_hold_reason:
            self.get_logger().warning(f"hold: {reason}")
        else:
            self.get_logger().warning(f"still holding: {reason}", throttle_duration_sec=2.0)
        self.last_hold_reason = reason
        self.counts["holds"] += 1
        self._advance(action)

    def _advance(self, sent: np.ndarray) -> None:
        self._prev_action = sent
        if self.arbiter is not None:
            self.arbiter.on_sent(sent)  # the hand-back's anchor (a hold too)
        self._awaiting = (self._episode, self._step)
        self._awaiting_since = time.monotonic()
        self._step += 1

    def _publish_transitions(self, done: list) -> None:
        for t in done:
            self._pubs["transitions"].publish(cv.transition_msg(t, self.get_fully_qualified_name()))
            self.counts["transitions"] += 1

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
        }
        if self.arbiter is not None:
            extra.update(self.arbiter.status(self._now_ns()))
        level, message, values = self._status.report(
            self._latency.stats(), self._watchdog.stale_events, self.counts, self.last_hold_reason, extra
        )
        level = DiagnosticStatus.OK if level == OK else DiagnosticStatus.WARN
        name = f"{self.get_fully_qualified_name()}: control loop"
        self._pubs["diagnostics"].publish(cv.diagnostics_msg(self._now_ns(), name, level, message, values))
        if self.cfg.publish_markers and self._marker_anchor is not None:
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
