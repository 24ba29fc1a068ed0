"""Demonstrations the MimicGen way, in one call (what ``expo-sim demos --generator mimicgen`` runs):

1. ``source_demos`` successful scripted source demos (:mod:`expo_sim.mimicgen.source`), reused
   from the work folder when a previous run made the same ones;
2. MimicGen's ``prepare_src_dataset`` on them, then ``generate_dataset`` for ``attempts`` trials
   (:mod:`expo_sim.mimicgen.generate`);
3. the validation pass (:mod:`expo_sim.mimicgen.validate`): every generated demo replayed from its
   states, observations, rewards and dones recomputed, only the demos whose success holds written
   to ``out`` (robomimic's layout, ``mask/train`` and ``mask/valid``).

The work folder (``<out without suffix>_mimicgen/`` by default) keeps the source demos, the
MimicGen config, both tools' logs and MimicGen's raw output, for inspection.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import h5py

from expo_sim.mimicgen.available import register_envs, require_mimicgen

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MimicGenSummary:
    """What one generation run produced and what it cost."""

    task: str
    out: Path
    attempts: int  # MimicGen trials
    generated: int  # trials MimicGen counted successful
    kept: int  # demos written (success holds on replay)
    source_demos: int
    source_attempts: int
    samples: int
    mean_length: float
    wall_s: float
    source_s: float
    prepare_s: float
    generate_s: float
    validate_s: float
    work: Path
    file_bytes: int = 0

    def line(self) -> str:
        pct = 100.0 * self.kept / self.attempts if self.attempts else 0.0
        return (
            f"{self.task} mimicgen: kept {self.kept}/{self.attempts} attempted ({pct:.0f}%; MimicGen counted "
            f"{self.generated} successful, {self.generated - self.kept} failed validation), from "
            f"{self.source_demos} source demos ({self.source_attempts} attempts); mean length "
            f"{self.mean_length:.1f} steps, {self.samples} samples -> {self.out} "
            f"({self.file_bytes / 1e6:.1f} MB) in {self.wall_s:.0f} s (source {self.source_s:.0f} s, "
            f"prepare {self.prepare_s:.0f} s, generation {self.generate_s:.0f} s, validation "
            f"{self.validate_s:.0f} s; work folder {self.work})"
        )

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["out"], d["work"] = str(self.out), str(self.work)
        return d


def default_work_dir(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + "_mimicgen")


def _source_matches(src: Path, generator: dict) -> bool:
    """Whether ``src`` holds prepared source demos made with the same settings."""
    if not src.is_file():
        return False
    try:
        with h5py.File(src, "r") as f:
            made = json.loads(f["data"].attrs.get("expo_generator", "{}"))
            prepared = all("datagen_info" in f["data"][n] for n in f["data"] if n.startswith("demo_"))
    except (OSError, KeyError, ValueError):
        return False
    return made == generator and prepared


def generate_mimicgen_demos(
    task: str,
    attempts: int,
    seed: int,
    out: Path,
    *,
    source_demos: int = 10,
    horizon: int = 400,
    valid_fraction: float = 0.1,
    overwrite: bool = False,
    work_dir: Path | None = None,
    cameras: tuple[str, ...] = (),
    camera_size: int = 84,
    compression: str | None = None,
    next_obs_images: bool = True,
    progress: bool = True,
) -> MimicGenSummary:
    """Source demos, MimicGen generation (``attempts`` trials), validation, into ``out``.

    Raises :class:`~expo_sim.mimicgen.available.MimicGenMissing` (one line naming the setup step)
    without robomimic/MimicGen, FileExistsError when ``out`` exists and ``overwrite`` is false,
    ValueError for a task MimicGen generation is not set up for, and
    :class:`~expo_sim.mimicgen.generate.MimicGenFailed` when a MimicGen tool fails (with its log).
    ``cameras`` renders frames into the kept demos (from their states) as ``expo-sim demos
    --cameras`` does."""
    from expo_sim.envs.robomimic_writer import RobomimicWriter
    from expo_sim.envs.robosuite_env import make_env
    from expo_sim.mimicgen import generate as mg
    from expo_sim.mimicgen.source import write_source_demos
    from expo_sim.mimicgen.validate import demo_names, validate_generated

    mg.check_task(task)
    require_mimicgen(f"expo-sim demos --generator mimicgen (task '{task}')")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (use --overwrite)")
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    register_envs(f"task '{task}'")
    t0 = time.perf_counter()
    # absolute: MimicGen's tools run with the work folder as their working directory
    work = (Path(work_dir) if work_dir is not None else default_work_dir(out)).resolve()
    work.mkdir(parents=True, exist_ok=True)

    # 1. source demos (+ 2a. prepared), reused when the same ones exist
    src = work / "source.hdf5"
    generator = {"task": task, "quality": "proficient", "seed": seed, "source_demos": source_demos}
    generator["kind"] = "mimicgen-source"
    source_s = prepare_s = 0.0
    if _source_matches(src, generator):
        with h5py.File(src, "r") as f:
            n_src = len([n for n in f["data"] if n.startswith("demo_")])
            source_attempts = int(f["data"].attrs.get("expo_source_attempts", n_src))
        log.info("reusing the prepared source demos in %s", src)
    else:
        summary = write_source_demos(task, source_demos, seed, src, horizon=horizon, progress=progress)
        log.info(summary.line())
        n_src, source_attempts, source_s = summary.demos, summary.attempts, summary.wall_s
        with h5py.File(src, "a") as f:
            f["data"].attrs["expo_source_attempts"] = source_attempts
        prepare_s = mg.prepare_source(task, src, work)

    # 2b. generation
    result = mg.generate(task, src, work, attempts, seed, progress=progress)

    # 3. validation into out
    t_val = time.perf_counter()
    env = make_env(task, horizon=horizon, cameras=tuple(cameras), camera_size=camera_size)
    model_xml = env.model_xml()
    if result.demo_path.is_file():
        with h5py.File(result.demo_path, "r") as f:
            names = demo_names(f)
            if names and "model_file" in f["data"][names[0]].attrs:
                model_xml = f["data"][names[0]].attrs["model_file"]
    info = {
        "generator": "mimicgen",
        "task": task,
        "seed": seed,
        "attempts": attempts,
        "source_demos": n_src,
        "mimicgen_successes": result.successes,
        "mimicgen_commit": "72bd767c255545f462e7ccfb2731f2e5d4c1d9bb",
    }
    if cameras:
        info.update(cameras=list(cameras), camera_size=camera_size)
    writer = RobomimicWriter(
        out,
        env.env_args,
        model_xml=model_xml,
        extra_attrs={"expo_generator": json.dumps(info)},
        overwrite=overwrite,
        compression=compression,
        next_obs_images=next_obs_images,
    )
    try:
        report = validate_generated(env, result.demo_path, writer, progress=progress)
        if report.kept == 0:
            raise RuntimeError(
                f"no demo kept: MimicGen counted {result.successes}/{result.attempts} trials successful, "
                f"{len(report.no_success)} failed validation (logs in {work})"
            )
        writer.close(valid_fraction=valid_fraction, split_seed=seed)
    except BaseException:
        writer.abort()  # no half-written file under the final name
        raise
    finally:
        env.close()
    validate_s = time.perf_counter() - t_val
    summary = MimicGenSummary(
        task=task,
        out=out,
        attempts=result.attempts,
        generated=report.generated,
        kept=report.kept,
        source_demos=n_src,
        source_attempts=source_attempts,
        samples=sum(report.kept_lengths),
        mean_length=sum(report.kept_lengths) / report.kept,
        wall_s=time.perf_counter() - t0,
        source_s=source_s,
        prepare_s=prepare_s,
        generate_s=result.wall_s,
        validate_s=validate_s,
        work=work,
        file_bytes=out.stat().st_size,
    )
    (work / "summary.json").write_text(
        json.dumps(
            {
                **summary.to_json(),
                "dropped": report.no_success,
                "success_after_last_action": report.success_after_last_action,
                "clipped_action_components": report.clipped_action_components,
                "obs_max_diff": report.obs_max_diff,
                "mimicgen_stats": result.stats,
            },
            indent=2,
        )
    )
    return summary
