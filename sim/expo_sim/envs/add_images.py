"""Add camera frames (and base-frame proprioception) to an existing robomimic low-dim file.

``expo-sim add-images IN.hdf5 OUT.hdf5 --cameras agentview,robot0_eye_in_hand`` copies IN and,
per demo, turns every stored ``states`` row back into observations in a camera env built from
the file's own ``env_args`` and ``model_file`` (:meth:`RobomimicEnv.observe_state`: set the
MuJoCo state, recompute positions, render), as robomimic's ``dataset_states_to_obs`` does. It
adds what the demo lacks of:

    obs/<camera>_image, next_obs/<camera>_image     (T, H, W, 3) uint8, upright
    obs|next_obs/robot0_base_to_eef_pos (T, 3), robot0_base_to_eef_quat (T, 4),
    robot0_joint_pos (T, 7) float64, and any other key a demo of this stack records

Keys already there are kept as they are. ``next_obs`` at step t is the observation of
``states[t + 1]``; for the last step, the state after the last action, from the replay below.

The check that the states replay: in a second env without cameras (cheap), each demo is
replayed open loop from ``states[0]`` with its ``actions``, and the joint positions and object
poses (``qpos``) reached are compared with the stored ``states``. A demo whose replay leaves
them by more than ``state_tol`` is reported (a different MuJoCo/robosuite build, or a file
whose states and actions do not belong together); ``strict`` makes that an error. Its last
next observation then comes from one step from its last stored state instead.

Frames rendered from a stored state show the arm where that state has it; frames rendered
during a live step (``expo-sim demos --cameras``) show it one 2 ms physics sub-step earlier
(see :mod:`expo_sim.envs.robosuite_env`). The two agree to a mean absolute difference of about
1-2 intensity levels per pixel (frames one control step apart differ by ~4.5); the low-dim keys
copied from IN are untouched, and ``robot0_joint_pos`` is identical either way.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from expo_sim.envs.robomimic_writer import COMPRESSIONS, is_image_key, write_frames
from expo_sim.envs.robosuite_env import RobomimicEnv, make_env_from_hdf5, read_env_args

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddImagesSummary:
    """What the converter wrote: demos, samples, frames, the replay check and the cost."""

    src: Path
    out: Path
    demos: int
    samples: int
    cameras: tuple[str, ...]
    camera_size: int
    added_keys: tuple[str, ...]
    max_state_error: float  # max |qpos replayed - qpos stored| over all demos
    diverged: tuple[str, ...]  # demos whose replay left the stored states by more than state_tol
    wall_s: float
    file_bytes: int

    def line(self) -> str:
        check = (
            f"states replay: {self.demos - len(self.diverged)}/{self.demos} demos within tolerance "
            f"(max error {self.max_state_error:.2e})"
        )
        return (
            f"{self.src} -> {self.out}: {self.demos} demos, {self.samples} samples, cameras "
            f"{','.join(self.cameras)} at {self.camera_size}x{self.camera_size}; {check}; "
            f"{self.file_bytes / 1e6:.1f} MB in {self.wall_s:.1f} s"
        )


def _demo_names(data: h5py.Group) -> list[str]:
    names = [n for n in data if n.startswith("demo_") and n[5:].isdigit()]
    return sorted(names, key=lambda n: int(n[5:]))


def _check_demos(src: Path, cameras: tuple[str, ...]) -> None:
    """Fail before building any env: every demo has states and actions of one length, no frames yet."""
    with h5py.File(src, "r") as f:
        data = f["data"]
        names = _demo_names(data)
        if not names:
            raise ValueError(f"{src}: no demo_<i> groups under 'data'")
        for name in names:
            demo, where = data[name], f"{src}: data/{name}"
            for key in ("states", "actions"):
                if key not in demo:
                    raise ValueError(f"{where}: no '{key}' to replay; demo keys are {sorted(demo)}")
            n_states, n_actions = demo["states"].shape[0], demo["actions"].shape[0]
            if n_states != n_actions or n_actions == 0:
                raise ValueError(f"{where}: {n_states} states for {n_actions} actions")
            have = set(demo["obs"]) if "obs" in demo else set()
            clash = sorted(have & {f"{c}_image" for c in cameras})
            if clash:
                raise ValueError(f"{where}: already holds {clash}; nothing to add")


def _replay(env: RobomimicEnv, states: np.ndarray, actions: np.ndarray, model_xml: str | None):
    """Open-loop replay from ``states[0]``: (max qpos error against ``states[1:]``, final state)."""
    env.reset_to(states[0], model_xml=model_xml)
    sim, rs = env.robosuite_env.sim, env.robosuite_env
    nq = sim.model.nq
    err = 0.0
    for t, action in enumerate(actions):
        rs.step(env.check_action(action))  # robosuite's own step: no episode end or horizon here
        if t + 1 < len(states):
            err = max(err, float(np.abs(env.get_state()[1 : 1 + nq] - states[t + 1][1 : 1 + nq]).max()))
    return err, env.get_state()


def _last_step(env: RobomimicEnv, state: np.ndarray, action: np.ndarray, model_xml: str | None):
    """The state one action after ``state`` (when the whole replay diverged)."""
    env.reset_to(state, model_xml=model_xml)
    env.robosuite_env.step(env.check_action(action))
    return env.get_state()


def _observe(env: RobomimicEnv, states: np.ndarray, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``keys`` of the observations of each state, stacked: frames uint8, the rest float64."""
    seq: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for state in states:
        obs = env.observe_state(state)
        for k in keys:
            seq[k].append(np.array(obs[k], dtype=np.uint8 if is_image_key(k) else np.float64))
    return {k: np.stack(v) for k, v in seq.items()}


