"""Validation of MimicGen's generated demos: replay each from its stored states, recompute what
EXPO's datasets hold, keep the demos whose success holds.

MimicGen counts a trial as successful if the task succeeded at any step, and stores per demo
the MuJoCo state before each action (``states``) and the actions, without rewards, dones or
next observations. For every generated demo this pass

1. sets each stored state in our environment (:meth:`RobomimicEnv.observe_state`) and records
   its observation (every key our demos record: world- and base-frame proprioception, joint
   positions, ``object``, and frames when the env has cameras) and whether the task is solved
   there (and compares robosuite's observation keys with the ones MimicGen recorded,
   :func:`obs_difference`);
2. if no stored state after the first is a success, replays the last action from the last state
   (:meth:`RobomimicEnv.reset_to` + one step) to get the state after it, where MimicGen may have
   seen the success;
3. keeps the demo only if the task is solved at some state: it ends at the first such state
   (EXPO's episodes terminate on success): ``rewards`` 1 and ``dones`` 1 on the last step only,
   ``next_obs`` the observation of the following state. A demo whose recorded success does not
   hold in its states is dropped and counted.

Actions are clipped to [-1, 1] (what robosuite applied; the count of clipped components is
reported). The kept demos go through :class:`~expo_sim.envs.robomimic_writer.RobomimicWriter`,
so the file is the same layout as every other demo file of ours and robomimic's SequenceDataset
reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from expo_sim.envs.episodes import Episode, _recorded
from expo_sim.envs.robosuite_env import RobomimicEnv

log = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    """Counts of the validation pass."""

    generated: int = 0
    kept: int = 0
    no_success: list[str] = field(default_factory=list)
    success_after_last_action: int = 0  # success seen only by replaying the last action
    clipped_action_components: int = 0
    #: largest |recorded - recomputed| observation over kept demos (:func:`obs_difference`).
    #: MimicGen records observations in robosuite's step, one 2 ms physics sub-step before the
    #: stored state, so a few millimetres are expected; a large value means the states do not match
    obs_max_diff: float = 0.0
    kept_lengths: list[int] = field(default_factory=list)
    kept_names: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return self.generated - self.kept


def demo_names(f: h5py.File) -> list[str]:
    """``data/demo_<i>`` names in index order."""
    if "data" not in f:
        return []
    names = [n for n in f["data"] if n.startswith("demo_") and n[5:].isdigit()]
    return sorted(names, key=lambda n: int(n[5:]))


def obs_difference(recorded: dict[str, np.ndarray], observed: list[dict[str, np.ndarray]]) -> float:
    """Largest difference between ``recorded`` low-dim observations (key -> (T, d)) and the
    ``observed`` dicts of the same steps, over the keys both have (robosuite's own keys: poses,
    relative poses, proprioception). Quaternions (keys ending in ``quat``) count q and -q as
    equal: robosuite's ``mat2quat`` picks the sign, which flips near 180 degree rotations. The
    concatenated ``object`` vector is left out: its parts are compared under their own names."""
    worst = 0.0
    n = len(observed)
    for key, rows in recorded.items():
        if key.endswith("_image") or key in ("object", "object-state") or key not in observed[0]:
            continue
        a = np.asarray(rows[:n], dtype=np.float64)
        b = np.stack([np.asarray(o[key], dtype=np.float64) for o in observed])[: len(a)]
        if a.shape != b.shape:
            continue
        d = np.abs(a - b)
        if key.endswith("quat"):
            d = np.minimum(d.max(axis=-1), np.abs(a + b).max(axis=-1))
        worst = max(worst, float(d.max(initial=0.0)))
    return worst


def validate_demo(
    env: RobomimicEnv,
    states: np.ndarray,
    actions: np.ndarray,
    recorded: dict[str, np.ndarray] | None = None,
) -> tuple[Episode | None, bool, float]:
    """Replay one generated demo from its ``states`` (T, S) and ``actions`` (T, 7).

    Returns the demo as an :class:`Episode` cut at its first success (None if the task is never
    solved), whether the success was found only by replaying the last action, and the largest
    difference between the ``recorded`` observations (MimicGen's, key -> (T, d); optional) and
    the recomputed ones (:func:`obs_difference`; 0 without ``recorded``)."""
    keys = env.record_keys
    full: list[dict[str, np.ndarray]] = []
    T = int(actions.shape[0])
    if states.shape[0] != T or T < 1:
        raise ValueError(f"generated demo has {states.shape[0]} states for {T} actions")
    actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    observed: list[dict[str, np.ndarray]] = []
    first_success = None
    for t in range(T):
        full.append(env.observe_state(states[t]))
        observed.append({k: v for k, v in full[-1].items() if k in keys})
        if t > 0 and bool(env.robosuite_env._check_success()):
            first_success = t
            break
    after_last = False
    if first_success is None:
        env.reset_to(states[T - 1])
        _, _, terminated, _, info = env.step(actions[T - 1])
        if not terminated:
            return None, False, 0.0
        observed.append({k: v for k, v in info["obs_dict"].items() if k in keys})
        first_success, after_last = T, True
    n = first_success  # transitions 0..n-1, the last one reaching the first success state
    rewards = np.zeros(n, dtype=np.float64)
    dones = np.zeros(n, dtype=np.int64)
    rewards[-1], dones[-1] = 1.0, 1
    obs = {k: np.stack([_recorded(k, observed[t][k]) for t in range(n)]) for k in keys}
    next_obs = {k: np.stack([_recorded(k, observed[t + 1][k]) for t in range(n)]) for k in keys}
    episode = Episode(
        states=np.asarray(states[:n], dtype=np.float64),
        actions=actions[:n],
        rewards=rewards,
        dones=dones,
        obs=obs,
        next_obs=next_obs,
        success=True,
        style="mimicgen",
        seed=-1,
    )
    diff = obs_difference(recorded, full[:n]) if recorded else 0.0
    return episode, after_last, diff


def validate_generated(
    env: RobomimicEnv, generated: Path, writer, *, progress: bool = True
) -> ValidationReport:
    """Validate every demo of MimicGen's ``generated`` file and add the kept ones to ``writer``
    (a :class:`~expo_sim.envs.robomimic_writer.RobomimicWriter`)."""
    from tqdm import tqdm

    report = ValidationReport()
    if not Path(generated).is_file():  # MimicGen merges nothing when no trial succeeded
        return report
    with h5py.File(generated, "r") as f:
        names = demo_names(f)
        report.generated = len(names)
        bar = tqdm(names, unit="demo", desc=f"{env.task} validation", disable=not progress)
        for name in bar:
            g = f["data"][name]
            actions = np.asarray(g["actions"][()], dtype=np.float64)
            report.clipped_action_components += int(np.sum(np.abs(actions) > 1.0))
            model_xml = g.attrs.get("model_file")
            if model_xml is not None:
                env.load_model(model_xml)
            recorded = {k: g["obs"][k][()] for k in g["obs"] if g["obs"][k].ndim == 2} if "obs" in g else None
            episode, after_last, diff = validate_demo(env, np.asarray(g["states"][()]), actions, recorded)
            if episode is None:
                report.no_success.append(name)
                log.info("%s: dropped, the task is not solved in its states", name)
            else:
                report.obs_max_diff = max(report.obs_max_diff, diff)
                writer.add(episode)
                report.kept += 1
                report.kept_lengths.append(len(episode))
                report.kept_names.append(name)
                report.success_after_last_action += int(after_last)
            bar.set_postfix(kept=f"{report.kept}/{report.generated}")
    return report
