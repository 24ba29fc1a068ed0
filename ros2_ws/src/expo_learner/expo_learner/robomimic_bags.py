"""robomimic HDF5 <-> transition bag segments (the conversions behind ``expo-data``).

HDF5 -> bags: every demo becomes an episode (``episode`` = the demo's position in the file,
``step`` = index within the demo, ``policy_version`` 0, ``source`` ``"hdf5:<file name>"``,
stamps at 20 Hz from the conversion time). The segments' metadata ``custom_data`` keeps the
file's ``env_args`` JSON (``expo.env_args``) and the observation spec (``expo.obs_spec``), so
the way back restores them.

Bags -> HDF5 writes the layout :func:`expo_core.robomimic_io.load_robomimic_hdf5` and robomimic's
SequenceDataset read (see ``sim/expo_sim/envs/robomimic_writer.py``): one ``data/demo_<i>`` per
``(source, episode)`` in order of first appearance, rows sorted by step, ``obs/<key>`` and
``next_obs/<key>`` split by the task's ObsSpec, ``actions``, ``rewards``, ``dones`` (=
``terminated``). What the bags cannot give back:

- ``states`` (MuJoCo states) are absent: the file trains policies but cannot be replayed in sim;
- no ``mask/train|valid`` split (robomimic's ``split_train_val.py`` adds one);
- ``truncated`` is not stored: the reader re-derives it for the last step of each demo, so a
  mid-episode truncation or an unfinished (still running) episode reads back as truncated at the
  demo's end;
- without ``expo.env_args`` in the bags (live recordings) or an explicit ``env_args``, env_args is
  minimal: ``env_name`` of the task, ``type`` 1 and empty ``env_kwargs`` (our sim fills
  robomimic's defaults; robomimic's own env factory needs the full kwargs).

Images (``obs="pixels"``, issue 13) travel both ways too. HDF5 -> bags reads an image dataset
through the task's pixel spec (``obs/<camera>_image`` uint8 frames, base-frame proprioception)
and writes each transition's frames of obs and next obs as rgb8 ``images``/``next_images`` (as
the pixel policy node sends them); bags -> HDF5 writes them back as ``obs/<camera>_image`` and
``next_obs/<camera>_image`` (T, H, W, 3) uint8, the layout robomimic's SequenceDataset reads
with rgb obs keys. Bags -> HDF5 holds every frame in memory while it writes (84.7 KB per
transition with two 84x84 cameras).

Interventions travel both ways. Bags -> HDF5 writes, per demo, ``interventions`` (T,) bool (the
Transition flag) and ``action_modes`` (T,) int8 in the convention of Sirius (robomimic-based
human-in-the-loop learning, Liu et al. 2023): -1 demonstration (rows converted from an HDF5 file,
source ``hdf5:*``), 0 robot (the policy acted), 1 intervention. HDF5 -> bags (and the learner's
offline dataset) read ``interventions`` if present, else ``action_modes == 1``, else no flag.
robomimic itself ignores both keys.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
from expo_core.robomimic_io import load_robomimic_hdf5, load_robomimic_images, read_env_meta
from expo_core.spec import DEFAULT_IMAGE_SIZE, ObsSpec, task_obs_spec
from expo_ros.conversions import image_msg
from expo_ros.transitions import TransitionData

from .pixel_features import image_array
from .segment_reader import LoadReport, SegmentReport, load_segments
from .segments import SegmentConfig, SegmentWriter, list_segments
from .transition_table import TransitionTable

log = logging.getLogger(__name__)

ENV_ARGS_KEY = "expo.env_args"
OBS_SPEC_KEY = "expo.obs_spec"
CONTROL_PERIOD_NS = 50_000_000  # robomimic tasks run at 20 Hz
INTERVENTIONS_KEY = "interventions"  # data/demo_i/interventions (T,) bool
ACTION_MODES_KEY = "action_modes"  # data/demo_i/action_modes (T,) int8, Sirius' convention
ACTION_MODE_DEMO, ACTION_MODE_ROBOT, ACTION_MODE_INTERVENTION = -1, 0, 1
DEMO_SOURCE_PREFIX = "hdf5:"


def read_intervention_flags(path: str | os.PathLike, demo_names: Sequence[str]) -> np.ndarray:
    """The intervention flag of every row of ``demo_names`` (in that order, as
    ``load_robomimic_hdf5`` stacks them): ``interventions``, else ``action_modes == 1``, else
    False. Returns (N,) bool. Raises ValueError when a flag array's length differs from the
    demo's ``actions``."""
    parts = []
    with h5py.File(path, "r") as f:
        for name in demo_names:
            demo = f["data"][name]
            n = demo["actions"].shape[0]
            if INTERVENTIONS_KEY in demo:
                flags = np.asarray(demo[INTERVENTIONS_KEY][()]).astype(bool).reshape(-1)
            elif ACTION_MODES_KEY in demo:
                flags = np.asarray(demo[ACTION_MODES_KEY][()]).reshape(-1) == ACTION_MODE_INTERVENTION
            else:
                flags = np.zeros(n, bool)
            if flags.shape != (n,):
                raise ValueError(
                    f"{path}: data/{name} has {flags.shape[0]} intervention flags for {n} actions"
                )
            parts.append(flags)
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def _env_name_to_task(env_name: str) -> str:
    try:  # the one task <-> robosuite name table lives with the simulator
        from expo_core.tasks import task_from_env_name
    except ImportError as e:
        raise ValueError(f"cannot map env_name '{env_name}' to a task without expo_sim; pass --task") from e
    return task_from_env_name(env_name)


