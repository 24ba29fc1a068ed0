"""The learner's replay: online + offline buffers behind one lock, with per-source counts.

Two threads touch it: the executor thread adds received transitions (:meth:`ReplayStore.add`),
the training thread draws minibatches (:meth:`ReplayStore.sample`). :class:`expo_core.replay.
ReplayBuffer` is not thread-safe, so both go through ``lock``; a whole update's minibatches are
drawn in one locked call (cheap copies), and the update itself runs without the lock.

Online = transitions recorded by this learner (reloaded from ``bag_dir`` and received live);
offline = the demonstration dataset. Batches mix them like the training harness
(:class:`expo_core.replay.MixedSampler`, ``offline_fraction`` of each batch offline).
"""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import torch
from expo_core.batch import Batch
from expo_core.replay import MixedSampler, ReplayBuffer
from expo_ros.transitions import TransitionData

from .transition_table import TransitionTable

UNKNOWN_SOURCE = "(no source)"  # the tag of transitions whose Transition.source is empty


class ReplayStore:
    """Online ring buffer of ``online_capacity`` rows, optional offline buffer, source counts.

    ``seen``: online transitions ever added (reloaded + received); it keeps counting when the
    ring overwrites old rows. ``reloaded``: how many of them came from bags at configure.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        online_capacity: int,
        offline: ReplayBuffer | None = None,
        offline_fraction: float = 0.5,
    ) -> None:
        self.lock = threading.Lock()
        self.online = ReplayBuffer(obs_dim, act_dim, online_capacity)
        self.offline = offline if offline is not None and len(offline) else None
        self._sampler = MixedSampler(self.online, self.offline, offline_fraction)
        self.sources: Counter[str] = Counter()
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
        with self.lock:
            self.online.add(t.obs, t.action, t.reward, t.next_obs, float(t.terminated), float(t.truncated))
            self.sources[source or UNKNOWN_SOURCE] += 1
            self.seen += 1
            return self.seen

    def add_table(self, table: TransitionTable, reloaded: bool = True) -> int:
        """Append every row of ``table`` in order (e.g. reloaded segments); returns rows added."""
        if not len(table):
            return 0
        with self.lock:
            self.online.add_many(**table.transitions())
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

    def sizes(self) -> tuple[int, int]:
        """(online rows, offline rows) held now."""
        with self.lock:
            return len(self.online), len(self.offline) if self.offline is not None else 0

    def source_counts(self) -> dict[str, int]:
        """Transitions per source (reloaded + received), most first."""
        with self.lock:
            return dict(self.sources.most_common())
