"""Replay intake: received CDR bytes and stored bags/datasets into the learner's replay.

Live path (:class:`TransitionIntake`, called by the node's ``raw=True`` subscription): CDR bytes
-> decode (rosbags, the installed Transition definition) -> check dims and finiteness -> the
same bytes into the segment log (:class:`~expo_learner.segments.SegmentWriter`) -> the online
buffer -> the trainer's update budget. A transition that fails the check is neither recorded nor
trained on (rejected and counted by reason), so the log never holds rows a reload could choke on.

Reload path (:func:`reload_online`, :func:`load_offline`): every segment of ``bag_dir`` back into
the online buffer, damaged ones salvaged and reported (:func:`~expo_learner.segment_reader.
load_segments`, never fatal); the offline dataset from a robomimic HDF5 file and/or bag dirs.

Pixel learner (a :class:`~expo_learner.pixel_features.PixelFeaturizer` given): each transition's
frames are encoded once on arrival (and on reload); replay stores the features, the segment log
the original bytes with the frames (:mod:`.pixel_features`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from expo_core.replay import CHUNK_FIELDS, ReplayBuffer, action_chunks
from expo_core.robomimic_io import load_robomimic_hdf5
from expo_core.spec import ObsSpec

from .bag_types import project_typestore
from .pixel_features import PixelFeaturizer, offline_features
from .replay_store import ReplayStore
from .robomimic_bags import read_intervention_flags
from .segment_reader import LoadReport, load_segments
from .segments import SegmentWriter
from .transition_codec import decode_transition
from .transition_table import TransitionTable

log = logging.getLogger(__name__)


class TransitionIntake:
    """Bytes of one ``expo_interfaces/msg/Transition`` at a time (one thread: the executor's).

    ``on_stored(n)`` is told after each stored transition (the trainer's budget). ``rejected``
    counts refused transitions by reason; ``new_sources`` collects sources seen for the first
    time since the last :meth:`take_new_sources` (for the log).
    """

    def __init__(
        self,
        store: ReplayStore,
        writer: SegmentWriter,
        on_stored: Callable[[int], None],
        featurizer: PixelFeaturizer | None = None,
    ) -> None:
        self.store, self.writer, self.on_stored = store, writer, on_stored
        self.featurizer = featurizer
        self._typestore = project_typestore()
        self.received = 0
        self.rejected: Counter[str] = Counter()
        self._known = set(store.source_counts())
        self._new: list[str] = []

    def on_cdr(self, data: bytes | memoryview, timestamp_ns: int | None = None) -> bool:
        """Record and store one transition; False when it was rejected (see ``rejected``)."""
        self.received += 1
        try:
            t, source = decode_transition(data, self._typestore)
        except Exception:  # bytes that are not a Transition: count, never raise into the executor
            self.rejected["undecodable"] += 1
            return False
        if self.featurizer is not None:  # frames -> features (encoded once, here)
            if not (np.isfinite(t.obs).all() and np.isfinite(t.next_obs).all()):
                self.rejected["non-finite values"] += 1
                return False
            try:
                t = self.featurizer.featurize(t)
            except ValueError as e:
                self.rejected[f"pixels: {e}"] += 1
                return False
        o, a = self.store.obs_dim, self.store.act_dim
        if t.obs.shape != (o,) or t.next_obs.shape != (o,) or t.action.shape != (a,):
            self.rejected[f"dims obs {t.obs.shape[0]} action {t.action.shape[0]} (want {o}, {a})"] += 1
            return False
        if not (np.isfinite(t.obs).all() and np.isfinite(t.next_obs).all() and np.isfinite(t.action).all()):
            self.rejected["non-finite values"] += 1
            return False
        if not np.isfinite(t.reward):
            self.rejected["non-finite reward"] += 1
            return False
        self.writer.write_cdr(data, timestamp_ns)
        self.store.add(t, source)
        if source not in self._known:
            self._known.add(source)
            self._new.append(source)
        self.on_stored(1)
        return True

    def take_new_sources(self) -> list[str]:
        """Sources first seen since the last call."""
        new, self._new = self._new, []
        return new


def _finite_rows(table: TransitionTable) -> tuple[TransitionTable, int]:
    ok = (
        np.isfinite(table.obs).all(1)
        & np.isfinite(table.next_obs).all(1)
        & np.isfinite(table.action).all(1)
        & np.isfinite(table.reward)
    )
    return (table, 0) if ok.all() else (table.select(ok), int((~ok).sum()))


def _check_dims(what: str, obs_dim: int, act_dim: int, store_dims: tuple[int, int]) -> None:
    if (obs_dim, act_dim) != store_dims:
        raise ValueError(
            f"{what} holds transitions with obs/action dims {(obs_dim, act_dim)}; the checkpoint's "
            f"networks take {store_dims}"
        )


def reload_online(
    store: ReplayStore, bag_dir: str | os.PathLike, featurizer: PixelFeaturizer | None = None
) -> LoadReport:
    """Every segment of ``bag_dir`` (if it exists) into the online buffer, in write order
    (a pixel learner encodes their frames once, here).

    Damaged segments give what could be read (listed in the report and logged). Raises
    ValueError only when the recorded transitions do not fit the networks (another task).
    """
    if not Path(bag_dir).is_dir():
        return LoadReport(())
    table, report = load_segments(bag_dir, rows_map=featurizer.featurize_rows if featurizer else None)
    if len(table):
        _check_dims(
            f"parameter 'bag_dir' ({bag_dir})", table.obs_dim, table.act_dim, (store.obs_dim, store.act_dim)
        )
        table, dropped = _finite_rows(table)
        if dropped:
            log.warning("%s: %d reloaded transitions with non-finite values dropped", bag_dir, dropped)
        store.add_table(table, reloaded=True)
    return report


def _first_slot_chunks(arrays: dict[str, np.ndarray], chunk_len: int) -> dict[str, np.ndarray]:
    """Rows without chunks as chunks of ``chunk_len``: their own action first, mask [1, 0, ...]
    (each row its own one-step episode for ``replay.action_chunks``)."""
    action = arrays["action"]
    return arrays | action_chunks(action, np.arange(len(action)), chunk_len)


def load_offline(
    dataset: str,
    bag_dirs: Sequence[str],
    spec: ObsSpec,
    act_dim: int,
    featurizer: PixelFeaturizer | None = None,
    chunk_len: int = 1,
) -> tuple[ReplayBuffer | None, dict[str, np.ndarray] | None, list[str]]:
    """The offline buffer from a robomimic HDF5 file (read through ``spec``) and/or bag dirs
    (each a segment root or a segment); None when both are empty. Also returns the offline rows
    flagged as interventions (the six replay fields; None when there are none: they feed the
    intervention buffer as well) and one description line per source. Raises
    ValueError/FileNotFoundError naming the parameter.

    With a ``featurizer`` (pixel learner) the dataset is an image dataset and the bags hold
    pixel transitions: every frame is encoded once and the buffer holds the features
    (``spec`` is then ignored: the checkpoint's own spec reads the file).

    ``chunk_len`` > 1 (a base that predicts action chunks, ``DiffusionConfig.chunk_len``): the
    dataset's rows also carry their chunk of the next ``chunk_len`` actions of their demo and its
    slot mask (``replay.action_chunks``), as the harness loads them, so the learner keeps
    training the whole chunk; bag rows carry their own action in the first slot only (as online
    rows do). The intervention rows are returned without chunks."""
    parts, flags, lines = [], [], []
    want = (featurizer.obs_dim if featurizer else spec.dim, act_dim)
    if dataset:
        if not Path(dataset).is_file():
            raise FileNotFoundError(f"parameter 'offline_dataset': {dataset} does not exist")
        try:
            if featurizer is not None:
                arrays, images = offline_features(dataset, featurizer.agent)
                data = images.low_dim
            else:
                data = load_robomimic_hdf5(dataset, spec)
                arrays = data.transitions(chunk_len)
        except (KeyError, ValueError, OSError) as e:
            raise ValueError(f"parameter 'offline_dataset': cannot read {dataset}: {e}") from e
        _check_dims(
            f"parameter 'offline_dataset' ({dataset})",
            arrays["obs"].shape[1],
            arrays["action"].shape[1],
            want,
        )
        parts.append(arrays)
        try:
            flags.append(read_intervention_flags(dataset, data.demo_names))
        except ValueError as e:
            raise ValueError(f"parameter 'offline_dataset': {e}") from e
        lines.append(
            f"{dataset}: {data.num_episodes} demos, {len(data)} transitions, "
            f"{int(flags[-1].sum())} intervention steps" + (" (frames encoded once)" if featurizer else "")
        )
    rows_map = featurizer.featurize_rows if featurizer else None
    for d in bag_dirs:
        try:
            table, report = load_segments(d, rows_map=rows_map)
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(f"parameter 'offline_bag_dirs': {e}") from e
        if len(table):
            _check_dims(f"parameter 'offline_bag_dirs' ({d})", table.obs_dim, table.act_dim, want)
            table, _ = _finite_rows(table)
            parts.append(table.transitions())
            flags.append(table.intervention)
        lines.append(f"{d}: {report.summary()}")
    if not parts:
        return None, None, lines
    if chunk_len > 1:
        parts = [p if "action_chunk" in p else _first_slot_chunks(p, chunk_len) for p in parts]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    flagged = np.concatenate(flags)
    interventions = (
        {k: v[flagged] for k, v in arrays.items() if k not in CHUNK_FIELDS} if flagged.any() else None
    )
    return ReplayBuffer.from_arrays(arrays), interventions, lines
