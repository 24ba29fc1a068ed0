"""The policy a session runs: ``--checkpoint`` as given (checked against ``--obs``), or the
task's cached demonstrations and a base pretrained on them (state or pixels), built on first use.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from expo_sim.session.config import PIXEL_DEMOS, SessionConfig

log = logging.getLogger(__name__)


def uses_mimicgen_demos(cfg: SessionConfig) -> bool:
    """Whether the session's default demonstrations are made the MimicGen way (stack, threading)."""
    from expo_core.tasks import requires_mimicgen

    return (
        cfg.checkpoint is None and cfg.dataset is None and cfg.obs == "state" and requires_mimicgen(cfg.task)
    )


def default_dataset(cfg: SessionConfig) -> tuple[Path, int]:
    """(the default demonstrations' path, how many demos or MimicGen trials make them)."""
    if cfg.obs == "pixels":
        return cfg.data_dir / f"{cfg.task}_pixels.hdf5", cfg.demos or PIXEL_DEMOS
    if uses_mimicgen_demos(cfg):
        from expo_sim.mimicgen.demo_cache import DEFAULT_TRIALS, default_demo_path

        return default_demo_path(cfg.task, cfg.data_dir), cfg.demos or DEFAULT_TRIALS
    return cfg.data_dir / f"{cfg.task}_{cfg.quality}.hdf5", cfg.demos or 50


def prepare_policy(cfg: SessionConfig, progress: bool = True) -> tuple[Path, Path | None]:
    """(the checkpoint the policy node loads, the demonstrations or None): ``cfg.checkpoint``
    (with ``cfg.dataset`` if given), or a cached base pretrained on the (cached) demos.

    A MimicGen task without MimicGen installed raises
    :class:`~expo_sim.mimicgen.available.MimicGenMissing` (one line naming ``make setup``).
    A checkpoint of the other kind than ``cfg.obs`` raises ValueError saying which to pass."""
    if cfg.checkpoint is not None:
        path = Path(cfg.checkpoint)
        if not (path.exists() or path.with_suffix(".safetensors").exists()):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        if cfg.dataset is not None and not Path(cfg.dataset).is_file():
            raise FileNotFoundError(f"dataset not found: {cfg.dataset}")
        _check_checkpoint_kind(path, cfg.obs)
        return path.resolve(), Path(cfg.dataset).resolve() if cfg.dataset is not None else None
    if cfg.obs == "pixels":
        return prepare_pixel_policy(cfg, progress)
    from expo_core.presets import preset_config
    from expo_core.spec import FRANKA_ACTION_SPEC, task_obs_spec

    from expo_sim.envs.demo_set import write_demo_set
    from expo_sim.train.presets import harness_defaults
    from expo_sim.train.pretrain import preset_base

    dataset = cfg.dataset
    if dataset is None:
        dataset, count = default_dataset(cfg)
        if uses_mimicgen_demos(cfg):
            from expo_sim.mimicgen.available import require_mimicgen
            from expo_sim.mimicgen.demo_cache import ensure_mimicgen_demos

            require_mimicgen(f"the default policy of task '{cfg.task}' (demonstrations made by MimicGen)")
            ensure_mimicgen_demos(cfg.task, dataset, count, cfg.seed, progress=progress)
        elif not dataset.exists():
            log.info("no demonstrations at %s: generating %d %s demos", dataset, count, cfg.quality)
            summary = write_demo_set(cfg.task, count, cfg.quality, cfg.seed, dataset, progress=progress)
            log.info("%s", summary.line())
    elif not Path(dataset).is_file():
        raise FileNotFoundError(f"dataset not found: {dataset}")
    steps = cfg.pretrain_steps
    if steps is None:
        steps = harness_defaults(cfg.preset).pretrain_steps
    ecfg = preset_config(cfg.preset, task_obs_spec(cfg.task).dim, FRANKA_ACTION_SPEC.dim)
    pre_dir = cfg.data_dir / "pretrain"
    base = preset_base(dataset, cfg.task, ecfg, cfg.preset, steps, cfg.seed, pre_dir, progress)
    if cfg.algo != "expo":
        from expo_sim.train.pretrain import variant_base

        base = variant_base(base, cfg.algo, ecfg, cfg.seed)
    return base.resolve(), Path(dataset).resolve()


def _check_checkpoint_kind(path: Path, obs: str) -> None:
    """ValueError when ``path`` (a save_checkpoint file) is a pixel checkpoint and ``obs`` is
    state, or the other way round."""
    from expo_core.checkpoint import PIXELS_FORMAT

    meta = path.with_suffix(".json")
    try:
        pixels = json.loads(meta.read_text()).get("format") == PIXELS_FORMAT
    except (OSError, ValueError, AttributeError):
        return  # not ours to judge here: the nodes' loaders say what is wrong with the file
    if pixels and obs != "pixels":
        raise ValueError(f"{path} is a pixel checkpoint (cameras): pass --obs pixels")
    if obs == "pixels" and not pixels:
        raise ValueError(f"--obs pixels needs a pixel checkpoint; {path} is a state checkpoint")


def prepare_pixel_policy(cfg: SessionConfig, progress: bool = True) -> tuple[Path, Path]:
    """``--obs pixels`` without a checkpoint: image demos (generated on first use: scripted, both
    cameras at 84x84) and a pixel base pretrained on them (mode a, cached); (base, demos)."""
    from expo_core.tasks import SUPPORTED_CAMERAS

    from expo_sim.envs.demo_set import write_demo_set
    from expo_sim.train.pixels import pretrain_pixel_base

    dataset = cfg.dataset
    if dataset is None:
        dataset, count = default_dataset(cfg)
        if not dataset.exists():
            log.info("no image demonstrations at %s: generating %d %s demos", dataset, count, cfg.quality)
            summary = write_demo_set(
                cfg.task, count, cfg.quality, cfg.seed, dataset, progress=progress, cameras=SUPPORTED_CAMERAS
            )
            log.info("%s", summary.line())
    elif not Path(dataset).is_file():
        raise FileNotFoundError(f"dataset not found: {dataset}")
    base = pretrain_pixel_base(
        Path(dataset),
        cfg.task,
        preset=cfg.preset,
        base_steps=cfg.pretrain_steps,
        seed=cfg.seed,
        out_dir=cfg.data_dir / "pretrain_pixels",
        progress=progress,
    )
    return base.resolve(), Path(dataset).resolve()
