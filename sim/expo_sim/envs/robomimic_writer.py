"""Write demonstrations in the official robomimic HDF5 layout.

Layout (what robomimic's SequenceDataset and its playback scripts read)::

    data.attrs["env_args"]   JSON {env_name, env_version, type=1, env_kwargs}
    data.attrs["total"]      total number of samples over all demos
    data/demo_<i>.attrs      num_samples, model_file (MJCF), plus our success / style / seed
    data/demo_<i>/states     (T, S) float64   flattened MuJoCo state before each action
    data/demo_<i>/actions    (T, 7) float64
    data/demo_<i>/rewards    (T,)   float64
    data/demo_<i>/dones      (T,)   int64
    data/demo_<i>/obs/<key>       (T, d) float64         low-dim keys
    data/demo_<i>/next_obs/<key>  (T, d) float64
    data/demo_<i>/obs/<camera>_image       (T, H, W, 3) uint8   upright RGB frames (image demos)
    data/demo_<i>/next_obs/<camera>_image  (T, H, W, 3) uint8   unless next_obs_images=False
    mask/train, mask/valid   demo names as byte strings (robomimic's 90/10 random split)

Frames are what robomimic's image datasets hold (its env wrapper flips robosuite's OpenGL
renders upright; so does ours). ``compression`` ("gzip" or "lzf") compresses frames in chunks
of one frame, so a reader decompresses only the frames it reads; robomimic's own
``--compress`` uses gzip too. ``next_obs_images=False`` leaves the (shifted, duplicate) frames
out of ``next_obs`` to halve the file, like robomimic's ``--exclude-next-obs`` for images only;
robomimic's SequenceDataset then needs ``load_next_obs=False`` for rgb keys (its BC template
sets that; its offline-RL templates load next_obs).

Failed demonstrations (``mixed`` quality) are written too: they are what makes a mixed set
imperfect. Their rewards are all 0 and their dones all 0, including the last step: ``dones``
marks a true terminal state (success), and a demo that stops without success ended by a time
limit or the operator giving up, which must not be bootstrapped as terminal. robomimic's own
conversion script sets done=1 at the last step of every demo; offline RL on this data should
read ``dones``, not the demo end, as terminal.

The file is written under a temporary name and renamed on :meth:`RobomimicWriter.close`, so a
crash never leaves a half-written dataset under the final name.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from expo_sim.envs.episodes import Episode

log = logging.getLogger(__name__)


COMPRESSIONS: tuple[str | None, ...] = (None, "gzip", "lzf")


def is_image_key(key: str) -> bool:
    """robomimic names camera observations ``<camera>_image``."""
    return key.endswith("_image")


def write_frames(
    group: h5py.Group, name: str, frames: np.ndarray, compression: str | None = None, level: int = 4
) -> h5py.Dataset:
    """Write (T, H, W, 3) uint8 frames as ``group/name``; compressed in chunks of one frame.

    Raises ValueError for another dtype or shape (frames are never silently converted: a float
    image in [0, 1] cast to uint8 would be black)."""
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"'{name}': frames must be (T, H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    if compression is None:
        return group.create_dataset(name, data=arr)
    opts = {"compression_opts": level} if compression == "gzip" else {}
    chunks = (1, *arr.shape[1:]) if arr.shape[0] else None
    return group.create_dataset(name, data=arr, compression=compression, chunks=chunks, **opts)


def train_valid_split(names: list[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """robomimic's split: ``int(valid_fraction * n)`` demos drawn at random go to valid."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n_valid = int(valid_fraction * len(names))
    mask = np.zeros(len(names), dtype=bool)
    mask[:n_valid] = True
    np.random.default_rng(seed).shuffle(mask)
    train = [n for n, m in zip(names, mask, strict=True) if not m]
    valid = [n for n, m in zip(names, mask, strict=True) if m]
    return train, valid


