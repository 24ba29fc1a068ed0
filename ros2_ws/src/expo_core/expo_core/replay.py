"""Replay storage: a numpy ring buffer of transitions and an online/offline mixing sampler.

The buffer keeps ``terminated`` (the MDP ended: no bootstrap) and ``truncated`` (a time limit or
the end of a recording cut the episode: bootstrap anyway) apart, as :class:`Batch` does. Sampling
draws indices with ``torch.randint`` on a caller-owned ``torch.Generator`` so that a seeded run
sees the same minibatches every time.

:class:`MixedSampler` is the RLPD-style symmetric sampler EXPO trains with: a fixed fraction of
every minibatch comes from the offline demonstrations, the rest from online experience.

Action chunks (a base with ``DiffusionConfig.chunk_len`` = k > 1): a buffer made with
``chunk_len=k`` also stores each row's chunk [a_t, ..., a_t+k-1] of its episode and the slot
mask (:func:`action_chunks` computes both from episode ids), and its batches carry them. Online
buffers keep ``chunk_len=1``: their rows carry their own action only, and the agent learns the
chunk's first slot from them (``Batch.chunk_targets``); the tail comes from the demonstrations.

Rewarded rows: the buffer labels each row whose episode earns a positive reward at that row or
later (with the sparse 0/1 success reward: the rows of successful episodes), from the rows it
stores alone, as they are written, and batches carry the label (``Batch.rewarded``). An episode
is followed as :meth:`ReplayBuffer.n_step_rows` follows it: a row joins the next stored row while
it ended neither by ``terminated`` nor by ``truncated`` and the next row's obs is its next_obs.
The label is derived, never stored in :meth:`arrays`: a buffer rebuilt from its arrays labels
the same rows again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch

from expo_core.batch import Batch

Device = torch.device | str

TRANSITION_FIELDS: tuple[str, ...] = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
CHUNK_FIELDS: tuple[str, ...] = ("action_chunk", "chunk_mask")


def action_chunks(action: np.ndarray, episode: np.ndarray, chunk_len: int) -> dict[str, np.ndarray]:
    """Every row's chunk of the next ``chunk_len`` actions of its own episode and the slot mask.

    action (N, d); episode (N,) ids, each episode's rows consecutive and in time order (as
    ``TransitionArrays`` concatenates the demos). Returns ``action_chunk`` (N, k, d) float32,
    [a_t, ..., a_t+k-1], zeros past the episode's end, and ``chunk_mask`` (N, k) float32, 1 where
    that step exists in the episode, 0 past its end."""
    action, episode = np.asarray(action, dtype=np.float32), np.asarray(episode)
    if not (isinstance(chunk_len, int) and chunk_len >= 1):
        raise ValueError(f"chunk_len={chunk_len!r} is invalid; allowed: integer >= 1")
    if action.ndim != 2 or episode.shape != action.shape[:1]:
        raise ValueError(f"action {action.shape} and episode {episode.shape} must be (N, d) and (N,)")
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]]) if len(episode) else []
    if len(np.unique(episode)) != len(starts):
        raise ValueError("action_chunks: each episode's rows must be consecutive")
    n, d = action.shape
    chunk = np.zeros((n, chunk_len, d), dtype=np.float32)
    mask = np.zeros((n, chunk_len), dtype=np.float32)
    for j in range(chunk_len):
        same = np.zeros(n, dtype=bool)
        same[: n - j] = episode[j:] == episode[: n - j]
        chunk[same, j] = action[j:][same[: n - j]]
        mask[same, j] = 1.0
    return {"action_chunk": chunk, "chunk_mask": mask}


def _check_n_step(n_step: int, gamma: float | None) -> None:
    if not (isinstance(n_step, int) and not isinstance(n_step, bool) and n_step >= 1):
        raise ValueError(f"n_step={n_step!r} is invalid; allowed: integer >= 1")
    if n_step > 1 and not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
        raise ValueError(f"n_step={n_step} needs the discount gamma in [0, 1], got {gamma!r}")


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions stored as float32 numpy arrays.

    Storage: obs, next_obs (capacity, obs_dim); action (capacity, act_dim); reward, terminated,
    truncated (capacity,). Once full, new transitions overwrite the oldest ones.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, chunk_len: int = 1) -> None:
        for name, value in (
            ("obs_dim", obs_dim),
            ("act_dim", act_dim),
            ("capacity", capacity),
            ("chunk_len", chunk_len),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"ReplayBuffer.{name} must be an integer >= 1, got {value!r}")
        self.obs_dim, self.act_dim, self.capacity = int(obs_dim), int(act_dim), int(capacity)
        self.chunk_len = int(chunk_len)  # > 1: rows also store action_chunk and chunk_mask
        self._data = {
            name: np.zeros((self.capacity, *shape), dtype=np.float32)
            for name, shape in self._row_shapes().items()
        }
        self._rewarded = np.zeros(self.capacity, dtype=bool)  # derived label, see the module doc
        self._ptr = 0  # next row to write
        self._size = 0

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], capacity: int | None = None) -> ReplayBuffer:
        """A buffer holding ``arrays`` (the six transition fields, leading dim N).

        ``capacity`` defaults to N; with a smaller capacity only the last ``capacity`` rows stay.
        Accepts :meth:`arrays` output and ``TransitionArrays.transitions()``; with
        ``action_chunk`` and ``chunk_mask`` (:func:`action_chunks`) the buffer stores chunks.
        """
        missing = [name for name in TRANSITION_FIELDS if name not in arrays]
        if missing:
            raise KeyError(f"ReplayBuffer.from_arrays: missing fields {missing}; have {sorted(arrays)}")
        obs, action = np.asarray(arrays["obs"]), np.asarray(arrays["action"])
        if obs.ndim != 2 or action.ndim != 2:
            raise ValueError(
                f"ReplayBuffer.from_arrays: obs and action must be 2-D (N, dim), "
                f"got obs {obs.shape} and action {action.shape}"
            )
        chunk_len = np.shape(arrays["action_chunk"])[1] if "action_chunk" in arrays else 1
        cap = capacity if capacity is not None else max(len(obs), 1)
        buffer = cls(obs.shape[1], action.shape[1], cap, chunk_len)
        buffer.add_many(**{name: arrays[name] for name in buffer._row_shapes()})
        return buffer

    def __len__(self) -> int:
        return self._size

    def _row_shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "obs": (self.obs_dim,),
            "action": (self.act_dim,),
            "reward": (),
            "next_obs": (self.obs_dim,),
            "terminated": (),
            "truncated": (),
        } | (
            {"action_chunk": (self.chunk_len, self.act_dim), "chunk_mask": (self.chunk_len,)}
            if self.chunk_len > 1
            else {}
        )

    def _validated(self, values: dict[str, object], lead: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Cast to float32 and check each field has shape ``lead + row shape``, finite, flags 0/1."""
        out = {}
        shapes = self._row_shapes()
        extra = [n for n in CHUNK_FIELDS if values.get(n) is not None and n not in shapes]
        if extra:
            raise ValueError(f"ReplayBuffer: {extra} given to a buffer without chunks (chunk_len=1)")
        for name, row_shape in shapes.items():
            if values.get(name) is None:
                raise ValueError(
                    f"ReplayBuffer: field '{name}' is missing (a buffer of chunks of {self.chunk_len})"
                )
            arr = np.asarray(values[name], dtype=np.float32)
            expected = lead + row_shape
            if arr.shape != expected:
                shown = ("N", *row_shape) if lead else row_shape
                raise ValueError(f"ReplayBuffer: field '{name}' has shape {arr.shape}, expected {shown}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"ReplayBuffer: field '{name}' has non-finite values (NaN or inf)")
            if name in ("terminated", "truncated", "chunk_mask") and not np.all((arr == 0.0) | (arr == 1.0)):
                raise ValueError(f"ReplayBuffer: field '{name}' must hold only 0 or 1")
            out[name] = arr
        if self.chunk_len > 1 and not (
            np.all(out["chunk_mask"][..., 0] == 1.0)
            and np.array_equal(out["action_chunk"][..., 0, :], out["action"])
        ):
            raise ValueError("ReplayBuffer: a chunk's first slot must be the row's own action, mask 1")
        return out

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: float | bool,
        truncated: float | bool,
        action_chunk: np.ndarray | None = None,
        chunk_mask: np.ndarray | None = None,
    ) -> None:
        """Append one transition: obs, next_obs (obs_dim,); action (act_dim,); scalars otherwise;
        action_chunk (k, act_dim) and chunk_mask (k,) for (and only for) a buffer of chunks."""
        row = self._validated(
            dict(
                obs=obs,
                action=action,
                reward=reward,
                next_obs=next_obs,
                terminated=terminated,
                truncated=truncated,
                action_chunk=action_chunk,
                chunk_mask=chunk_mask,
            ),
            lead=(),
        )
        for name, value in row.items():
            self._data[name][self._ptr] = value
        written = np.array([self._ptr])
        self._ptr = (self._ptr + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self._label_rewarded(written)

    def add_many(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        action_chunk: np.ndarray | None = None,
        chunk_mask: np.ndarray | None = None,
    ) -> None:
        """Append N transitions at once: obs, next_obs (N, obs_dim); action (N, act_dim); rest (N,);
        action_chunk (N, k, act_dim) and chunk_mask (N, k) for a buffer of chunks.

        Writes wrap around the ring; if N exceeds the capacity only the last ``capacity`` stay.
        """
        if np.ndim(obs) != 2:
            raise ValueError(
                f"ReplayBuffer: field 'obs' has shape {np.shape(obs)}, expected ('N', {self.obs_dim})"
            )
        n = int(np.shape(obs)[0])
        rows = self._validated(
            dict(
                obs=obs,
                action=action,
                reward=reward,
                next_obs=next_obs,
                terminated=terminated,
                truncated=truncated,
                action_chunk=action_chunk,
                chunk_mask=chunk_mask,
            ),
            lead=(n,),
        )
        if n == 0:
            return
        if n > self.capacity:  # the first n - capacity rows would be overwritten anyway
            rows = {name: arr[n - self.capacity :] for name, arr in rows.items()}
            n = self.capacity
        idx = (self._ptr + np.arange(n)) % self.capacity
        for name, arr in rows.items():
            self._data[name][idx] = arr
        self._ptr = (self._ptr + n) % self.capacity
        self._size = min(self._size + n, self.capacity)
        self._label_rewarded(idx)

    def _joins(self, row: np.ndarray | int, nxt: np.ndarray | int) -> np.ndarray:
        """Whether storage row ``row``'s episode goes on at storage row ``nxt`` (the rule of the
        module doc, shared by the labels and :meth:`n_step_rows`; the caller checks that ``nxt``
        is the next stored row)."""
        d = self._data
        return (
            (d["terminated"][row] == 0.0)
            & (d["truncated"][row] == 0.0)
            & np.all(d["obs"][nxt] == d["next_obs"][row], axis=-1)
        )

    def _label_rewarded(self, idx: np.ndarray) -> None:
        """Label the rows just written at storage rows ``idx`` (in time order, the newest last),
        then carry a label back into the older rows of the first one's episode."""
        label = self._rewarded
        label[idx] = self._data["reward"][idx] > 0.0
        if len(idx) > 1:
            joins = self._joins(idx[:-1], idx[1:])
            for j in range(len(idx) - 2, -1, -1):  # newest to oldest: a label flows back
                if joins[j] and label[idx[j + 1]]:
                    label[idx[j]] = True
        row, age = int(idx[0]), self._age(int(idx[0]))
        while label[row] and age > 0:
            prev = (row - 1) % self.capacity
            if label[prev] or not self._joins(prev, row):
                break
            label[prev], row, age = True, prev, age - 1

    def _age(self, row: np.ndarray | int) -> np.ndarray | int:
        """Storage row(s) ``row``'s place among the stored rows, 0 = the oldest."""
        return (row - self._ptr) % self.capacity if self._size == self.capacity else row

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of the valid contents, oldest first: each field with leading dim ``len(self)``."""
        if self._size < self.capacity:
            order = np.arange(self._size)
        else:
            order = (self._ptr + np.arange(self.capacity)) % self.capacity
        return {name: arr[order] for name, arr in self._data.items()}

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        device: Device = "cpu",
        *,
        n_step: int = 1,
        gamma: float | None = None,
    ) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement, as a float32 :class:`Batch`.
        ``n_step`` > 1 (with the discount ``gamma``): n-step rows, see :meth:`n_step_rows`."""
        if batch_size < 1:
            raise ValueError(f"ReplayBuffer.sample: batch_size must be >= 1, got {batch_size}")
        if self._size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty; add transitions before sampling")
        _check_n_step(n_step, gamma)
        # Rows [0, size) are valid whether or not the ring has wrapped: order does not matter here.
        idx = torch.randint(0, self._size, (batch_size,), generator=generator).numpy()
        if n_step == 1:
            rows = {name: arr[idx] for name, arr in self._data.items()}
        else:
            rows = self.n_step_rows(idx, n_step, gamma)
        rows["rewarded"] = self.rewarded(idx)
        return Batch(**{name: torch.from_numpy(arr).to(device) for name, arr in rows.items()})

    def rewarded(self, idx: np.ndarray) -> np.ndarray:
        """(B,) float32, 1 where storage row ``idx`` is a rewarded row (see the module doc)."""
        return self._rewarded[np.asarray(idx, dtype=np.int64)].astype(np.float32)

    def n_step_rows(self, idx: np.ndarray, n_step: int, gamma: float) -> dict[str, np.ndarray]:
        """The n-step rows starting at storage rows ``idx`` (B,): each follows its episode for up
        to ``n_step`` stored transitions, k of them, and holds obs, action (and chunks) of the
        first, reward = sum_{j<k} gamma^j r_j, next_obs, terminated and truncated of the last,
        and ``steps`` = k. A row's episode goes on to the next stored row while the row ended
        neither by ``terminated`` nor by ``truncated``, the next row is not past the newest one,
        and the next row's obs equals this row's next_obs (so rows of different episodes, or
        a ring that overwrote part of an episode, never join)."""
        _check_n_step(n_step, gamma)
        d, cap = self._data, self.capacity
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self._size):
            raise IndexError(f"ReplayBuffer.n_step_rows: rows must be in [0, {self._size})")
        age = self._age(idx)
        rows = {name: arr[idx] for name, arr in d.items() if name != "next_obs"}  # next_obs: the last row's
        reward = rows["reward"].astype(np.float64)
        steps = np.ones(len(idx), dtype=np.float32)
        last = idx.copy()
        going = np.ones(len(idx), dtype=bool)
        for j in range(1, n_step):
            nxt = (idx + j) % cap
            going &= (age + j < self._size) & self._joins(last, nxt)
            last = np.where(going, nxt, last)
            reward += np.where(going, gamma**j * d["reward"][nxt], 0.0)
            steps += going
        rows.update(
            reward=reward.astype(np.float32),
            next_obs=d["next_obs"][last],
            terminated=d["terminated"][last],
            truncated=d["truncated"][last],
            steps=steps,
        )
        return rows


