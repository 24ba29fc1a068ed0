"""Writing a whole demonstration set: the scripted expert run ``episodes`` times into one
robomimic HDF5 file. What ``expo-sim demos`` and ``make sim`` (when no dataset exists yet) call.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoSetSummary:
    """What was written: demo count, successful demos, sample count, lengths and wall time."""

    task: str
    quality: str
    out: Path
    demos: int
    successes: int
    samples: int
    mean_length: float
    mean_success_length: float  # NaN when no demo succeeded
    wall_s: float

    def line(self) -> str:
        return (
            f"{self.task} {self.quality}: {self.successes}/{self.demos} successful "
            f"({100.0 * self.successes / self.demos:.0f}%), mean length {self.mean_length:.1f} steps "
            f"(successful demos {self.mean_success_length:.1f}), {self.samples} samples -> {self.out} "
            f"in {self.wall_s:.1f} s"
        )


def write_demo_set(
    task: str,
    episodes: int,
    quality: str,
    seed: int,
    out: Path,
    *,
    horizon: int = 400,
    valid_fraction: float = 0.1,
    model_file: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> DemoSetSummary:
    """Generate ``episodes`` scripted demos of ``task`` at ``quality`` into ``out``.

    Episode ``i`` is reproducible on its own from ``(seed, i)``. ``valid_fraction`` of the demos
    go to ``mask/valid`` (the rest to ``mask/train``). Raises FileExistsError when ``out``
    exists and ``overwrite`` is false, ValueError for an unknown task or quality.
    """
    from tqdm import tqdm

    from expo_sim.envs.episodes import generate_demos
    from expo_sim.envs.robomimic_writer import RobomimicWriter
    from expo_sim.envs.robosuite_env import make_env

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (use --overwrite)")
    t0 = time.perf_counter()
    env = make_env(task, horizon=horizon)
    generator = {"task": task, "quality": quality, "seed": seed, "episodes": episodes}
    lengths, success_lengths = [], []
    try:
        with RobomimicWriter(
            out,
            env.env_args,
            model_xml=env.model_xml() if model_file else None,
            extra_attrs={"expo_generator": json.dumps(generator)},
            overwrite=overwrite,
        ) as writer:
            demos = generate_demos(env, episodes, quality, seed)
            bar = tqdm(demos, total=episodes, unit="demo", desc=f"{task} demos", disable=not progress)
            for ep in bar:
                writer.add(ep)
                lengths.append(len(ep))
                if ep.success:
                    success_lengths.append(len(ep))
                bar.set_postfix(success=f"{len(success_lengths)}/{len(lengths)}")
            writer.close(valid_fraction=valid_fraction, split_seed=seed)
    finally:
        env.close()
    return DemoSetSummary(
        task=task,
        quality=quality,
        out=out,
        demos=len(lengths),
        successes=len(success_lengths),
        samples=sum(lengths),
        mean_length=sum(lengths) / len(lengths),
        mean_success_length=sum(success_lengths) / len(success_lengths) if success_lengths else float("nan"),
        wall_s=time.perf_counter() - t0,
    )
