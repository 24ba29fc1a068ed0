"""Sim bridge (lifecycle node): a robosuite task that speaks the topics a real Franka setup does.

Topics (relative names, remap in the graph; QoS reliable, volatile):

==================  ===============================  =====  ====================================
topic               type                             depth  what
==================  ===============================  =====  ====================================
out joint_states    sensor_msgs/JointState           10     7 arm joints [rad] + 2 fingers [m]
out ee_pose         geometry_msgs/PoseStamped        10     end effector, ``frame_id`` (world);
                                                            realtime: also every 10 ms chunk
out object_poses    geometry_msgs/PoseArray          10     task objects, ground truth
out image_raw       sensor_msgs/Image (optional)     5      rgb8 camera image (camera.enabled)
out <camera>/       sensor_msgs/Image (pixels)       5      observation.kind pixels: one rgb8
    image_raw                                               frame per camera per observation
                                                            (realtime: from a render thread,
                                                            after the proprioception)
out ee_pose_base    geometry_msgs/PoseStamped        10     pixels: end effector in the robot
                    (pixels)                                base frame (base_frame_id)
out env_feedback    expo_interfaces/EnvFeedback      50     one per command: reward, done, ...
out /clock          rosgraph_msgs/Clock              10     sim time (absolute topic)
out diagnostics     diagnostic_msgs/DiagnosticArray  10     episodes, success, steps/s, obs ->
                                                            action round trip and action age
                                                            p50/p99, holds/superseded/dropped
                                                            (also per episode: last_episode_*);
                                                            realtime cameras: frame_sets_rendered
                                                            / _dropped (observations), frame_errors,
                                                            frames_failed
in  action          expo_interfaces/ActionCommand    10     the policy's commands
in  learner_stats   expo_interfaces/LearnerStats     10     lockstep pacing (learner_pacing_backlog)
==================  ===============================  =====  ====================================

Parameters: :mod:`expo_sim.ros.bridge_params` (``expo_bringup/config/sim_bridge.yaml``).

Time. The bridge is the clock of the stack: its node clock is sim time, which it sets itself
and publishes on ``/clock`` (the policy runs with ``use_sim_time``); every stamp is read from
the node clock. Sim time starts at 0 and advances one control period (50 ms) per env step,
per lockstep hold and per reset. Lockstep mode therefore runs as fast as the policy answers;
realtime mode advances it with wall time, one chunk of a control period at a time (physics in
sub-steps, :mod:`expo_sim.envs.substep_physics`; commands take effect when they arrive, with
optional injected latency and jitter). The protocols are described in
:mod:`expo_sim.ros.bridge_protocol`; the node's two loops live in :mod:`expo_sim.ros.bridge_lockstep`
and :mod:`expo_sim.ros.bridge_realtime`, its summary and diagnostics in
:mod:`expo_sim.ros.bridge_reporting` (mixins); this module keeps the lifecycle, the env, the
publishing and the episodes.

Lifecycle: configure validates the parameters and builds the env (a bad value fails the
transition naming the parameter); activate resets the first episode and starts the timers;
deactivate stops stepping. An episode interrupted by deactivate is ended on the next activate
before the reset: its state is published once more with a new stamp together with a truncated
EnvFeedback echoing the newest command received for it (applied or not), so a policy waiting for
that command's step (lockstep) goes on, and its learner sees a time-limit end. With
``num_episodes > 0`` the node logs a summary after that many
episodes and the process exits 0 (the runner then stops the rest of the graph).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from expo_interfaces.msg import ActionCommand, EnvFeedback, LearnerStats
from expo_ros import conversions as cv
from expo_ros.action_plan import PlanExecutor
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from expo_ros.step_trace import StepTrace
from geometry_msgs.msg import PoseArray, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.time_source import TimeSource
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState

from expo_sim.envs.background_frames import BackgroundFrames
from expo_sim.envs.robosuite_env import RobomimicEnv, make_env
from expo_sim.envs.substep_physics import SubstepPhysics
from expo_sim.ros.bridge_conversions import clock_msg, feedback_msg, observation_msgs, snapshot_from_env
from expo_sim.ros.bridge_lockstep import LockstepMixin
from expo_sim.ros.bridge_params import PARAMETERS, BridgeConfig
from expo_sim.ros.bridge_protocol import EpisodeStats, LearnerPacer, LockstepGate, RealtimeInbox, SimClock
from expo_sim.ros.bridge_realtime import RealtimeMixin
from expo_sim.ros.bridge_reporting import ReportingMixin

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_WATCH_PERIOD_S = 0.02  # lockstep: how often to check for the policy and for timeouts (wall)
StepResult = tuple[float, bool, bool, bool]  # reward, terminated, truncated, success
_FRAMES_IDLE_S = 1.0  # realtime: how long a stop waits for the last observation's frames [s]
_PUBLISHED_KEPT = 256  # observation stamps remembered for the round trip (wall publish times)


class SimBridge(LockstepMixin, RealtimeMixin, ReportingMixin, TeardownLifecycleNode):
    """Steps a :class:`~expo_sim.envs.robosuite_env.RobomimicEnv` with the policy's commands."""

    def __init__(self, node_name: str = "sim_bridge", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._trace = StepTrace.from_env(self.get_fully_qualified_name())  # off unless EXPO_STEP_TRACE
        for p in PARAMETERS:
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        # Sim time: the node clock follows a time source that only this node feeds.
        self._sim_time = TimeSource()
        self._sim_time.attach_clock(self.get_clock())
        self.cfg: BridgeConfig | None = None
        self.env: RobomimicEnv | None = None
        self.active = False
        self.finished = False  # num_episodes reached (or given up): main() exits
        self.exit_code = 0  # main()'s exit code once finished: 1 when it gave up on the learner
        self.stats = EpisodeStats()
        self._pacer = LearnerPacer(0)  # replaced on activate with the configured limit
        self._held: tuple[cv.Command, float] | None = None
        self._background: BackgroundFrames | None = None  # realtime cameras (bridge_realtime)
        self._published_lock = threading.Lock()  # _published: the frame worker updates it too
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._timers: list[Any] = []

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            cfg = BridgeConfig.from_values({p.name: self.get_parameter(p.name).value for p in PARAMETERS})
            if self.get_parameter("use_sim_time").value:
                raise ValueError(
                    "parameter 'use_sim_time' must be false: the sim bridge is the /clock source"
                )
            env = make_env(
                cfg.task, horizon=cfg.horizon, cameras=cfg.rendered_cameras, camera_size=cfg.render_size
            )
            background = None
            if cfg.rendered_cameras and not cfg.realtime:
                # lockstep: each frame goes out as soon as it is rendered (_publish_obs)
                env.defer_frames(parallel=cfg.render_parallel)
            elif cfg.rendered_cameras:  # realtime: physics runs on while the cameras render,
                # each in a thread of its own, as real cameras stream on their own
                try:
                    background = env.frames_in_background(
                        self._on_background_frame, self._on_background_done, parallel=True
                    )
                except RuntimeError as e:  # no render context for a worker
                    env.close()
                    raise ValueError(f"cameras {list(cfg.rendered_cameras)}: {e}") from e
            try:
                physics = SubstepPhysics(env, cfg.substeps)
            except ValueError as e:
                env.close()
                raise ValueError(f"parameter 'realtime_substeps': {e}") from e
        except ValueError as e:
            log.error(f"configure failed: {e}")
            return FAILURE
        self.cfg, self.env, self._physics, self._background = cfg, env, physics, background
        self._frames_failed = False  # realtime cameras: the render threads failed (_capture_frames)
        self._rng = np.random.default_rng([cfg.seed, 19])  # injected jitter
        # Episodes (env resets; seed + index) and sim time run on across re-activations.
        self._episode = 0  # the bridge's own count; feedback echoes the commands' indices
        self._sim_clock = SimClock(cfg.period_ns)
        self._sim_time.ros_time_is_active = True
        self._sim_time.clock_callback(clock_msg(self._sim_clock.now_ns))
        self._episode_first_ns: int | None = None  # stamp of the current episode's first observation
        self._cmd_seen: tuple[int, int] | None = None  # newest command indices for the current episode
        self._steps_in_episode = 0
        self._create_entities(cfg)
        if cfg.realtime:
            delay = f", injected delay {cfg.injected_latency_ms:g} +- {cfg.injected_jitter_ms:g} ms"
            injected = cfg.injected_latency_ms or cfg.injected_jitter_ms
            mode = (
                f"realtime: wall-time physics in {cfg.substeps} chunks per period, commands older than "
                f"{cfg.max_action_age_ms:g} ms dropped" + (delay if injected else "")
            )
            if cfg.stall_probability and cfg.stall_ms:
                mode += f", stalls of {cfg.stall_ms:g} ms with probability {cfg.stall_probability:g}"
            if cfg.plan.mode != "off":
                mode += f", plan_mode {cfg.plan.mode} (rows up to {cfg.plan.max_age_ms:g} ms old)"
            if cfg.rendered_cameras:
                mode += ", each camera rendered in a thread of its own"
                if cfg.render_parallel:
                    mode += " (observation.render_parallel applies to lockstep only)"
        else:
            mode = f"lockstep (timeout {cfg.action_timeout_s:g} s)"
        episodes = cfg.num_episodes or "unlimited"
        log.info(
            f"configured: task {cfg.task}, horizon {cfg.horizon}, {mode}, episodes {episodes}, "
            f"seed {cfg.seed}, camera {cfg.camera or 'off'}, observation {cfg.obs_kind}"
            + (
                f" (cameras {', '.join(cfg.cameras)}, {cfg.image_size}x{cfg.image_size})"
                if cfg.cameras
                else ""
            )
        )
        return SUCCESS

    def _create_entities(self, cfg: BridgeConfig) -> None:
        pub = self.create_lifecycle_publisher
        self._pubs = {
            "joint_states": pub(JointState, "joint_states", 10),
            "ee_pose": pub(PoseStamped, "ee_pose", 10),
            "object_poses": pub(PoseArray, "object_poses", 10),
            "env_feedback": pub(EnvFeedback, "env_feedback", 50),
            "clock": pub(ClockMsg, "/clock", 10),
            "diagnostics": pub(DiagnosticArray, "diagnostics", 10),
        }
        if cfg.camera:
            self._pubs["image_raw"] = pub(Image, "image_raw", 5)
        for cam in cfg.cameras:
            self._pubs[f"{cam}/image_raw"] = pub(Image, f"{cam}/image_raw", 5)
        if cfg.cameras:
            self._pubs["ee_pose_base"] = pub(PoseStamped, "ee_pose_base", 10)
        self._action_sub = self.create_subscription(ActionCommand, "action", self._on_action, 10)
        self._subs = [self._action_sub]
        if (cfg.learner_pacing_backlog and not cfg.realtime) or cfg.wait_for_learner:
            sub = self.create_subscription(LearnerStats, "learner_stats", self._on_learner_stats, 10)
            self._subs.append(sub)
        wall = Clock(clock_type=ClockType.STEADY_TIME)  # the node clock is sim time: it would never tick
        if cfg.realtime:
            chunk_s = cfg.chunk_ns * 1e-9
            self._timers = [self.create_timer(chunk_s, self._on_tick, clock=wall, autostart=False)]
        else:
            self._timers = [self.create_timer(_WATCH_PERIOD_S, self._on_watch, clock=wall, autostart=False)]
        period = cfg.diagnostics_period_s
        self._timers.append(self.create_timer(period, self._publish_diagnostics, clock=wall, autostart=False))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self.stats = EpisodeStats()
        self._gate, self._inbox = LockstepGate(), RealtimeInbox()
        self._published: OrderedDict[int, float] = OrderedDict()  # stamp -> wall publish time
        # stamp -> the end-effector pose published with it (realtime_anchor_deltas)
        self._poses: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._last_indices = (0, 0)  # (episode, step) of the command in effect (feedback echo)
        self._first_sent = False  # lockstep: first observation published
        self._mode = "idle"  # realtime period: idle (no command for this episode yet), step or reset
        self._chunk = 0  # realtime: chunk of the current period that runs next
        self._new_in_period = False  # realtime: a new command took effect in this period
        self._summary_logged = False
        self._pacer = LearnerPacer(self.cfg.learner_pacing_backlog, self.cfg.wait_for_learner)
        self._learner_wait_since: float | None = None  # wait_for_learner: since when episode 0 waits
        self._held: tuple[cv.Command, float] | None = None  # lockstep command waiting for the learner
        self._plan = PlanExecutor(self.cfg.plan)  # realtime: the commands' plans (expo_ros.action_plan)
        self._plan_in_period = False  # realtime: a plan row (or blend) took effect in this period
        self._applied_other = False  # realtime: the action in effect is not the echoed command's own
        self.active, self.finished = True, False
        if self._episode_open():
            self._end_interrupted_episode()
        if self.finished:  # the interrupted episode was the last one
            return ret
        self._reset_env()
        self._next_wall = time.monotonic() + self.cfg.chunk_ns * 1e-9
        for t in self._timers:
            t.reset()
        self.get_logger().info("active: waiting for the policy")
        return ret

    def _episode_open(self) -> bool:
        """An episode was under way when the bridge stopped: steps taken or a command received."""
        return self._steps_in_episode > 0 or self._cmd_seen is not None

    def _end_interrupted_episode(self) -> None:
        """Deactivate interrupted an episode: publish its state with a new stamp and a truncated
        feedback echoing the newest command received for it, so a policy awaiting that step goes
        on (module doc), then count it as a failed episode."""
        episode, step = self._cmd_seen if self._cmd_seen is not None else self._last_indices
        ns = self._tick_clock()
        self._publish_obs(ns)
        self._publish_feedback(ns, (0.0, False, True, False), (episode, step))
        self.get_logger().warning(
            f"episode {self._episode} was interrupted by deactivate after {self._steps_in_episode} steps: "
            f"reported as truncated (command {episode}/{step}), resetting"
        )
        self._end_episode(False)

    def _stop(self, reason: str = "") -> None:
        for t in self._timers:
            t.cancel()
        if self._background is not None:  # the frames of the last observation go out first
            self._background.wait_idle(_FRAMES_IDLE_S)
        if self.active:
            self._log_summary()
        self.active = False

    def _destroy(self) -> None:
        if self._background is not None:  # its worker publishes: stopped before the publishers go
            self._background.close()
            self._background = None
        self._destroy_entities(self._timers, self._subs, self._pubs.values())
        if self.env is not None:
            self.env.close()
        self._timers, self._subs, self._pubs = [], [], {}
        self.cfg, self.env, self.active = None, None, False

    # --- env and publishing ---------------------------------------------------------------
    def _tick_clock(self, step_ns: int | None = None, publish: bool = True) -> int:
        """Advance sim time one control period (or ``step_ns``), publish it on ``/clock`` (unless
        ``publish`` is False: the other nodes then see it at the next published tick); returns
        the node clock's time [ns]."""
        msg = clock_msg(self._sim_clock.advance(step_ns))
        self._sim_time.clock_callback(msg)
        if publish:
            self._pubs["clock"].publish(msg)
        return self.get_clock().now().nanoseconds

    def _reset_env(self) -> None:
        _, info = self.env.reset(seed=self.cfg.seed + self._episode)
        self._set_snapshot(info["obs_dict"])
        self._physics.reset()
        self._prev_action: np.ndarray | None = None
        self._steps_in_episode = 0
        self._cmd_seen = None
        self._episode_first_ns = None  # set when its first observation goes out

    def _step_env(self, action: np.ndarray) -> StepResult:
        return self._stepped(self.env.step(action))

    def _stepped(self, out: tuple) -> StepResult:
        """Bookkeeping of one env step (``env.step``'s or the last realtime chunk's output)."""
        _, reward, terminated, truncated, info = out
        self._set_snapshot(info["obs_dict"])
        self._prev_action = info["action"]
        self._steps_in_episode = info["t"]
        self.stats.step(reward)
        return float(reward), terminated, truncated, bool(info["success"])

    def _set_snapshot(self, obs_dict: dict[str, Any]) -> None:
        c = self.cfg
        self._snap = snapshot_from_env(
            self.env, obs_dict, c.camera, c.cameras, frames=not self.env.frames_deferred
        )
        self._frames: dict[str, np.ndarray] = {}  # deferred frames of this snapshot, once rendered

    def _publish_obs(self, ns: int) -> None:
        """One observation stamped ``ns``. Lockstep with cameras: the proprioception first, then
        each frame as soon as it is rendered (the policy encodes one while the next renders); a
        state published again (a hold, a timeout) reuses its frames."""
        c = self.cfg
        self._trace.mark("obs_first_out", ns)
        msgs = observation_msgs(
            self._snap, ns, c.joint_names, c.frame_id, c.camera, c.finger_signs, c.base_frame_id
        )
        for cam, img in msgs.camera_images.items():
            self._pubs[f"{cam}/image_raw"].publish(img)
        if msgs.ee_pose_base is not None:
            self._pubs["ee_pose_base"].publish(msgs.ee_pose_base)
        self._pubs["joint_states"].publish(msgs.joint_states)
        self._pubs["ee_pose"].publish(msgs.ee_pose)
        self._pubs["object_poses"].publish(msgs.object_poses)
        if msgs.image is not None:
            self._pubs["image_raw"].publish(msgs.image)
        if self._episode_first_ns is None:
            self._episode_first_ns = ns
        if self._background is not None:  # realtime: the render threads publish the frames
            self._note_published(ns)  # before the capture: its last frame may go out at once
            self._capture_frames(ns)
            return
        if self.env.frames_deferred:
            self._publish_deferred_frames(ns)
        self._note_published(ns)

    def _publish_deferred_frames(self, ns: int) -> None:
        """The frames of a deferred env: rendered on the first publish of a state, each sent as
        soon as it is rendered; a state published again (a hold, a timeout) sends them as
        rendered then. The config never has both: ``camera.*`` (the monitoring ``image_raw``) or
        the pixel cameras (each on ``<camera>/image_raw``)."""
        cams = self.cfg.rendered_cameras
        rendered = list(self._frames.items()) if self._frames else self.env.render_frames(cams)
        for cam, frame in rendered:
            self._frames[cam] = frame
            self._pubs[self._frame_topic(cam)].publish(cv.image_msg(frame, ns, cam, "rgb8"))

    def _frame_topic(self, camera: str) -> str:
        """The publisher key of ``camera``'s frames: ``image_raw`` for the monitoring camera
        (``camera.*``), ``<camera>/image_raw`` for a pixel camera (the config never has both)."""
        return "image_raw" if self.cfg.camera else f"{camera}/image_raw"

    def _note_published(self, ns: int) -> None:
        """Remember when (wall) the observation stamped ``ns`` went out: the round trip's start."""
        self._trace.mark("obs_out", ns)
        with self._published_lock:
            self._published[ns] = time.monotonic()
            while len(self._published) > _PUBLISHED_KEPT:
                self._published.popitem(last=False)
        if self.cfg.realtime and self.cfg.anchor_deltas:
            self._poses[ns] = self._physics.anchor_pose()
            while len(self._poses) > _PUBLISHED_KEPT:
                self._poses.popitem(last=False)

    def _publish_feedback(
        self, ns: int, result: StepResult, indices: tuple[int, int], applied: np.ndarray | None = None
    ) -> None:
        self._trace.mark("feedback_out", ns)
        self._pubs["env_feedback"].publish(feedback_msg(ns, *result, *indices, applied))

    def _checked(self, cmd: cv.Command) -> np.ndarray | None:
        """The command's action, clipped; None (counted, logged) when the env refuses it."""
        try:
            return self.env.check_action(cmd.action)
        except ValueError as e:
            self.stats.rejected += 1
            self.get_logger().error(f"command rejected, treated as a hold: {e}", throttle_duration_sec=2.0)
            return None

    def _end_episode(self, success: bool) -> bool:
        """Log the finished episode, publish diagnostics (the session reads each episode's
        counts from them); True when that was the last one (the node is finished)."""
        self._sync_inbox_counts()
        rec = self.stats.end_episode(self._episode, self._steps_in_episode, success)
        n, wins = len(self.stats.records), self.stats.successes
        c = rec.counts
        self.get_logger().info(
            f"episode {rec.episode}: {'success' if success else 'failure'} after {rec.steps} steps "
            f"({rec.wall_s:.2f} s wall); {wins}/{n} successes, {self.stats.steps_per_s():.1f} env steps/s; "
            f"commands: {c['holds']} holds, {c['bridge_holds']} bridge holds, {c['superseded']} superseded, "
            f"{c['dropped']} dropped"
        )
        self._episode += 1
        self._cmd_seen = None
        self._steps_in_episode = 0
        self._plan.reset()  # a plan never crosses an episode
        if self.cfg.num_episodes and self._episode >= self.cfg.num_episodes:
            self._finish()
            return True
        self._publish_diagnostics()
        return False

    def _finish(self) -> None:
        for t in self._timers:
            t.cancel()
        self.finished = True
        if self._background is not None:  # the last observation's frames
            self._background.wait_idle(_FRAMES_IDLE_S)
        self._log_summary()
        self._publish_diagnostics()
        for name, p in self._pubs.items():  # the final feedback and observation must reach the policy
            self._flush(p, f"the last {name} message")

    # --- commands (both modes; the loops: bridge_lockstep, bridge_realtime) --------------
    def _on_action(self, msg: ActionCommand) -> None:
        t_in = time.monotonic_ns()
        if self.cfg is None or self.finished:
            return
        cmd = cv.action_command_to_numpy(msg)
        self._trace.mark("action_in", cmd.stamp_ns, t_in)
        first = self._episode_first_ns
        if first is not None and cmd.stamp_ns >= first:  # answers this episode (even while inactive)
            self._cmd_seen = max(self._cmd_seen or (cmd.episode, cmd.step), (cmd.episode, cmd.step))
        if not self.active:
            return
        if self.cfg.realtime:
            now = time.monotonic()
            published = self._published.get(cmd.stamp_ns)
            if published is not None:
                self.stats.answered(now - published)
            self._inbox.put(cmd, now, self._injected_delay_s())
        elif self._gate.accept(cmd.stamp_ns):
            t0 = time.monotonic()
            self.stats.answered(t0 - self._gate.published_at)
            if self._pacer.should_hold(self.stats.env_steps):
                self._held = (cmd, t0)  # stepped when the learner has caught up (_on_learner_stats)
                self._pacer.held += 1
                return
            self._lockstep_step(cmd)
            self.stats.timing(time.monotonic() - t0)
        else:
            self.get_logger().debug(f"ignored a command for stamp {cmd.stamp_ns} (not the current state)")


def _close_env(node: SimBridge) -> None:
    if node.cfg is not None:
        node.trigger_shutdown()  # closes the env (and its GL context, with a camera)


def main(args: list[str] | None = None) -> None:
    """Run the bridge until Ctrl-C / SIGTERM (exit 0) or until ``num_episodes`` are done (exit 0);
    exit 1 when autostart fails (the configure error is logged)."""
    run_lifecycle_node(SimBridge, args, finalize=_close_env)


if __name__ == "__main__":
    main()
