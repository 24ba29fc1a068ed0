"""The learner's training thread: update-to-data bookkeeping, EXPO updates, weights, checkpoints.

No ROS: the node hands it a :class:`~expo_learner.replay_store.ReplayStore`, calls
:meth:`Trainer.notify` for every stored transition and receives weights and stats through two
callbacks (called from the training thread).

The ratio. One *agent update* (``ExpoAgent.update``: ``utd`` critic steps on ``utd`` fresh
minibatches, then one base, one editor and one temperature step) is owed per online transition
received after warm-up, as in the training harness (``expo_sim.train.harness``: one update per env step
once ``warmup`` steps are stored). The target critic-step UTD is therefore ``ExpoConfig.utd``.
Warm-up counts every online transition, reloaded ones included; reloaded transitions owe nothing
(they were trained on before the restart).

Interventions: after each agent update the base takes ``InterventionUse.bc_steps`` extra
imitation steps on minibatches of the store's intervention rows (``ExpoAgent.pretrain_step``),
once there are ``bc_min_rows`` of them (:mod:`.interventions`); their mean loss is reported as
``intervention_bc_loss``.

Degrading gracefully: when transitions arrive faster than updates finish, owed updates pile up
in a backlog of at most ``max_update_backlog``; beyond that they are dropped and counted
(``updates_skipped``), so the learner trains on fresh data instead of falling ever further
behind, and the achieved ratio (critic steps per owed transition) is reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from expo_core.checkpoint import FORMAT, policy_weights_bytes, weights_format
from expo_ros.realtime import add_nice, check_nice_increment

from .checkpoints import CheckpointDir, StartPoint, core_agent, updates_of
from .learner_stats import StatsReport, StatsWindow
from .replay_store import ReplayStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsSnapshot:
    """One publication: safetensors ``data`` of the acting bundle and its lowercase sha256 hex."""

    version: int
    training_step: int
    data: bytes
    sha256: str
    config_json: str
    format: str = FORMAT


@dataclass(frozen=True)
class TrainerConfig:
    """Cadences and limits of the training loop (see learner.yaml for each parameter)."""

    warmup_transitions: int = 1000
    max_update_backlog: int = 100
    publish_every_updates: int = 100
    publish_every_s: float = 30.0
    checkpoint_every_updates: int = 1000
    stats_period_s: float = 5.0
    seed: int = 0
    device: str = "cpu"
    #: added to the training thread's niceness when it starts (0-19; 0 = the process's)
    nice: int = 0

    def __post_init__(self) -> None:
        try:
            check_nice_increment(self.nice)
        except ValueError as e:
            raise ValueError(f"TrainerConfig.nice: {e}") from e
        lows = {
            "warmup_transitions": 0,
            "max_update_backlog": 1,
            "publish_every_updates": 1,
            "checkpoint_every_updates": 1,
        }
        for name, lo in lows.items():
            if getattr(self, name) < lo:
                raise ValueError(f"TrainerConfig.{name} must be >= {lo}, got {getattr(self, name)}")
        for name in ("publish_every_s", "stats_period_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainerConfig.{name} must be > 0 s, got {getattr(self, name)}")


class UpdateBudget:
    """Owed agent updates (module docstring); ``add`` from any thread, ``take`` from the trainer.

    seen: online transitions stored so far (reloaded + received); received: this session's;
    owed_total: updates owed this session; backlog: owed and not yet done; done; skipped.
    """

    def __init__(self, warmup: int, max_backlog: int, seen: int = 0) -> None:
        self.warmup, self.max_backlog = int(warmup), int(max_backlog)
        self._cond = threading.Condition()
        self.seen, self.received = int(seen), 0
        self.owed_total = self.backlog = self.done = self.skipped = 0

    @property
    def warmed_up(self) -> bool:
        return self.seen >= self.warmup

    def add(self, n: int = 1) -> None:
        """``n`` more transitions were stored; those past the warm-up each owe one update."""
        with self._cond:
            before, self.seen = self.seen, self.seen + n
            self.received += n
            owed = max(0, self.seen - max(before, self.warmup))
            self.owed_total += owed
            self.backlog += owed
            if self.backlog > self.max_backlog:
                self.skipped += self.backlog - self.max_backlog
                self.backlog = self.max_backlog
            if owed:
                self._cond.notify_all()

    def take(self, timeout_s: float = 0.0) -> bool:
        """Claim one owed update, waiting up to ``timeout_s`` for one; False if none."""
        with self._cond:
            if self.backlog == 0 and timeout_s > 0:
                self._cond.wait(timeout_s)
            if self.backlog == 0:
                return False
            self.backlog -= 1
            self.done += 1
            return True

    def wake(self) -> None:
        """End a waiting :meth:`take` now (stop requests)."""
        with self._cond:
            self._cond.notify_all()


class Trainer:
    """Trains ``start.agent`` on ``store`` in its own thread (:meth:`start` / :meth:`stop`), or
    step by step from the caller (:meth:`step`, for tests). Callbacks run in the calling thread."""

    def __init__(
        self,
        start: StartPoint,
        store: ReplayStore,
        checkpoints: CheckpointDir,
        cfg: TrainerConfig,
        on_weights: Callable[[WeightsSnapshot], None] = lambda w: None,
        on_stats: Callable[[StatsReport], None] = lambda r: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent, self.progress = start.agent, start.progress
        self.core = core_agent(start.agent)  # what updates: the agent, or a pixel agent's feature agent
        self.store, self.checkpoints, self.cfg = store, checkpoints, cfg
        self.on_weights, self.on_stats, self._clock = on_weights, on_stats, clock
        self.budget = UpdateBudget(cfg.warmup_transitions, cfg.max_update_backlog, store.seen)
        # A new sampling stream after every resume (the buffer contents differ anyway).
        self.generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.updates)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the training thread's niceness once it runs (cfg.nice added to the process's)
        self.thread_nice: int | None = None
        self.error: BaseException | None = None
        now = clock()
        self._window = StatsWindow(now, self.progress.critic_steps, 0)
        self._published_at, self._published_updates = now, self.updates
        self._saved = (self.updates, self.version) if start.resumed else None

    @property
    def updates(self) -> int:
        return updates_of(self.agent)

    @property
    def version(self) -> int:
        return self.progress.weights_version

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def notify(self, n: int = 1) -> None:
        """``n`` transitions were added to the store (any thread)."""
        self.budget.add(n)

    # --- the loop -------------------------------------------------------------------------
    def step(self, wait_s: float = 0.0) -> bool:
        """One iteration: an owed update if there is one (waiting up to ``wait_s``), then the
        publication, checkpoint and stats cadences. Returns whether an update ran."""
        did = self.budget.take(wait_s)
        if did:
            self.update_once()
        now = self._clock()
        since = self.updates - self._published_updates
        if since >= self.cfg.publish_every_updates or (
            since > 0 and now - self._published_at >= self.cfg.publish_every_s
        ):
            self.publish()
        if did and self.updates % self.cfg.checkpoint_every_updates == 0:
            self.checkpoint()
        if self._window.elapsed(now) >= self.cfg.stats_period_s:
            self.on_stats(self.report())
        return did

    def update_once(self) -> dict[str, float]:
        """One ``ExpoAgent.update`` on ``utd`` freshly drawn mixed minibatches, then the base's
        imitation steps on intervention rows (if configured and there are enough)."""
        cfg = self.core.cfg
        batches = self.store.sample(cfg.utd, cfg.batch_size, self.generator, self.cfg.device)
        stats = self.core.update(iter(batches))
        self.progress.critic_steps += cfg.utd
        stats.update(self.intervention_bc())
        self._window.add(stats)
        return stats

    def intervention_bc(self) -> dict[str, float]:
        """``use.bc_steps`` base imitation steps on intervention minibatches; ``{}`` when off or
        while the intervention buffer holds fewer than ``use.bc_min_rows`` rows."""
        use = self.store.use
        size = use.bc_batch_size or self.core.cfg.batch_size
        losses = []
        for _ in range(use.bc_steps):
            batch = self.store.sample_interventions(size, self.generator, self.cfg.device)
            if batch is None:
                break
            losses.append(self.core.pretrain_step(batch)["bc_loss"])
        return {"intervention_bc_loss": sum(losses) / len(losses)} if losses else {}

    def publish(self) -> WeightsSnapshot:
        """Publish the acting weights as the next version (persisted before it goes out): a state
        bundle, or for a pixel agent a pixel bundle (``PIXELS_FORMAT``, frozen encoder included)."""
        version = self.progress.weights_version + 1
        data, sha = policy_weights_bytes(self.agent, version, self.progress.critic_steps)
        self.checkpoints.record_version(version)
        self.progress.weights_version = version
        self._published_at, self._published_updates = self._clock(), self.updates
        snap = WeightsSnapshot(
            version, self.progress.critic_steps, data, sha, self.core.cfg.to_json(), weights_format(data)
        )
        self.on_weights(snap)
        return snap

    def checkpoint(self) -> Path | None:
        """Save unless nothing changed since the last save; returns the path written."""
        if self._saved == (self.updates, self.version):
            return None
        path = self.checkpoints.save(self.agent, self.progress)
        self._saved = (self.updates, self.version)
        log.info("checkpoint %s (updates %d, weights v%d)", path.name, self.updates, self.version)
        return path

    def report(self) -> StatsReport:
        """Close the current stats period and describe it."""
        b, now = self.budget, self._clock()
        losses, steps_per_s, window_utd = self._window.close(now, self.progress.critic_steps, b.owed_total)
        online, offline = self.store.sizes()
        utd = self.core.cfg.utd
        return StatsReport(
            training_step=self.progress.critic_steps,
            updates=self.updates,
            env_steps_received=self.store.seen,
            online_size=online,
            offline_size=offline,
            achieved_utd=utd * b.done / b.owed_total if b.owed_total else 0.0,
            achieved_utd_window=window_utd,
            updates_per_second=steps_per_s,
            weights_version=self.version,
            backlog=b.backlog,
            updates_skipped=b.skipped,
            warmed_up=b.warmed_up,
            losses=losses,
            sources=self.store.source_counts(),
            interventions=self.store.intervention_scalars(),
        )

    # --- thread ---------------------------------------------------------------------------
    def start(self) -> None:
        """Publish the current weights (next version), then train in a thread until :meth:`stop`."""
        if self.running:
            return
        self._stop.clear()
        self.error = None
        self.publish()
        self._thread = threading.Thread(target=self._run, name="expo-trainer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.thread_nice = add_nice(self.cfg.nice)  # yields the CPU to the control graph
            while not self._stop.is_set():
                self.step(wait_s=0.05)
        except Exception as e:  # reported by the node; the thread must not die silently
            self.error = e
            log.exception("training stopped by an error")

    def stop(self, checkpoint: bool = True, timeout_s: float | None = None) -> Path | None:
        """Stop the thread (an update in progress finishes first), then checkpoint."""
        self._stop.set()
        self.budget.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise TimeoutError(f"training thread still running after {timeout_s} s")
            self._thread = None
        return self.checkpoint() if checkpoint else None