def add_images(
    src: str | Path,
    out: str | Path,
    cameras: tuple[str, ...] = ("agentview", "robot0_eye_in_hand"),
    camera_size: int = 84,
    *,
    compression: str | None = None,
    next_obs_images: bool = True,
    state_tol: float = 1e-3,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> AddImagesSummary:
    """Write ``out``: ``src`` plus frames of ``cameras`` and the base-frame proprioception.

    Raises FileNotFoundError (no ``src``), FileExistsError (``out`` exists, no ``overwrite``),
    ValueError (unknown camera, a demo without ``states`` or already holding a camera key, and
    with ``strict`` a demo whose states do not replay). ``out`` appears only when complete.
    """
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (use --overwrite)")
    if out.resolve() == src.resolve():
        raise ValueError("add-images writes a new file; OUT must differ from IN")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
    if not cameras:
        raise ValueError("add-images needs at least one camera")
    t0 = time.perf_counter()
    env_args = read_env_args(src)
    _check_demos(src, cameras)
    cam_env = make_env_from_hdf5(src, cameras=tuple(cameras), camera_size=camera_size)
    check_env = make_env_from_hdf5(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    added: dict[str, None] = {}
    diverged, max_err, samples = [], 0.0, 0
    try:
        with h5py.File(src, "r") as fi, h5py.File(tmp, "w") as fo:
            for name in fi:
                fi.copy(fi[name], fo, name=name)
            for k, v in fi.attrs.items():
                fo.attrs[k] = v
            data = fo["data"]
            env_args = dict(env_args, env_kwargs=cam_env.env_args["env_kwargs"])
            data.attrs["env_args"] = json.dumps(env_args, indent=4)
            how = {"src": str(src), "cameras": list(cameras), "camera_size": camera_size}
            how["state_tol"] = state_tol
            data.attrs["expo_add_images"] = json.dumps(how)
            names = _demo_names(data)
            total = sum(int(data[n]["actions"].shape[0]) for n in names if "actions" in data[n])
            bar = tqdm(total=total, unit="step", desc="add-images", disable=not progress)
            for name in names:
                demo = data[name]
                where = f"{src}: data/{name}"
                states, actions = demo["states"][()], demo["actions"][()]
                T = int(actions.shape[0])
                have = set(demo["obs"]) if "obs" in demo else set()
                keys = tuple(k for k in cam_env.record_keys if k not in have)
                model_xml = demo.attrs.get("model_file")
                if model_xml is None:
                    log.warning("%s: no model_file attribute; rendering the default model", where)
                err, final = _replay(check_env, states, actions, model_xml)
                max_err = max(max_err, err)
                if err > state_tol:
                    diverged.append(name)
                    msg = f"{where}: replayed states leave the stored ones by {err:.3g} > {state_tol}"
                    if strict:
                        raise ValueError(msg)
                    log.warning("%s", msg)
                    final = _last_step(check_env, states[-1], actions[-1], model_xml)
                if model_xml is not None:
                    cam_env.load_model(model_xml)
                seq = _observe(cam_env, np.concatenate([states, final[None]]), keys)
                for k, v in seq.items():
                    groups = ("obs", "next_obs") if "next_obs" in demo else ("obs",)
                    for group, part in zip(groups, (v[:T], v[1:]), strict=False):
                        if is_image_key(k):
                            if group == "obs" or next_obs_images:
                                write_frames(demo, f"{group}/{k}", part, compression)
                        else:
                            demo.create_dataset(f"{group}/{k}", data=part)
                    added[k] = None
                samples += T
                bar.update(T)
            bar.close()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        cam_env.close()
        check_env.close()
    return AddImagesSummary(
        src=src,
        out=out,
        demos=len(names),
        samples=samples,
        cameras=tuple(cameras),
        camera_size=camera_size,
        added_keys=tuple(added),
        max_state_error=max_err,
        diverged=tuple(diverged),
        wall_s=time.perf_counter() - t0,
        file_bytes=out.stat().st_size,
    )
