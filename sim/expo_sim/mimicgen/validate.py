"""Validation of MimicGen's generated demos: replay each from its stored states, recompute what
EXPO's datasets hold, keep the demos whose success holds.

MimicGen counts a trial as successful if the task succeeded at any step, and stores per demo
the MuJoCo state before each action (``states``) and the actions, without rewards, dones or
next observations. For every generated demo this pass

1. sets each stored state in our environment (:meth:`RobomimicEnv.observe_state`) and records
   its observation (every key our demos record: world- and base-frame proprioception, joint
   positions, ``object``, and frames when the env has cameras) and whether the task is solved
   there (and compares the ``object`` observation with the one MimicGen recorded);
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
    #: largest |recorded - recomputed| of the ``object`` observation over kept demos (MimicGen
    #: records observations from robosuite's step, one 2 ms physics sub-step before the stored
    #: state, so a few millimetres are expected; a large value means the states do not match)
    object_obs_max_diff: float = 0.0
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


def validate_demo(env: RobomimicEnv, states: np.ndarray, actions: np.ndarray) -> tuple[Episode | None, bool]:
    """Replay one generated demo from its ``states`` (T, S) and ``actions`` (T, 7).

    Returns the demo as an :class:`Episode` cut at its first success (None if the task is never
    solved) and whether the success was found only by replaying the last action."""
    keys = env.record_keys
    T = int(actions.shape[0])
    if states.shape[0] != T or T < 1:
        raise ValueError(f"generated demo has {states.shape[0]} states for {T} actions")
    actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    observed: list[dict[str, np.ndarray]] = []
    first_success = None
    for t in range(T):
        observed.append({k: v for k, v in env.observe_state(states[t]).items() if k in keys})
        if t > 0 and bool(env.robosuite_env._check_success()):
            first_success = t
            break
    after_last = False
    if first_success is None:
        env.reset_to(states[T - 1])
        _, _, terminated, _, info = env.step(actions[T - 1])
        if not terminated:
            return None, False
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
    return episode, after_last


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
            episode, after_last = validate_demo(env, np.asarray(g["states"][()]), actions)
            if episode is None:
                report.no_success.append(name)
                log.info("%s: dropped, the task is not solved in its states", name)
            else:
                if "obs" in g and "object" in g["obs"]:
                    recorded = np.asarray(g["obs"]["object"][: len(episode)], dtype=np.float64)
                    diff = float(np.max(np.abs(recorded - episode.obs["object"])))
                    report.object_obs_max_diff = max(report.object_obs_max_diff, diff)
                writer.add(episode)
                report.kept += 1
                report.kept_lengths.append(len(episode))
                report.kept_names.append(name)
                report.success_after_last_action += int(after_last)
            bar.set_postfix(kept=f"{report.kept}/{report.generated}")
    return report
