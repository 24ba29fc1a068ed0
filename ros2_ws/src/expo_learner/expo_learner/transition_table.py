"""Transitions as columns of numpy arrays: what bag segments load into and the CLI writes from.

A superset of :class:`expo_core.robomimic_io.TransitionArrays`: the six replay fields with the same
shapes and dtypes, plus the bookkeeping a Transition message carries (actor episode and step,
policy version, source, stamp, intervention flag). :meth:`TransitionTable.to_transition_arrays`
gives the core type.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
from expo_core.robomimic_io import TransitionArrays
from expo_ros.transitions import TransitionData

_REPLAY_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
_DTYPES = {
    "obs": np.float32,
    "action": np.float32,
    "reward": np.float32,
    "next_obs": np.float32,
    "terminated": np.float32,
    "truncated": np.float32,
    "episode": np.int64,
    "step": np.int64,
    "policy_version": np.int64,
    "source": np.str_,
    "stamp_ns": np.int64,
    "intervention": np.bool_,
}


@dataclass(frozen=True, eq=False)
class TransitionTable:
    """N transitions in log order (the order they were written).

    obs, next_obs: (N, obs_dim) float32; action: (N, A) float32; reward, terminated, truncated:
    (N,) float32 (flags 0/1); episode: (N,) int64, the *actor's* episode index (unique only
    together with ``source``); step: (N,) int64, index of obs within its episode; policy_version:
    (N,) int64; source: (N,) str, the producing actor; stamp_ns: (N,) int64 ns (header stamp);
    intervention: (N,) bool, an operator's action (Transition.intervention; all False when not
    given, e.g. rows of bags recorded before the field existed).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    policy_version: np.ndarray
    source: np.ndarray
    stamp_ns: np.ndarray
    intervention: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.intervention is None:
            object.__setattr__(self, "intervention", np.zeros(np.shape(self.obs)[0], np.bool_))
        for f in fields(self):
            object.__setattr__(self, f.name, np.asarray(getattr(self, f.name), dtype=_DTYPES[f.name]))
        n = self.obs.shape[0] if self.obs.ndim else -1
        for name in ("obs", "next_obs", "action"):
            arr = getattr(self, name)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"TransitionTable.{name} has shape {arr.shape}, expected (N={n}, d)")
        if self.next_obs.shape != self.obs.shape:
            raise ValueError(f"TransitionTable.next_obs {self.next_obs.shape} != obs {self.obs.shape}")
        for name in _DTYPES:
            arr = getattr(self, name)
            if name not in ("obs", "next_obs", "action") and arr.shape != (n,):
                raise ValueError(f"TransitionTable.{name} has shape {arr.shape}, expected (N={n},)")

    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def act_dim(self) -> int:
        return self.action.shape[1]

    @classmethod
    def from_arrays(
        cls,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        *,
        episode: int | np.ndarray = 0,
        step: int | np.ndarray | None = None,
        policy_version: int | np.ndarray = 0,
        source: str | Sequence[str] = "",
        stamp_ns: int | np.ndarray | None = None,
        intervention: bool | np.ndarray = False,
    ) -> TransitionTable:
        """Columns with scalar defaults broadcast to N rows: ``step=None`` numbers the rows 0..N-1,
        ``stamp_ns=None`` stamps every row with the current wall-clock time (ns)."""
        n = np.shape(obs)[0]
        stamp = time.time_ns() if stamp_ns is None else stamp_ns
        cols = {"episode": episode, "step": np.arange(n) if step is None else step}
        cols |= {"policy_version": policy_version, "source": source, "stamp_ns": stamp}
        cols |= {"intervention": intervention}
        cols = {k: np.broadcast_to(np.asarray(v, dtype=_DTYPES[k]), (n,)).copy() for k, v in cols.items()}
        return cls(obs, action, reward, next_obs, terminated, truncated, **cols)

    @classmethod
    def empty(cls, obs_dim: int = 0, act_dim: int = 0) -> TransitionTable:
        zeros = {k: np.zeros(0, _DTYPES[k]) for k in _DTYPES}
        zeros |= {"obs": np.zeros((0, obs_dim)), "next_obs": np.zeros((0, obs_dim))}
        return cls(**(zeros | {"action": np.zeros((0, act_dim))}))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[TransitionData, str]]) -> TransitionTable:
        """Stack decoded ``(TransitionData, source)`` pairs; all must share obs and action dims."""
        if not rows:
            return cls.empty()
        dims = {(t.obs.shape, t.next_obs.shape, t.action.shape) for t, _ in rows}
        if len(dims) > 1:
            raise ValueError(f"transitions disagree on (obs, next_obs, action) shapes: {sorted(dims)}")
        ts = [t for t, _ in rows]
        return cls(
            obs=np.stack([t.obs for t in ts]),
            action=np.stack([t.action for t in ts]),
            reward=[t.reward for t in ts],
            next_obs=np.stack([t.next_obs for t in ts]),
            terminated=[t.terminated for t in ts],
            truncated=[t.truncated for t in ts],
            episode=[t.episode for t in ts],
            step=[t.step for t in ts],
            policy_version=[t.policy_version for t in ts],
            source=[s for _, s in rows],
            stamp_ns=[t.stamp_ns for t in ts],
            intervention=[t.intervention for t in ts],
        )

    @classmethod
    def concat(cls, tables: Sequence[TransitionTable]) -> TransitionTable:
        """Rows of all ``tables`` in order; empty tables are skipped; dims must agree."""
        tables = [t for t in tables if len(t)]
        if not tables:
            return cls.empty()
        dims = sorted({(t.obs_dim, t.act_dim) for t in tables})
        if len(dims) > 1:
            raise ValueError(f"tables disagree on (obs_dim, act_dim): {dims}")
        return cls(**{k: np.concatenate([getattr(t, k) for t in tables]) for k in _DTYPES})

    def select(self, index: np.ndarray) -> TransitionTable:
        """Rows ``index`` (an integer index array or boolean mask), as a new table."""
        return TransitionTable(**{k: getattr(self, k)[index] for k in _DTYPES})

    def rows(self) -> Iterator[tuple[TransitionData, str]]:
        """Each row as ``(TransitionData, source)``, ready for ``encode_transition``."""
        for i in range(len(self)):
            t = TransitionData(
                obs=self.obs[i],
                action=self.action[i],
                reward=float(self.reward[i]),
                next_obs=self.next_obs[i],
                terminated=bool(self.terminated[i]),
                truncated=bool(self.truncated[i]),
                episode=int(self.episode[i]),
                step=int(self.step[i]),
                policy_version=int(self.policy_version[i]),
                stamp_ns=int(self.stamp_ns[i]),
                intervention=bool(self.intervention[i]),
            )
            yield t, str(self.source[i])

    def transitions(self) -> dict[str, np.ndarray]:
        """The six replay fields, ready for ``ReplayBuffer.from_arrays`` / ``add_many``."""
        return {k: getattr(self, k) for k in _REPLAY_FIELDS}

    def episode_groups(self) -> list[np.ndarray]:
        """Row indices of each episode, i.e. each distinct ``(source, episode)``, in order of first
        appearance; within an episode sorted by ``step`` (stable: duplicates keep log order)."""
        keys: dict[tuple[str, int], list[int]] = {}
        for i, key in enumerate(zip(self.source.tolist(), self.episode.tolist())):
            keys.setdefault(key, []).append(i)
        groups = [np.asarray(ix, dtype=np.int64) for ix in keys.values()]
        return [ix[np.argsort(self.step[ix], kind="stable")] for ix in groups]

    def to_transition_arrays(self, env_meta: dict | None = None) -> TransitionArrays:
        """The core's offline-data type: rows grouped by episode (:meth:`episode_groups`), episode
        renumbered 0..E-1, ``demo_names`` = ``"<source>/<episode>"``."""
        groups = self.episode_groups()
        order = np.concatenate(groups) if groups else np.zeros(0, np.int64)
        t = self.select(order)
        episode = np.concatenate([np.full(len(g), i, np.int64) for i, g in enumerate(groups)] or [[]])
        names = tuple(f"{self.source[g[0]]}/{self.episode[g[0]]}" for g in groups)
        return TransitionArrays(
            **t.transitions(),
            episode=episode.astype(np.int64),
            num_episodes=len(groups),
            env_meta=dict(env_meta or {}),
            demo_names=names,
        )
