"""Reader for robomimic HDF5 demonstration files (the layout robomimic's SequenceDataset reads).

Layout::

    data.attrs["env_args"]          JSON: env_name, env_version, type, env_kwargs
    data/demo_i.attrs["num_samples"] T
    data/demo_i/obs/<key>           (T, d) low-dim observation components
    data/demo_i/next_obs/<key>      (T, d) optional; else derived by shifting obs
    data/demo_i/obs/<camera>_image  (T, H, W, 3) uint8 camera frames (image datasets)
    data/demo_i/next_obs/<camera>_image  optional; only its last frame is read
    data/demo_i/actions             (T, A) normalized to [-1, 1]
    data/demo_i/rewards, dones      (T,)   optional (see load_robomimic_hdf5)
    data/demo_i/states              (T, S) simulator states for replay (not read here)
    mask/<filter_key>               demo names as byte strings (e.g. "train", "valid")

Observations are flattened through :meth:`ObsSpec.flatten`, so the key order comes from the spec
(config), never from the file.

Image datasets (:func:`load_robomimic_images`, for a spec with ``rgb`` keys) keep every frame
**once**, as uint8: per camera one array ``(F, H, W, 3)`` holding each demo's T frames of
``obs/<camera>_image`` followed by its final next frame (the last row of
``next_obs/<camera>_image`` when stored; the T rows of next_obs are otherwise never read, they
duplicate obs shifted by one). A transition names its frames by index, ``obs_frame`` and
``next_obs_frame`` (``next_obs_frame = obs_frame + 1``), never by a second copy.

Memory per transition (two 84x84 cameras, the pixel spec's 16-D proprioception, float32):
frames 2 * 84 * 84 * 3 = 42,336 B (times (T+1)/T for the final frames, +2 % for 50-step
demos), low-dim obs and next_obs 2 * 16 * 4 = 128 B, action 28 B, reward/terminated/truncated
12 B, episode 8 B, the two frame indices 16 B: about 42.5 KB. 100k transitions: ~4.3 GB, under
the 5 GB budget, but not by much: the frames are 99.5 % of it. A second copy of the frames for
next_obs would need ~8.5 GB; a third camera or 96x96 frames would not fit 5 GB.
:attr:`ImageTransitionArrays.bytes_per_transition` reports the measured figure.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field

import h5py
import numpy as np

from expo_core.replay import action_chunks
from expo_core.spec import ObsSpec, RgbKey

log = logging.getLogger(__name__)

_DEMO_RE = re.compile(r"^demo_(\d+)$")


@dataclass(frozen=True, eq=False)
class TransitionArrays:
    """All transitions of the loaded demos, concatenated in demo order.

    obs, next_obs: (N, obs_dim) float32; action: (N, A) float32 in [-1, 1]; reward, terminated,
    truncated: (N,) float32; episode: (N,) int64, position of the demo in ``demo_names``.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    num_episodes: int
    env_meta: dict = field(default_factory=dict)
    demo_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.obs.shape[0]

    def transitions(self, chunk_len: int = 1) -> dict[str, np.ndarray]:
        """The six replay fields, ready for ``ReplayBuffer.from_arrays`` / ``add_many``; with
        ``chunk_len`` > 1 also every row's action chunk and slot mask within its demo
        (``replay.action_chunks``: the demos are the episodes)."""
        chunks = action_chunks(self.action, self.episode, chunk_len) if chunk_len > 1 else {}
        return {
            "obs": self.obs,
            "action": self.action,
            "reward": self.reward,
            "next_obs": self.next_obs,
            "terminated": self.terminated,
            "truncated": self.truncated,
        } | chunks


def _data_group(f: h5py.File, path: str | os.PathLike) -> h5py.Group:
    if "data" not in f:
        raise KeyError(f"{path}: no 'data' group; top-level keys are {sorted(f.keys())}")
    return f["data"]


def _parse_env_args(data: h5py.Group, path: str | os.PathLike) -> dict:
    if "env_args" not in data.attrs:
        raise KeyError(f"{path}: data.attrs has no 'env_args'; attrs present: {sorted(data.attrs)}")
    raw = data.attrs["env_args"]
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: data.attrs['env_args'] is not valid JSON: {e}") from e


def read_env_meta(path: str | os.PathLike) -> dict:
    """The parsed ``data.attrs["env_args"]`` JSON (env_name, env_version, type, env_kwargs)."""
    with h5py.File(path, "r") as f:
        return _parse_env_args(_data_group(f, path), path)