class RobomimicWriter:
    """Streams episodes into a robomimic HDF5 file; use as a context manager.

    Args:
        path: output file; parent directories are created.
        env_args: robomimic env metadata (``RobomimicEnv.env_args``).
        model_xml: MJCF stored as each demo's ``model_file`` attribute (optional).
        extra_attrs: more string attributes on ``data`` (e.g. how the set was generated).
        overwrite: replace an existing file; otherwise an existing file raises FileExistsError.
        compression: None, "gzip" or "lzf" for the frames (chunked per frame); low-dim arrays
            are small and stay uncompressed.
        compression_level: gzip level 0-9 (default 4; ignored otherwise).
        next_obs_images: also write ``next_obs/<camera>_image`` (default True, as robomimic).
    """

    def __init__(
        self,
        path: str | Path,
        env_args: dict[str, Any],
        *,
        model_xml: str | None = None,
        extra_attrs: dict[str, str] | None = None,
        overwrite: bool = False,
        compression: str | None = None,
        compression_level: int = 4,
        next_obs_images: bool = True,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
        if not isinstance(compression_level, int) or not 0 <= compression_level <= 9:
            raise ValueError(f"compression_level must be an int in [0, 9], got {compression_level!r}")
        self.compression = compression
        self.compression_level = compression_level
        self.next_obs_images = bool(next_obs_images)
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it")
        missing = {"env_name", "env_version", "type", "env_kwargs"} - set(env_args)
        if missing:
            raise ValueError(f"env_args lacks {sorted(missing)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._file = h5py.File(self._tmp, "w")
        self._data = self._file.create_group("data")
        self._data.attrs["env_args"] = json.dumps(env_args, indent=4)
        for k, v in (extra_attrs or {}).items():
            self._data.attrs[k] = v
        self._model_xml = model_xml
        self._names: list[str] = []
        self._total = 0
        self._obs_keys: tuple[str, ...] | None = None

    @property
    def num_demos(self) -> int:
        return len(self._names)

    def add(self, ep: Episode) -> str:
        """Append one episode as ``demo_<i>``; returns its name."""
        T = len(ep)
        if T < 1:
            raise ValueError("cannot write an empty episode")
        keys = tuple(ep.obs)
        if self._obs_keys is None:
            self._obs_keys = keys
        elif keys != self._obs_keys:
            raise ValueError(f"episode obs keys {keys} differ from earlier demos {self._obs_keys}")
        arrays = {"states": ep.states, "actions": ep.actions, "rewards": ep.rewards, "dones": ep.dones}
        for name, arr in arrays.items():
            if arr.shape[0] != T:
                raise ValueError(f"episode {name} has {arr.shape[0]} rows, actions have {T}")
        name = f"demo_{len(self._names)}"
        g = self._data.create_group(name)
        g.attrs["num_samples"] = T
        if self._model_xml is not None:
            g.attrs["model_file"] = self._model_xml
        g.attrs["success"] = bool(ep.success)
        g.attrs["style"] = ep.style
        g.attrs["seed"] = int(ep.seed)
        g.create_dataset("states", data=np.asarray(ep.states, dtype=np.float64))
        g.create_dataset("actions", data=np.asarray(ep.actions, dtype=np.float64))
        g.create_dataset("rewards", data=np.asarray(ep.rewards, dtype=np.float64))
        g.create_dataset("dones", data=np.asarray(ep.dones, dtype=np.int64))
        for group, seq in (("obs", ep.obs), ("next_obs", ep.next_obs)):
            for k, v in seq.items():
                if v.shape[0] != T:
                    raise ValueError(f"episode {group}/{k} has {v.shape[0]} rows, actions have {T}")
                if is_image_key(k):
                    if group == "obs" or self.next_obs_images:
                        self.write_frames(g, f"{group}/{k}", v)
                else:
                    g.create_dataset(f"{group}/{k}", data=np.asarray(v, dtype=np.float64))
        self._names.append(name)
        self._total += T
        return name

    def write_frames(self, group: h5py.Group, name: str, frames: np.ndarray) -> h5py.Dataset:
        """``frames`` (T, H, W, 3) uint8 as ``group/name`` with this writer's compression."""
        return write_frames(group, name, frames, self.compression, self.compression_level)

    def close(self, valid_fraction: float = 0.1, split_seed: int = 0) -> Path:
        """Write totals and the train/valid masks, then move the file into place."""
        if self._file is None:
            return self.path
        if not self._names:
            self.abort()
            raise ValueError("no episodes were added; nothing written")
        self._data.attrs["total"] = self._total
        train, valid = train_valid_split(self._names, valid_fraction, split_seed)
        self._file.create_dataset("mask/train", data=np.array(train, dtype="S"))
        self._file.create_dataset("mask/valid", data=np.array(valid, dtype="S"))
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.path)
        log.info("wrote %d demos (%d samples) to %s", len(self._names), self._total, self.path)
        return self.path

    def abort(self) -> None:
        """Discard the partial file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RobomimicWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
