"""Writing a whole demonstration set: the scripted expert run ``episodes`` times into one
robomimic HDF5 file. What ``expo-sim demos`` and ``make sim`` (when no dataset exists yet) call.

With ``cameras`` the env renders them every step and the file is an image dataset in robomimic's
layout (``obs/<camera>_image`` (T, H, W, 3) uint8 next to the low-dim keys); the physics, and so
the demonstrations, are the same as without cameras for the same seed.
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
    cameras: tuple[str, ...] = ()
    file_bytes: int = 0

    def line(self) -> str:
        cams = f", cameras {','.join(self.cameras)}" if self.cameras else ""
        return (
            f"{self.task} {self.quality}: {self.successes}/{self.demos} successful "
            f"({100.0 * self.successes / self.demos:.0f}%), mean length {self.mean_length:.1f} steps "
            f"(successful demos {self.mean_success_length:.1f}), {self.samples} samples{cams} -> {self.out} "
            f"({self.file_bytes / 1e6:.1f} MB) in {self.wall_s:.1f} s ({self.wall_s / self.demos:.1f} s/demo)"
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
    cameras: tuple[str, ...] = (),
    camera_size: int = 84,
    compression: str | None = None,
    next_obs_images: bool = True,
    action_delay_ms: float = 0.0,
    action_jitter_ms: float = 0.0,
) -> DemoSetSummary:
    """Generate ``episodes`` scripted demos of ``task`` at ``quality`` into ``out``.

    Episode ``i`` is reproducible on its own from ``(seed, i)``. ``valid_fraction`` of the demos
    go to ``mask/valid`` (the rest to ``mask/train``). ``cameras`` (e.g. ``("agentview",
    "robot0_eye_in_hand")``) adds their ``camera_size`` frames; ``compression`` and
    ``next_obs_images`` are :class:`RobomimicWriter`'s. ``action_delay_ms`` +- ``action_jitter_ms``:
    each action takes effect that late in its period (:mod:`expo_sim.envs.action_delay`; latency
    randomization, recorded in ``expo_generator``). Raises FileExistsError when ``out``
    exists and ``overwrite`` is false, ValueError for an unknown task, quality or camera.
    """
    from tqdm import tqdm

    from expo_sim.envs.action_delay import check_delay, with_action_delay
    from expo_sim.envs.episodes import generate_demos
    from expo_sim.envs.robomimic_writer import RobomimicWriter
    from expo_sim.envs.robosuite_env import make_env

    action_delay_ms, action_jitter_ms = check_delay(action_delay_ms, action_jitter_ms)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (use --overwrite)")
    t0 = time.perf_counter()
    env = make_env(task, horizon=horizon, cameras=tuple(cameras), camera_size=camera_size)
    env = with_action_delay(env, action_delay_ms, action_jitter_ms, seed)
    generator = {"task": task, "quality": quality, "seed": seed, "episodes": episodes}
    if cameras:
        generator.update(cameras=list(cameras), camera_size=camera_size)
    if action_delay_ms:
        generator.update(action_delay_ms=action_delay_ms, action_jitter_ms=action_jitter_ms)
    lengths, success_lengths = [], []
    try:
        with RobomimicWriter(
            out,
            env.env_args,
            model_xml=env.model_xml() if model_file else None,
            extra_attrs={"expo_generator": json.dumps(generator)},
            overwrite=overwrite,
            compression=compression,
            next_obs_images=next_obs_images,
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
        cameras=tuple(cameras),
        file_bytes=out.stat().st_size,
    )
