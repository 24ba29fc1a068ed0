"""The learner's replay: online + offline buffers behind one lock, with per-source counts.

Two threads touch it: the executor thread adds received transitions (:meth:`ReplayStore.add`),
the training thread draws minibatches (:meth:`ReplayStore.sample`). :class:`expo_core.replay.
ReplayBuffer` is not thread-safe, so both go through ``lock``; a whole update's minibatches are
drawn in one locked call (cheap copies), and the update itself runs without the lock.

Online = transitions recorded by this learner (reloaded from ``bag_dir`` and received live);
offline = the demonstration dataset. Batches mix them like the training harness
(:class:`expo_core.replay.MixedSampler`, ``offline_fraction`` of each batch offline).
Interventions (rows flagged ``intervention``, live, reloaded or in the offline data) also go into
a third buffer that the trainer samples for extra base imitation steps; whether they enter the
online buffer is ``InterventionUse.replay`` (:mod:`.interventions`). Every online row is counted
per episode by :class:`~expo_learner.interventions.InterventionStats`.
"""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import torch
from expo_core.batch import Batch
from expo_core.replay import MixedSampler, ReplayBuffer
from expo_ros.transitions import TransitionData

from .interventions import InterventionStats, InterventionUse
from .transition_table import TransitionTable

UNKNOWN_SOURCE = "(no source)"  # the tag of transitions whose Transition.source is empty


class ReplayStore:
    """Online ring buffer of ``online_capacity`` rows, optional offline buffer, intervention
    buffer, source counts, intervention statistics.

    ``seen``: online transitions ever added (reloaded + received, interventions included even
    when ``use.replay`` keeps them out of the online buffer: they are env steps); it keeps
    counting when the ring overwrites old rows. ``reloaded``: how many of them came from bags at
    configure. ``n_step`` > 1 with ``gamma`` (``ExpoConfig.n_step``): :meth:`sample` gives
    n-step rows (``expo_core.replay.ReplayBuffer.n_step_rows``); intervention batches stay 1-step.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        online_capacity: int,
        offline: ReplayBuffer | None = None,
        offline_fraction: float = 0.5,
        use: InterventionUse | None = None,
        *,
        n_step: int = 1,
        gamma: float | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.use = use or InterventionUse()
        self.online = ReplayBuffer(obs_dim, act_dim, online_capacity)
        self.offline = offline if offline is not None and len(offline) else None
        self.interventions = ReplayBuffer(obs_dim, act_dim, self.use.capacity)
        self._sampler = MixedSampler(self.online, self.offline, offline_fraction, n_step=n_step, gamma=gamma)
        self.sources: Counter[str] = Counter()
        self.intervention_stats = InterventionStats(self.use.stats_episodes)
        self.seen = 0
        self.reloaded = 0

    @property
    def obs_dim(self) -> int:
        return self.online.obs_dim

    @property
    def act_dim(self) -> int:
        return self.online.act_dim

    def add(self, t: TransitionData, source: str) -> int:
        """Append one transition (obs, next_obs (obs_dim,), action (act_dim,)); returns ``seen``.
        Raises ValueError (shapes, non-finite values) before anything is stored."""
        row = (t.obs, t.action, t.reward, t.next_obs, float(t.terminated), float(t.truncated))
        with self.lock:
            if t.intervention:
                self.interventions.add(*row)
            if self.use.replay or not t.intervention:
                self.online.add(*row)
            self.sources[source or UNKNOWN_SOURCE] += 1
            self.intervention_stats.add(
                source, t.episode, t.intervention, t.stamp_ns, bool(t.terminated or t.truncated)
            )
            self.seen += 1
            return self.seen

    def add_table(self, table: TransitionTable, reloaded: bool = True) -> int:
        """Append every row of ``table`` in order (e.g. reloaded segments); returns rows added."""
        if not len(table):
            return 0
        flagged = table.intervention
        with self.lock:
            if flagged.any():
                self.interventions.add_many(**table.select(flagged).transitions())
            online = table if self.use.replay or not flagged.any() else table.select(~flagged)
            if len(online):
                self.online.add_many(**online.transitions())
            done = (table.terminated > 0) | (table.truncated > 0)
            for i in range(len(table)):
                self.intervention_stats.add(
                    str(table.source[i]),
                    int(table.episode[i]),
                    bool(flagged[i]),
                    int(table.stamp_ns[i]),
                    bool(done[i]),
                )
            names, counts = np.unique(table.source, return_counts=True)
            for name, n in zip(names.tolist(), counts.tolist()):
                self.sources[name or UNKNOWN_SOURCE] += int(n)
            self.seen += len(table)
            self.reloaded += len(table) if reloaded else 0
        return len(table)

    def sample(
        self, count: int, batch_size: int, generator: torch.Generator, device: str | torch.device = "cpu"
    ) -> list[Batch]:
        """``count`` mixed minibatches of ``batch_size`` rows (what one ``agent.update`` pulls)."""
        with self.lock:
            return [self._sampler.sample(batch_size, generator, device) for _ in range(count)]

    def add_offline_interventions(self, arrays: dict[str, np.ndarray]) -> int:
        """Intervention rows of the offline data (the six replay fields, N rows) into the
        intervention buffer; they are already in the offline buffer. Returns N."""
        n = len(arrays["obs"])
        if n:
            with self.lock:
                self.interventions.add_many(**arrays)
        return n

    def sample_interventions(
        self, batch_size: int, generator: torch.Generator, device: str | torch.device = "cpu"
    ) -> Batch | None:
        """A minibatch of intervention rows, or None while fewer than ``use.bc_min_rows``."""
        with self.lock:
            if len(self.interventions) < self.use.bc_min_rows:
                return None
            return self.interventions.sample(batch_size, generator, device)

    def intervention_scalars(self) -> dict[str, float]:
        """The rates of :class:`InterventionStats` plus the intervention buffer's size."""
        with self.lock:
            out = self.intervention_stats.scalars()
            out["interventions/buffer_size"] = float(len(self.interventions))
            return out

    def sizes(self) -> tuple[int, int]:
        """(online rows, offline rows) held now."""
        with self.lock:
            return len(self.online), len(self.offline) if self.offline is not None else 0

    def source_counts(self) -> dict[str, int]:
        """Transitions per source (reloaded + received), most first."""
        with self.lock:
            return dict(self.sources.most_common())
