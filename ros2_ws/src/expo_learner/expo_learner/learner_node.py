"""EXPO learner node (lifecycle): transitions in, rosbag2 segments and training, weights out.

Topics (relative names; remap in the graph):

=================  ===============================  ===========================================
transitions        expo_interfaces/Transition       in; reliable, volatile, depth 1000; raw CDR
policy_weights     expo_interfaces/PolicyWeights    out; reliable, transient local, depth 1
learner_stats      expo_interfaces/LearnerStats     out; reliable, volatile, depth 10
diagnostics        diagnostic_msgs/DiagnosticArray  out; each stats period: UTD, backlog, and
                                                    the intervention rates
=================  ===============================  ===========================================

Pixel learner: started from a pixel checkpoint (``expo-pixels-safetensors-v1``, frozen encoder;
mode a of docs/pixels.md) it encodes each arriving transition's frames (``images``,
``next_images``) once and replays features; the offline dataset is then an image dataset, and
it publishes pixel weight bundles (:mod:`.pixel_features`).

Interventions (transitions flagged ``intervention``): into the online buffer and an intervention
buffer sampled for extra base imitation steps, both configurable (``intervention_*`` parameters,
:mod:`.interventions`); their rates per episode and per hour are learner_stats scalars
``interventions/...`` and diagnostics values.

Several actors (policy nodes in namespaces) can publish to one learner's ``transitions`` through
remaps; each Transition carries its ``source`` and the learner counts transitions per source
(log and learner_stats ``transitions/<source>``).

Lifecycle. configure: read the parameters (:mod:`.learner_params`), load the agent (the newest
readable checkpoint in ``checkpoint_dir``, else the base ``checkpoint``: :mod:`.checkpoints`),
load the offline data, reload every segment of ``bag_dir`` into the online buffer (damaged ones
salvaged and reported), open the segment writer, create the subscription, publishers and a 1 Hz
housekeeping timer. activate: publish the current weights as the next version and start the
training thread (:mod:`.trainer`). Transitions are recorded and stored only while active (the
rest are counted as dropped). deactivate: stop training, checkpoint, close the open segment (a
complete, fsync'd bag). cleanup/shutdown: release everything. Training never runs in a callback:
the executor thread only decodes, records and stores; weights and stats are published from the
training thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from expo_core.pixel_agent import PixelAgent
from expo_core.spec import ObsSpec, task_obs_spec
from expo_interfaces.msg import LearnerStats, PolicyWeights, Transition
from expo_ros import conversions as cv
from expo_ros import realtime
from expo_ros.lifecycle_teardown import TeardownLifecycleNode
from expo_ros.node_main import run_lifecycle_node
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from .checkpoints import CheckpointDir, load_start
from .intake import TransitionIntake, load_offline, reload_online
from .learner_params import PARAMETERS, LearnerConfig
from .learner_stats import StatsReport, TensorBoardLog
from .pixel_features import PixelFeaturizer
from .replay_store import ReplayStore
from .segment_reader import LoadReport
from .segments import SegmentConfig, SegmentWriter
from .trainer import Trainer, TrainerConfig, WeightsSnapshot

FAILURE = TransitionCallbackReturn.FAILURE
WEIGHTS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
TRANSITIONS_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
#: Stopping (node_main's drain): transitions are recorded until none came for this long and no
#: publisher of them is left (a policy node stopped at the same moment sends its last transition
#: out of its own drain, then goes), at most DRAIN_LIMIT_S: below node_main.REPEAT_GRACE_S, so a
#: second stop signal (which forces the exit) never lands inside a bag write.
DRAIN_QUIET_S = 0.2
DRAIN_LIMIT_S = 1.5


class LearnerNode(TeardownLifecycleNode):
    """Thin adapter: ROS in and out around :class:`~expo_learner.trainer.Trainer`."""

    def __init__(self, node_name: str = "learner_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for p in PARAMETERS:
            self.declare_parameter(
                p.name, p.default, ParameterDescriptor(description=p.description, dynamic_typing=True)
            )
        if _DROPPED_REALTIME:
            self.get_logger().info(
                f"started at {_DROPPED_REALTIME[0]} (inherited): back to normal scheduling, as the "
                "learner always runs"
            )
        self.cfg: LearnerConfig | None = None
        self.trainer: Trainer | None = None
        self.intake: TransitionIntake | None = None
        self.writer: SegmentWriter | None = None
        self.reload_report: LoadReport | None = None
        self.last_report: StatsReport | None = None
        self._tb: TensorBoardLog | None = None
        self.active = False
        self.dropped_inactive = 0
        self.messages_in = 0  # transitions taken (node_main's drain watches it)
        self._sub, self._pubs, self._timer, self._error_logged = None, {}, None, False

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = LearnerConfig.from_values({p.name: self.get_parameter(p.name).value for p in PARAMETERS})
            self._load(cfg)
        except (ValueError, OSError) as e:
            self.get_logger().error(f"configure failed: {e}")
            self._destroy()
            return FAILURE
        self._pubs = {
            "policy_weights": self.create_lifecycle_publisher(PolicyWeights, "policy_weights", WEIGHTS_QOS),
            "learner_stats": self.create_lifecycle_publisher(LearnerStats, "learner_stats", 10),
            "diagnostics": self.create_lifecycle_publisher(DiagnosticArray, "diagnostics", 10),
        }
        self._sub = self.create_subscription(
            Transition, "transitions", self._on_transition, TRANSITIONS_QOS, raw=True
        )
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(1.0, self._housekeeping, clock=steady)
        return super().on_configure(state)

    def _load(self, cfg: LearnerConfig) -> None:
        """Agent, replay, segment writer, trainer; raises ValueError/OSError naming the parameter."""
        log = self.get_logger()
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"parameter 'device': {cfg.device} requested but CUDA is not available")
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)  # process-wide
        spec = task_obs_spec(cfg.task)
        checkpoints = CheckpointDir(cfg.checkpoint_dir, cfg.keep_checkpoints)
        start = load_start(checkpoints, cfg.checkpoint, cfg.device, cfg.utd, cfg.batch_size)
        for skipped in start.skipped:
            log.warning(f"unreadable checkpoint skipped: {skipped}")
        ecfg = start.agent.cfg
        featurizer = None
        if isinstance(start.agent, PixelAgent):
            featurizer = _pixel_featurizer(start.agent, cfg.task, str(start.path))
        elif ecfg.obs_dim != spec.dim:
            raise ValueError(
                f"parameter 'task': {start.path} takes {ecfg.obs_dim} observation values, task "
                f"'{cfg.task}' observations have {spec.dim} ({', '.join(spec.names)})"
            )
        offline, offline_iv, lines = load_offline(
            cfg.offline_dataset,
            cfg.offline_bag_dirs,
            spec,
            ecfg.act_dim,
            featurizer,
            chunk_len=ecfg.diffusion.chunk_len,  # a chunk base keeps imitating whole chunks
        )
        store = ReplayStore(
            ecfg.obs_dim,
            ecfg.act_dim,
            cfg.online_capacity,
            offline,
            ecfg.offline_fraction,
            cfg.interventions,
            n_step=ecfg.n_step,
            gamma=ecfg.gamma,
        )
        if offline_iv is not None:
            store.add_offline_interventions(offline_iv)
        report = reload_online(store, cfg.bag_dir, featurizer)
        seg = SegmentConfig(
            max_bytes=cfg.segment_max_bytes,
            max_age_s=cfg.segment_max_age_s,
            flush_every_s=cfg.segment_flush_every_s,
            topic=self.resolve_topic_name("transitions"),
        )
        writer = SegmentWriter(cfg.bag_dir, seg)
        tcfg = TrainerConfig(
            warmup_transitions=cfg.warmup_transitions,
            max_update_backlog=cfg.max_update_backlog,
            publish_every_updates=cfg.publish_every_updates,
            publish_every_s=cfg.publish_every_s,
            checkpoint_every_updates=cfg.checkpoint_every_updates,
            stats_period_s=cfg.stats_period_s,
            seed=cfg.seed,
            device=cfg.device,
            nice=cfg.training_nice,
        )
        self._tb = TensorBoardLog(cfg.tensorboard_dir) if cfg.tensorboard_dir else None
        self.trainer = Trainer(start, store, checkpoints, tcfg, self._publish_weights, self._publish_stats)
        self.intake = TransitionIntake(store, writer, self.trainer.notify, featurizer)
        self.cfg, self.writer, self.reload_report = cfg, writer, report
        log.info(start.describe())
        if featurizer is not None:
            a = start.agent
            log.info(
                f"pixel learner: cameras {', '.join(a.cameras)} at {featurizer.size}x{featurizer.size}, "
                f"{a.obs_spec.dim} proprio values; frames encoded once by the frozen encoder, replay "
                f"holds {ecfg.obs_dim}-D features; weights published as pixel bundles"
            )
        log.info(
            f"network from the checkpoint: obs {ecfg.obs_dim}, act {ecfg.act_dim}, utd {ecfg.utd}, "
            f"batch {ecfg.batch_size}, offline fraction {ecfg.offline_fraction:g}"
            + (
                f", action chunks of {ecfg.diffusion.chunk_len} (demonstration rows carry whole chunks, "
                "online rows the first slot)"
                if ecfg.diffusion.chunk_len > 1
                else ""
            )
        )
        for line in lines:
            log.info(f"offline data: {line}")
        log.info(f"reloaded {store.reloaded} online transitions from {cfg.bag_dir}: {report.summary()}")
        for s in report.damaged:
            log.warning(
                f"damaged segment {s.name} salvaged: {s.messages} transitions; {'; '.join(s.problems)}"
            )
        log.info(f"transitions by source: {store.source_counts()}")
        iv = cfg.interventions
        log.info(
            f"interventions: {len(store.interventions)} rows held; into replay {iv.replay}; "
            f"{iv.bc_steps} base imitation steps per update once {iv.bc_min_rows} rows are held"
        )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self.active = True
        self.trainer.start()
        b = self.trainer.budget
        self.get_logger().info(
            f"active: training after {self.cfg.warmup_transitions} online transitions "
            f"(have {b.seen}), {self.trainer.agent.cfg.utd} critic steps per transition, training "
            f"thread niceness +{self.cfg.training_nice}"
        )
        return ret

    def _stop(self, reason: str) -> None:
        """Stop intake and training; checkpoint; close the open segment (durable)."""
        if not self.active or self.trainer is None:
            return
        self.active = False
        path = self.trainer.stop(checkpoint=True)
        closed = self.writer.rotate()
        if self._tb is not None:
            self._tb.flush()
        self.get_logger().info(
            f"{reason}: training stopped at {self.trainer.updates} updates, weights v{self.trainer.version}; "
            f"checkpoint {path.name if path else '(unchanged)'}; "
            + (f"segment {closed.name} closed" if closed else "no segment open")
        )

    def _destroy(self) -> None:
        timers = () if self._timer is None else (self._timer,)
        self._destroy_entities(timers, () if self._sub is None else (self._sub,), self._pubs.values())
        if self.writer is not None:
            self.writer.close()
        if self._tb is not None:
            self._tb.close()
        self._timer, self._sub, self._pubs, self._tb = None, None, {}, None
        self.cfg, self.trainer, self.intake, self.writer, self.active = None, None, None, None, False

    drain_limit_s = DRAIN_LIMIT_S

    def begin_drain(self) -> float:
        """A stop was requested (node_main): record the transitions still coming before training
        stops; returns the quiet window of the drain."""
        return DRAIN_QUIET_S

    def drain_pending(self) -> bool:
        """While stopping: a publisher of transitions is still there (its last ones may come)."""
        return self._sub is not None and self._sub.get_publisher_count() > 0

    # --- callbacks (executor thread) ------------------------------------------------------
    def _on_transition(self, data: bytes) -> None:
        self.messages_in += 1
        if not self.active:
            self.dropped_inactive += 1
            self.get_logger().warning(
                f"not active: {self.dropped_inactive} transitions dropped", throttle_duration_sec=5.0
            )
            return
        if not self.intake.on_cdr(data):
            self.get_logger().warning(
                f"transitions rejected so far: {dict(self.intake.rejected)}", throttle_duration_sec=5.0
            )

    def _housekeeping(self) -> None:
        """1 Hz: flush/rotate the segment log, name new sources, report a dead training thread."""
        if self.writer is not None:
            self.writer.tick()
        if self.intake is not None:
            for source in self.intake.take_new_sources():
                self.get_logger().info(f"first transition from source '{source}'")
        if self.trainer is not None and self.trainer.error is not None and not self._error_logged:
            self._error_logged = True
            self.get_logger().error(f"training thread died: {self.trainer.error!r}; intake continues")

    # --- outputs (training thread) --------------------------------------------------------
    def _publish_weights(self, w: WeightsSnapshot) -> None:
        payload = cv.WeightsPayload(w.version, w.data, w.sha256, w.format, w.training_step, w.config_json)
        self._pubs["policy_weights"].publish(
            cv.policy_weights_msg(payload, self.get_clock().now().nanoseconds)
        )
        self.get_logger().info(
            f"published policy weights v{w.version} ({len(w.data)} bytes, critic step {w.training_step}, "
            f"sha256 {w.sha256[:12]})"
        )

    def _publish_stats(self, r: StatsReport) -> None:
        self.last_report = r
        scalars = r.scalars()
        if self.intake is not None:
            scalars["transitions_rejected"] = float(sum(self.intake.rejected.values()))
            scalars["transitions_dropped_inactive"] = float(self.dropped_inactive)
        msg = cv.learner_stats_msg(
            cv.LearnerStatsData(
                stamp_ns=self.get_clock().now().nanoseconds,
                training_step=r.training_step,
                env_steps_received=r.env_steps_received,
                buffer_size=r.online_size,
                achieved_utd=r.achieved_utd,
                updates_per_second=r.updates_per_second,
                weights_version=r.weights_version,
                scalars=scalars,
            )
        )
        self._pubs["learner_stats"].publish(msg)
        self._publish_diagnostics(r)
        if self._tb is not None:
            self._tb.write(r)
        self.get_logger().info(r.line())

    def _publish_diagnostics(self, r: StatsReport) -> None:
        """One status: OK, WARN while the training thread is dead or updates are skipped."""
        values: dict[str, float | int | str | bool] = {
            "updates": r.updates,
            "env_steps_received": r.env_steps_received,
            "achieved_utd": r.achieved_utd,
            "backlog": r.backlog,
            "updates_skipped": r.updates_skipped,
            "weights_version": r.weights_version,
        }
        values.update(r.interventions)  # interventions/step_fraction, per_episode, per_hour, ...
        dead = self.trainer is not None and self.trainer.error is not None
        level = DiagnosticStatus.WARN if dead or r.updates_skipped else DiagnosticStatus.OK
        message = "training thread died" if dead else r.line()
        self._pubs["diagnostics"].publish(
            cv.diagnostics_msg(
                self.get_clock().now().nanoseconds,
                f"{self.get_fully_qualified_name()}: learner",
                level,
                message,
                values,
                "expo_learner",
            )
        )


def _pixel_featurizer(agent: PixelAgent, task: str, path: str) -> PixelFeaturizer:
    """The featurizer of a pixel start point; ValueError naming the parameter when its spec is
    not the task's pixel spec (other proprioception) or its encoder is not frozen."""
    want: ObsSpec = task_obs_spec(
        task, "pixels", cameras=agent.cameras, image_size=agent.encoder_cfg.image_size
    )
    if want.to_json() != agent.obs_spec.to_json():
        raise ValueError(
            f"parameter 'task': {path} is a pixel policy on {agent.obs_spec.names}, task '{task}' "
            f"pixel observations are {want.names}"
        )
    try:
        return PixelFeaturizer(agent)
    except ValueError as e:
        raise ValueError(f"parameter 'checkpoint': {path}: {e}") from e


#: What this process's threads ran at before :func:`main` put them back to normal scheduling
#: (empty: nothing was real time); the node logs it once.
_DROPPED_REALTIME: list[str] = []


def main(args: list[str] | None = None, inherited: Sequence[str] = ()) -> None:
    """Run the node; Ctrl-C / SIGTERM stop training and checkpoint before exiting 0.

    The learner is never real time: started inside a graph at SCHED_FIFO (``expo-sim session
    --sched-fifo``, ``chrt``), its threads go back to normal scheduling before rclpy starts its
    own, since a learner that trains without pause at the control nodes' priority would hold a
    core they need (docs/sim_to_real.md). ``inherited``: what :mod:`expo_learner.start` (the
    executable, which lowers the process before importing this module) already put back."""
    _DROPPED_REALTIME[:] = [*inherited, *realtime.process_to_normal()]
    run_lifecycle_node(LearnerNode, args, finalize=lambda node: node.trigger_shutdown())


if __name__ == "__main__":
    main()