class MixedSampler:
    """Minibatches mixing offline demonstrations and online experience (RLPD symmetric sampling).

    Each batch holds ``round(offline_fraction * B)`` offline rows first, then online rows. With no
    (or an empty) offline buffer all rows are online; with an empty online buffer all rows are
    offline, so the same sampler serves offline-only pretraining. ``n_step`` > 1 (with
    ``gamma``): both buffers give n-step rows (:meth:`ReplayBuffer.n_step_rows`).
    """

    def __init__(
        self,
        online: ReplayBuffer,
        offline: ReplayBuffer | None,
        offline_fraction: float = 0.5,
        *,
        n_step: int = 1,
        gamma: float | None = None,
    ) -> None:
        if not 0.0 <= offline_fraction <= 1.0:  # also rejects NaN
            raise ValueError(f"MixedSampler.offline_fraction must be in [0, 1], got {offline_fraction}")
        _check_n_step(n_step, gamma)
        self.n_step, self.gamma = n_step, gamma
        if offline is not None and (offline.obs_dim, offline.act_dim) != (online.obs_dim, online.act_dim):
            raise ValueError(
                f"MixedSampler: offline buffer dims (obs {offline.obs_dim}, act {offline.act_dim}) differ "
                f"from online (obs {online.obs_dim}, act {online.act_dim})"
            )
        self.online, self.offline, self.offline_fraction = online, offline, float(offline_fraction)

    def split(self, batch_size: int) -> tuple[int, int]:
        """(offline rows, online rows) a batch of ``batch_size`` takes given what is stored now."""
        n_offline_avail = len(self.offline) if self.offline is not None else 0
        if n_offline_avail == 0:
            return 0, batch_size
        if len(self.online) == 0:
            return batch_size, 0
        n_off = round(self.offline_fraction * batch_size)
        return n_off, batch_size - n_off

    def sample(self, batch_size: int, generator: torch.Generator, device: Device = "cpu") -> Batch:
        """One mixed :class:`Batch` of ``batch_size`` rows (offline rows first)."""
        if batch_size < 1:
            raise ValueError(f"MixedSampler.sample: batch_size must be >= 1, got {batch_size}")
        if len(self.online) == 0 and (self.offline is None or len(self.offline) == 0):
            raise ValueError("MixedSampler.sample: both the online and the offline buffer are empty")
        n_off, n_on = self.split(batch_size)
        parts = []
        ret = {"n_step": self.n_step, "gamma": self.gamma}
        if n_off:
            parts.append(self.offline.sample(n_off, generator, device, **ret))
        if n_on:
            parts.append(self.online.sample(n_on, generator, device, **ret))
        return parts[0] if len(parts) == 1 else Batch.cat(parts)

    def batches(self, batch_size: int, generator: torch.Generator, device: Device = "cpu") -> Iterator[Batch]:
        """An endless stream of :meth:`sample` batches (feeds ``agent.update(batch_iter)``)."""
        while True:
            yield self.sample(batch_size, generator, device)