def _minimal_env_args(task: str) -> dict:
    try:
        from expo_core.tasks import ROBOSUITE_ENV_TYPE, TASK_TO_ENV_NAME
    except ImportError as e:
        raise ValueError("the bags carry no env_args and expo_sim is not installed; pass env_args") from e
    return {
        "env_name": TASK_TO_ENV_NAME[task],
        "env_version": "unknown",
        "type": ROBOSUITE_ENV_TYPE,
        "env_kwargs": {},
    }


def hdf5_to_segments(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    task: str | None = None,
    segment_bytes: int = 64 * 2**20,
    progress: Callable[[int], None] | None = None,
    obs: str = "state",
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> tuple[int, list[Path]]:
    """Write all demos of a robomimic HDF5 file as transition segments under ``out_dir``.
    ``obs="pixels"``: an image dataset (the task's pixel spec at ``image_size``); each
    transition carries its frames (module doc).

    ``task`` defaults to the one named by the file's env_args (required when it has none).
    ``progress(n)`` is called with the number of transitions just written. Returns
    ``(transitions written, closed segments)``. Raises FileNotFoundError, FileExistsError
    (``out_dir`` already holds segments), KeyError or ValueError (not a robomimic file, unknown
    task, keys missing for the task's spec).
    """
    in_path = Path(in_path)
    if not in_path.is_file():
        raise FileNotFoundError(f"{in_path}: no such file")
    if list_segments(out_dir):
        raise FileExistsError(f"{out_dir} already holds segments; choose an empty directory")
    if task is None:  # read_env_meta raises a KeyError naming the file when env_args is missing
        task = _env_name_to_task(str(read_env_meta(in_path).get("env_name")))
    spec = task_obs_spec(task, obs, image_size=image_size)
    images = load_robomimic_images(in_path, spec) if obs == "pixels" else None
    data = images.low_dim if images is not None else load_robomimic_hdf5(in_path, spec)
    env_meta = data.env_meta  # {} (with a warning) when the file has no env_args
    starts = np.flatnonzero(np.r_[True, data.episode[1:] != data.episode[:-1]])
    step = np.arange(len(data)) - np.repeat(starts, np.diff(np.r_[starts, len(data)]))
    table = TransitionTable.from_arrays(
        **data.transitions(),
        episode=data.episode,
        step=step,
        source=f"{DEMO_SOURCE_PREFIX}{in_path.name}",
        stamp_ns=time.time_ns() + np.arange(len(data)) * CONTROL_PERIOD_NS,
        intervention=read_intervention_flags(in_path, data.demo_names),
    )
    custom = {ENV_ARGS_KEY: json.dumps(env_meta), OBS_SPEC_KEY: json.dumps(spec.to_json())}
    config = SegmentConfig(max_bytes=int(segment_bytes), max_age_s=None)
    with SegmentWriter(out_dir, config, custom_data=custom) as writer:
        if images is None:
            for start in range(0, len(table), 1000):
                n = writer.write_table(table.select(np.arange(start, min(start + 1000, len(table)))))
                if progress is not None:
                    progress(n)
        else:
            for i, (t, source) in enumerate(table.rows()):
                writer.write(_with_frames(t, images, spec.cameras, i), source)
                if progress is not None and (i + 1) % 100 == 0:
                    progress(100)
            if progress is not None:
                progress(len(table) % 100)
    log.info(
        "%s: %d transitions of %d demos -> %d segments",
        in_path,
        len(table),
        data.num_episodes,
        len(writer.closed_segments),
    )
    return len(table), writer.closed_segments


def _with_frames(t: TransitionData, images, cameras: tuple[str, ...], row: int) -> TransitionData:
    """``t`` with the rgb8 frames of its obs and next obs (row ``row`` of ``images``) attached,
    stamped one control period apart (the next observation's stamp is the transition's)."""

    def msgs(frame: int, stamp: int) -> tuple:
        return tuple(image_msg(images.frames[f"{c}_image"][frame], stamp, c) for c in cameras)

    return dataclasses.replace(
        t,
        images=msgs(int(images.obs_frame[row]), t.stamp_ns - CONTROL_PERIOD_NS),
        next_images=msgs(int(images.next_obs_frame[row]), t.stamp_ns),
    )


class _FrameCollector:
    """A segment reader ``rows_map`` that keeps each row's frames (uint8 arrays by camera) in
    read order and leaves out rows whose frames are missing or malformed."""

    def __init__(self, spec: ObsSpec) -> None:
        self.cameras, self.size = spec.cameras, spec.rgb[0].shape[0]
        self.obs: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}
        self.next: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}

    def __call__(self, rows: list) -> tuple[list, Counter]:
        kept, left_out = [], Counter()
        for t, source in rows:
            try:
                got = []
                for field, msgs in (("images", t.images), ("next_images", t.next_images)):
                    if len(msgs) != len(self.cameras):
                        raise ValueError(f"{len(msgs)} {field} (want {len(self.cameras)})")
                    got.append(
                        [image_array(m, self.size, f"{field} {c}") for c, m in zip(self.cameras, msgs)]
                    )
            except ValueError as e:
                left_out[str(e)] += 1
                continue
            for c, now, nxt in zip(self.cameras, *got, strict=True):
                self.obs[c].append(now.copy())
                self.next[c].append(nxt.copy())
            kept.append((t, source))
        return kept, left_out