def _demo_names(f: h5py.File, data: h5py.Group, path, filter_key: str | None) -> list[str]:
    """Demo group names sorted by integer index (demo_2 before demo_10), optionally masked."""
    names = []
    for name in data.keys():
        if _DEMO_RE.match(name) and isinstance(data[name], h5py.Group):
            names.append(name)
        else:
            log.warning("%s: ignoring 'data/%s' (not a demo_<int> group)", path, name)
    if filter_key is not None:
        masks = sorted(f["mask"].keys()) if "mask" in f else []
        if filter_key not in masks:
            raise KeyError(f"{path}: unknown filter_key '{filter_key}'; available masks: {masks}")
        wanted = [n.decode() if isinstance(n, bytes) else str(n) for n in f["mask"][filter_key][()]]
        absent = sorted(set(wanted) - set(names))
        if absent:
            raise KeyError(f"{path}: mask '{filter_key}' names demos not under 'data': {absent}")
        names = list(dict.fromkeys(wanted))
    return sorted(names, key=lambda n: int(_DEMO_RE.match(n).group(1)))


def _read_obs(demo: h5py.Group, group: str, spec: ObsSpec, where: str, length: int) -> np.ndarray:
    """``demo/<group>/<key>`` for every spec key, flattened to (T, obs_dim) float32."""
    if group not in demo:
        raise KeyError(f"{where}: no '{group}' group; demo keys are {sorted(demo.keys())}")
    grp = demo[group]
    parts = {}
    for key in spec.names:
        if key not in grp:
            raise KeyError(
                f"{where}: missing observation key '{group}/{key}'; available keys: {sorted(grp.keys())}"
            )
        arr = np.asarray(grp[key][()], dtype=np.float32)
        arr = arr[:, None] if arr.ndim == 1 else arr
        if arr.shape[0] != length:
            raise ValueError(f"{where}: '{group}/{key}' has {arr.shape[0]} steps but 'actions' has {length}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: '{group}/{key}' has non-finite values")
        parts[key] = arr
    try:
        return spec.flatten(parts)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e


def _read_vector(demo: h5py.Group, key: str, where: str, length: int) -> np.ndarray | None:
    """``demo/<key>`` as a (T,) float32 vector, or None if absent."""
    if key not in demo:
        return None
    arr = np.asarray(demo[key][()], dtype=np.float32).reshape(-1)
    if arr.shape[0] != length:
        raise ValueError(f"{where}: '{key}' has {arr.shape[0]} steps but 'actions' has {length}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: '{key}' has non-finite values")
    return arr


def _read_actions(demo: h5py.Group, where: str, action_tol: float) -> np.ndarray:
    if "actions" not in demo:
        raise KeyError(f"{where}: missing 'actions'; demo keys are {sorted(demo.keys())}")
    act = np.asarray(demo["actions"][()], dtype=np.float32)
    if act.ndim != 2:
        raise ValueError(f"{where}: 'actions' has shape {act.shape}, expected (T, A)")
    if not np.all(np.isfinite(act)):
        raise ValueError(f"{where}: 'actions' has non-finite values")
    peak = float(np.abs(act).max(initial=0.0))
    if peak > 1.0 + action_tol:
        raise ValueError(
            f"{where}: 'actions' reach |a| = {peak:.4g}, beyond [-1, 1] by more than {action_tol}; "
            "are they normalized (OSC_POSE delta actions)?"
        )
    if peak > 1.0:
        log.warning("%s: 'actions' reach |a| = %.4g; clipping to [-1, 1]", where, peak)
        act = np.clip(act, -1.0, 1.0)
    return act


def _read_demo(
    demo: h5py.Group, where: str, spec: ObsSpec, reward_from_dones: bool, action_tol: float
) -> dict[str, np.ndarray]:
    """One demo's transitions: obs, next_obs (T, obs_dim); action (T, A); the rest (T,)."""
    act = _read_actions(demo, where, action_tol)
    T = act.shape[0]
    if "num_samples" in demo.attrs and int(demo.attrs["num_samples"]) != T:
        log.warning("%s: num_samples=%s but 'actions' has %d steps", where, demo.attrs["num_samples"], T)
    obs = _read_obs(demo, "obs", spec, where, T)
    if "next_obs" in demo:
        next_obs = _read_obs(demo, "next_obs", spec, where, T)
    else:  # s'_t = s_{t+1}; the last step has no successor, so it repeats its own obs
        next_obs = np.concatenate([obs[1:], obs[-1:]], axis=0)
    dones = _read_vector(demo, "dones", where, T)
    reward = _read_vector(demo, "rewards", where, T)
    if reward is None:
        if not reward_from_dones:
            raise KeyError(
                f"{where}: missing 'rewards'; demo keys are {sorted(demo.keys())} "
                "(pass reward_from_dones=True to use 'dones' as the reward)"
            )
        if dones is None:
            raise KeyError(
                f"{where}: reward_from_dones=True but 'dones' is missing too; "
                f"demo keys are {sorted(demo.keys())}"
            )
        reward = dones.copy()
    if dones is not None:
        terminated = (dones != 0).astype(np.float32)
    else:
        terminated = np.zeros(T, dtype=np.float32)
        terminated[-1] = float(reward[-1] > 0)
    truncated = np.zeros(T, dtype=np.float32)
    truncated[-1] = 1.0 - terminated[-1]
    return dict(
        obs=obs, action=act, reward=reward, next_obs=next_obs, terminated=terminated, truncated=truncated
    )


