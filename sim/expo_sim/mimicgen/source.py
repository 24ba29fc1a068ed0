"""Source demonstrations for MimicGen: the scripted expert run until ``n`` demos succeeded, written
as a robomimic HDF5 file (states, actions, ``model_file`` and ``env_args``: what MimicGen's
``prepare_src_dataset`` replays; observations, rewards and dones as every demo file of ours).

Attempt ``i`` of a set seeded ``seed`` draws its placement and noise from ``SeedSequence([seed,
i])`` exactly as :mod:`expo_sim.envs.episodes` does; failed attempts are skipped (and counted),
since MimicGen needs every source demo to complete each subtask.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expo_sim.envs.episodes import Episode, episode_seeds, record_episode
from expo_sim.envs.robosuite_env import RobomimicEnv
from expo_sim.envs.scripted import DemoStyle, sample_style
from expo_sim.mimicgen.experts import make_source_expert

log = logging.getLogger(__name__)


def record_source_episode(
    env: RobomimicEnv, style: DemoStyle, env_seed: int, rng: np.random.Generator
) -> Episode:
    """One scripted demonstration of a MimicGen task: :func:`expo_sim.envs.episodes.record_episode`
    with the expert from :mod:`expo_sim.mimicgen.experts` instead of the built-in table."""
    return record_episode(env, style, env_seed, rng, make=make_source_expert)


@dataclass(frozen=True)
class SourceSummary:
    """What :func:`write_source_demos` wrote: successful demos, attempts, mean length, wall time."""

    out: Path
    demos: int
    attempts: int
    mean_length: float
    wall_s: float

    def line(self) -> str:
        return (
            f"source demos: {self.demos} successful in {self.attempts} attempts, mean length "
            f"{self.mean_length:.0f} steps, {self.wall_s:.0f} s -> {self.out}"
        )


def write_source_demos(
    task: str,
    n: int,
    seed: int,
    out: Path,
    *,
    horizon: int = 400,
    max_attempts: int | None = None,
    progress: bool = True,
) -> SourceSummary:
    """Record ``n`` successful proficient demos of ``task`` into ``out`` (overwritten).

    Raises RuntimeError when ``max_attempts`` (default ``3 * n``) attempts give fewer than ``n``."""
    from tqdm import tqdm

    from expo_sim.envs.robomimic_writer import RobomimicWriter
    from expo_sim.envs.robosuite_env import make_env
    from expo_sim.mimicgen.available import register_envs

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    register_envs(f"task '{task}'")
    max_attempts = 3 * n if max_attempts is None else max_attempts
    t0 = time.perf_counter()
    env = make_env(task, horizon=horizon)
    lengths: list[int] = []
    attempts = 0
    generator = {
        "task": task,
        "quality": "proficient",
        "seed": seed,
        "source_demos": n,
        "kind": "mimicgen-source",
    }
    try:
        with RobomimicWriter(
            out,
            env.env_args,
            model_xml=env.model_xml(),
            extra_attrs={"expo_generator": json.dumps(generator)},
            overwrite=True,
        ) as writer:
            bar = tqdm(total=n, unit="demo", desc=f"{task} source demos", disable=not progress)
            while len(lengths) < n and attempts < max_attempts:
                env_seed, rng = episode_seeds(seed, attempts)
                attempts += 1
                ep = record_source_episode(env, sample_style("proficient", rng), env_seed, rng)
                log.debug("source attempt %d: success=%s length=%d", attempts, ep.success, len(ep))
                if ep.success:
                    writer.add(ep)
                    lengths.append(len(ep))
                    bar.update(1)
                bar.set_postfix(attempts=attempts)
            bar.close()
            if len(lengths) < n:
                raise RuntimeError(
                    f"the {task} expert succeeded {len(lengths)} times in {attempts} attempts; "
                    f"{n} source demos needed"
                )
            writer.close(valid_fraction=0.0, split_seed=seed)
    finally:
        env.close()
    return SourceSummary(out, len(lengths), attempts, float(np.mean(lengths)), time.perf_counter() - t0)