def _check_task(table: TransitionTable, spec: ObsSpec, task: str, custom: dict[str, str], where: str) -> None:
    if OBS_SPEC_KEY in custom and ObsSpec.from_json(json.loads(custom[OBS_SPEC_KEY])) != spec:
        raise ValueError(
            f"{where} hold transitions with obs spec {custom[OBS_SPEC_KEY]}; "
            f"task '{task}' expects {json.dumps(spec.to_json())}"
        )
    if table.obs_dim != spec.dim:
        raise ValueError(
            f"{where} hold obs of dim {table.obs_dim}; task '{task}' has dim {spec.dim} ({spec.names})"
        )


def _warn_irregular(table: TransitionTable, rows: np.ndarray, name: str) -> None:
    steps = table.step[rows]
    if len(steps) and not np.array_equal(steps, np.arange(steps[0], steps[0] + len(steps))):
        log.warning(
            "%s: steps are not consecutive (%d..%d over %d rows)", name, steps[0], steps[-1], len(steps)
        )
    if np.any(table.terminated[rows][:-1]) or np.any(table.truncated[rows][:-1]):
        log.warning("%s: an episode end flag appears before the last step", name)


def segments_to_hdf5(
    bag_dirs: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    task: str,
    env_args: dict | None = None,
    overwrite: bool = False,
    progress: Callable[[SegmentReport], None] | None = None,
    obs: str = "state",
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> tuple[int, int, LoadReport]:
    """Write the transitions of ``bag_dirs`` (segment roots or segment directories) as a robomimic
    HDF5 file for ``task``. Returns ``(demos, transitions, load report)``. ``obs="pixels"``:
    pixel transitions (the task's pixel spec at ``image_size``), frames written as
    ``obs``/``next_obs`` ``<camera>_image``; rows without usable frames are left out (reported).

    Raises FileNotFoundError (a bag dir), FileExistsError (``out_path`` without ``overwrite``),
    ValueError (no transitions, obs that do not fit the task).
    """
    spec = task_obs_spec(task, obs, image_size=image_size)
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists (replace it with --overwrite / overwrite=True)")
    frames = _FrameCollector(spec) if obs == "pixels" else None
    table, report = load_segments(bag_dirs, progress=progress, rows_map=frames)
    where = ", ".join(map(str, bag_dirs))
    if not len(table):
        raise ValueError(f"no transitions in {where} ({report.segments_read} segments): empty bag")
    _check_task(table, spec, task, report.custom_data, where)
    if env_args is None:
        stored = report.custom_data.get(ENV_ARGS_KEY)
        env_args = json.loads(stored) if stored else _minimal_env_args(task)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    groups = table.episode_groups()
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            data.attrs["env_args"] = json.dumps(env_args, indent=4)
            data.attrs["total"] = len(table)
            for i, rows in enumerate(groups):
                g = data.create_group(f"demo_{i}")
                name = f"data/demo_{i} ({table.source[rows[0]]} episode {table.episode[rows[0]]})"
                _warn_irregular(table, rows, name)
                g.attrs["num_samples"] = len(rows)
                g.attrs["source"] = str(table.source[rows[0]])
                g.attrs["episode"] = int(table.episode[rows[0]])
                g.create_dataset("actions", data=table.action[rows].astype(np.float64))
                g.create_dataset("rewards", data=table.reward[rows].astype(np.float64))
                g.create_dataset("dones", data=table.terminated[rows].astype(np.int64))
                g.create_dataset("policy_versions", data=table.policy_version[rows])
                flags = table.intervention[rows]
                g.create_dataset(INTERVENTIONS_KEY, data=flags)
                demo = np.char.startswith(table.source[rows].astype(str), DEMO_SOURCE_PREFIX)
                modes = np.where(flags, ACTION_MODE_INTERVENTION, ACTION_MODE_ROBOT)
                modes = np.where(demo & ~flags, ACTION_MODE_DEMO, modes)
                g.create_dataset(ACTION_MODES_KEY, data=modes.astype(np.int8))
                for group, arr in (("obs", table.obs), ("next_obs", table.next_obs)):
                    for key, part in spec.unflatten(arr[rows]).items():
                        g.create_dataset(f"{group}/{key}", data=part.astype(np.float64))
                if frames is not None:
                    for group, per_cam in (("obs", frames.obs), ("next_obs", frames.next)):
                        for c in spec.cameras:
                            stack = np.stack([per_cam[c][r] for r in rows])
                            g.create_dataset(f"{group}/{c}_image", data=stack, chunks=(1, *stack.shape[1:]))
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "%s: %d demos, %d transitions from %d segments",
        out_path,
        len(groups),
        len(table),
        report.segments_read,
    )
    return len(groups), len(table), report