def load_robomimic_hdf5(
    path: str | os.PathLike,
    spec: ObsSpec,
    filter_key: str | None = None,
    max_demos: int | None = None,
    reward_from_dones: bool = False,
    action_tol: float = 0.05,
) -> TransitionArrays:
    """Load demos (sorted by index, optionally masked by ``filter_key``, first ``max_demos``).

    terminated = ``dones`` (if absent: 1 on the last step only when its reward is > 0); a demo's
    last step that is not terminated gets truncated = 1 (time limit / end of recording), so the
    critic still bootstraps there. ``rewards`` must exist unless ``reward_from_dones`` (then
    reward = dones). Actions beyond [-1, 1] by at most ``action_tol`` are clipped with a warning;
    further out is an error (un-normalized actions). Empty demos are skipped with a warning.
    """
    if max_demos is not None and max_demos < 1:
        raise ValueError(f"max_demos must be >= 1 or None, got {max_demos}")
    with h5py.File(path, "r") as f:
        data = _data_group(f, path)
        if "env_args" in data.attrs:
            env_meta = _parse_env_args(data, path)
        else:
            env_meta = {}
            log.warning("%s: data.attrs has no 'env_args'; env_meta is empty", path)
        demos, names = [], []
        for name in _demo_names(f, data, path, filter_key)[:max_demos]:
            demo, where = data[name], f"{path}: data/{name}"
            if "actions" in demo and demo["actions"].shape[:1] == (0,):
                log.warning("%s: empty demo skipped", where)
                continue
            demos.append(_read_demo(demo, where, spec, reward_from_dones, action_tol))
            names.append(name)
    if not demos:
        raise ValueError(f"{path}: no demos to load (filter_key={filter_key!r}, max_demos={max_demos})")
    act_dims = sorted({d["action"].shape[1] for d in demos})
    if len(act_dims) > 1:
        raise ValueError(f"{path}: demos disagree on the action dim: {act_dims}")
    out = {key: np.concatenate([d[key] for d in demos], axis=0) for key in demos[0]}
    episode = np.concatenate([np.full(len(d["action"]), i, dtype=np.int64) for i, d in enumerate(demos)])
    log.info("%s: loaded %d demos, %d transitions", path, len(demos), len(episode))
    return TransitionArrays(
        **out, episode=episode, num_episodes=len(demos), env_meta=env_meta, demo_names=tuple(names)
    )


@dataclass(frozen=True, eq=False)
class ImageTransitionArrays:
    """Transitions of an image dataset with every camera frame stored once.

    Attributes:
        low_dim: the low-dim part (``obs``/``next_obs`` (N, spec.dim) float32 through the spec's
            low-dim keys, actions, rewards, flags, episode, env_meta, demo names).
        frames: rgb key (``<camera>_image``) -> (F, H, W, 3) uint8, upright, each frame once:
            per demo its T obs frames, then its final next frame (F = N + number of demos).
        obs_frame, next_obs_frame: (N,) int64 rows of ``frames`` of each transition's obs and
            next obs (``next_obs_frame == obs_frame + 1``).
        final_frames_stored: how many demos stored their final next frame
            (``next_obs/<camera>_image``); in the others the last transition's next frame is its
            own obs frame repeated (as the low-dim reader repeats the last obs), which only
            matters where that step is not terminal.
    """

    low_dim: TransitionArrays
    frames: dict[str, np.ndarray]
    obs_frame: np.ndarray
    next_obs_frame: np.ndarray
    final_frames_stored: int = 0

    def __len__(self) -> int:
        return len(self.low_dim)

    def obs_images(self, rows: np.ndarray | slice) -> dict[str, np.ndarray]:
        """Frames of the obs of transitions ``rows``: key -> (len(rows), H, W, 3) uint8 (a gather)."""
        idx = self.obs_frame[rows]
        return {k: v[idx] for k, v in self.frames.items()}

    def next_obs_images(self, rows: np.ndarray | slice) -> dict[str, np.ndarray]:
        """Frames of the next obs of transitions ``rows`` (a gather, as :meth:`obs_images`)."""
        idx = self.next_obs_frame[rows]
        return {k: v[idx] for k, v in self.frames.items()}

    @property
    def nbytes(self) -> dict[str, int]:
        """Bytes held, by part: ``frames``, ``low_dim`` (obs, next_obs, actions, rewards, flags,
        episode) and ``index`` (the two frame index arrays)."""
        ld = self.low_dim
        low = sum(a.nbytes for a in ld.transitions().values()) + ld.episode.nbytes
        return {
            "frames": sum(v.nbytes for v in self.frames.values()),
            "low_dim": low,
            "index": self.obs_frame.nbytes + self.next_obs_frame.nbytes,
        }

    @property
    def bytes_per_transition(self) -> float:
        """All bytes held divided by the number of transitions."""
        return sum(self.nbytes.values()) / max(len(self), 1)

    def memory_line(self) -> str:
        """One line: transitions, frames, bytes per transition, and that figure at 100k transitions."""
        per = self.bytes_per_transition
        frames = next(iter(self.frames.values())).shape[0] if self.frames else 0
        per_frames = self.nbytes["frames"] / max(len(self), 1)
        return (
            f"{len(self)} transitions, {frames} frames x {len(self.frames)} cameras: "
            f"{per / 1e3:.1f} KB per transition ({per_frames / 1e3:.1f} KB frames), "
            f"{per * 100_000 / 1e9:.2f} GB per 100k transitions"
        )


def _frame_shape(demo: h5py.Group, key: RgbKey, where: str, length: int) -> None:
    if "obs" not in demo or key.name not in demo["obs"]:
        have = sorted(demo["obs"]) if "obs" in demo else []
        raise KeyError(
            f"{where}: missing camera key 'obs/{key.name}'; available keys: {have} "
            "(add frames to a low-dim file with `expo-sim add-images`)"
        )
    ds = demo["obs"][key.name]
    if ds.dtype != np.uint8:
        raise ValueError(f"{where}: 'obs/{key.name}' has dtype {ds.dtype}, expected uint8 frames")
    if ds.shape != (length, *key.shape):
        raise ValueError(f"{where}: 'obs/{key.name}' has shape {ds.shape}, expected {(length, *key.shape)}")


def load_robomimic_images(
    path: str | os.PathLike,
    spec: ObsSpec,
    filter_key: str | None = None,
    max_demos: int | None = None,
    reward_from_dones: bool = False,
    action_tol: float = 0.05,
) -> ImageTransitionArrays:
    """Load an image dataset: the low-dim transitions (as :func:`load_robomimic_hdf5`, same
    demo selection and flags) plus every frame of ``spec.rgb`` once (see
    :class:`ImageTransitionArrays`). Frames are read straight into one preallocated uint8 array
    per camera (no float copy, no per-demo temporaries beyond one frame).

    Raises ValueError for a spec without rgb keys, frames that are not uint8 or not of the
    spec's (H, W, 3); KeyError (naming the demo and the keys it has) for a missing camera.
    """
    if not spec.rgb:
        raise ValueError(f"spec has no rgb keys ({spec.names}); use load_robomimic_hdf5 for low-dim data")
    low = load_robomimic_hdf5(path, spec, filter_key, max_demos, reward_from_dones, action_tol)
    counts = np.bincount(low.episode, minlength=low.num_episodes)
    total_frames = int(counts.sum()) + low.num_episodes
    frames = {k.name: np.empty((total_frames, *k.shape), dtype=np.uint8) for k in spec.rgb}
    obs_frame = np.empty(len(low), dtype=np.int64)
    final_stored = 0
    with h5py.File(path, "r") as f:
        data = _data_group(f, path)
        start, row = 0, 0
        for name, T in zip(low.demo_names, counts.tolist(), strict=True):
            demo, where = data[name], f"{path}: data/{name}"
            has_final = "next_obs" in demo and all(k.name in demo["next_obs"] for k in spec.rgb)
            for key in spec.rgb:
                _frame_shape(demo, key, where, T)
                demo["obs"][key.name].read_direct(frames[key.name], dest_sel=np.s_[start : start + T])
                if has_final:
                    nxt = demo["next_obs"][key.name]
                    if nxt.dtype != np.uint8 or nxt.shape != (T, *key.shape):
                        raise ValueError(
                            f"{where}: 'next_obs/{key.name}' has {nxt.shape} {nxt.dtype}, "
                            f"expected {(T, *key.shape)} uint8"
                        )
                    frames[key.name][start + T] = nxt[T - 1]
                else:
                    frames[key.name][start + T] = frames[key.name][start + T - 1]
            final_stored += int(has_final)
            obs_frame[row : row + T] = np.arange(start, start + T)
            start, row = start + T + 1, row + T
    if final_stored < low.num_episodes:
        log.info(
            "%s: %d of %d demos store no next_obs frames; their last next frame repeats the last obs frame",
            path,
            low.num_episodes - final_stored,
            low.num_episodes,
        )
    out = ImageTransitionArrays(
        low_dim=low,
        frames=frames,
        obs_frame=obs_frame,
        next_obs_frame=obs_frame + 1,
        final_frames_stored=final_stored,
    )
    log.info("%s: %s", path, out.memory_line())
    return out
