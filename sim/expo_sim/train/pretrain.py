"""Offline pretraining of EXPO's diffusion base on a robomimic dataset (imitation only), cached.

:func:`pretrain_base` loads the dataset with expo_core's reader (observation layout from the
task's spec), sets the observation normalization from the data, runs ``steps`` imitation steps
and writes an expo_core checkpoint. The checkpoint's metadata records what produced it (dataset
fingerprint, steps, seed, task, config); a later call with the same inputs returns the existing
file without training again, so every algorithm and every rerun of one preset shares one base.

:func:`load_pretrained` turns such a checkpoint into an agent whose config may differ from the
pretraining config in the ablation switches only (they do not affect pretraining).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import load_checkpoint, save_checkpoint
from expo_core.config import ExpoConfig
from expo_core.replay import ReplayBuffer
from expo_core.robomimic_io import TransitionArrays, load_robomimic_hdf5
from expo_core.spec import FRANKA_ACTION_SPEC, task_obs_spec

from expo_sim.train.presets import algo_config, base_config, same_pretraining

log = logging.getLogger(__name__)

PRETRAIN_KEY = "pretrain"  # where the cache key lives in the checkpoint's metadata


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_dataset(dataset: Path, task: str) -> TransitionArrays:
    """The dataset's transitions flattened through ``task``'s observation spec. Raises
    FileNotFoundError (no file), ValueError (unknown task) or KeyError (a missing key, named)."""
    spec = task_obs_spec(task)
    dataset = Path(dataset)
    if not dataset.is_file():
        raise FileNotFoundError(f"dataset not found: {dataset}")
    return load_robomimic_hdf5(dataset, spec)


def check_dims(cfg: ExpoConfig, task: str) -> None:
    dims = (task_obs_spec(task).dim, FRANKA_ACTION_SPEC.dim)
    if (cfg.obs_dim, cfg.act_dim) != dims:
        raise ValueError(f"config has obs/act dims {(cfg.obs_dim, cfg.act_dim)}; task '{task}' needs {dims}")


def _cache_key(dataset: Path, task: str, cfg: ExpoConfig, steps: int, seed: int) -> dict[str, Any]:
    st = dataset.stat()
    return {
        "dataset": str(dataset.resolve()),
        "dataset_size": st.st_size,
        "dataset_mtime_ns": st.st_mtime_ns,
        "task": task,
        "steps": steps,
        "seed": seed,
        "config": cfg.to_json(),
    }


def _stored_key(out: Path) -> dict[str, Any] | None:
    """The pretraining key stored with the checkpoint at ``out``, None when there is none."""
    meta_path = out.with_suffix(".json")
    if not (meta_path.is_file() and out.with_suffix(".safetensors").is_file()):
        return None
    try:
        return json.loads(meta_path.read_text())["metadata"][PRETRAIN_KEY]
    except (ValueError, KeyError, TypeError):
        log.warning("%s: not a pretraining checkpoint; retraining", meta_path)
        return None


def _same_dataset(stored: dict[str, Any], key: dict[str, Any], dataset: Path) -> bool:
    """The dataset matches by size and mtime, or (after a copy, move or touch) by its sha256."""
    if stored.get("dataset_size") != key["dataset_size"]:
        return False
    if stored.get("dataset_mtime_ns") == key["dataset_mtime_ns"]:
        return True
    return stored.get("dataset_sha256") == file_sha256(dataset)


def _other_dataset(out: Path, key: dict[str, Any], dataset: Path) -> bool:
    """Whether ``out`` holds a base of the same task, steps, seed and config pretrained on other
    data: that base is someone's (``make sim``'s, a study's) and stays."""
    stored = _stored_key(out)
    same = ("task", "steps", "seed", "config")
    return (
        stored is not None
        and all(stored.get(k) == key[k] for k in same)
        and not _same_dataset(stored, key, dataset)
    )


def dataset_variant(out: Path, dataset: Path) -> Path:
    """Where the base of ``dataset`` goes when ``out`` holds the base of other data:
    ``<out>-ds<first 10 hex of the dataset's sha256>.safetensors`` beside it."""
    out = Path(out).with_suffix(".safetensors")
    return out.with_name(f"{out.stem}-ds{file_sha256(dataset)[:10]}.safetensors")


def _cached(out: Path, key: dict[str, Any], dataset: Path) -> dict[str, Any] | None:
    """The stored key if ``out`` holds a checkpoint made from the same inputs, else None."""
    stored = _stored_key(out)
    if stored is None:
        return None
    same = ("task", "steps", "seed", "config")
    if any(stored.get(k) != key[k] for k in same):
        diff = [k for k in same if stored.get(k) != key[k]]
        log.info("%s: cached base differs in %s; retraining", out, diff)
        return None
    return stored if _same_dataset(stored, key, dataset) else None


def pretrain_base(
    dataset: Path, task: str, cfg: ExpoConfig, steps: int, seed: int, out: Path, progress: bool = True
) -> Path:
    """Imitation-pretrain EXPO's base on ``dataset`` and save a checkpoint at ``out``.

    Args:
        dataset: robomimic HDF5 file (official layout).
        task: task name; its observation spec decides which keys are read, in which order.
        cfg: agent config (obs/act dims must match the task); ``cfg.batch_size`` per step.
        steps: imitation (denoising-loss) steps.
        seed: seeds network init, minibatch sampling and diffusion noise.
        out: checkpoint path (suffix replaced by .safetensors / .json).
        progress: show a tqdm bar.
    Returns:
        The .safetensors path. If it already holds a base made from the same dataset, task,
        steps, seed and config, it is returned as is. If it holds one of the same settings made
        from other data (another file, or this file before it changed), that base is kept and
        this dataset's goes to :func:`dataset_variant` (cached there the same way).
    """
    from tqdm import tqdm

    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps={steps!r} is invalid; allowed: integer >= 0")
    task_obs_spec(task)  # unknown task -> ValueError before any file work
    check_dims(cfg, task)
    dataset, out = Path(dataset), Path(out).with_suffix(".safetensors")
    if not dataset.is_file():
        raise FileNotFoundError(f"dataset not found: {dataset}")
    key = _cache_key(dataset, task, cfg, steps, seed)
    if _other_dataset(out, key, dataset):
        variant = dataset_variant(out, dataset)
        log.info("%s is the base of other data; the base of %s is %s", out, dataset, variant)
        out = variant
    if _cached(out, key, dataset) is not None:
        log.info("using cached pretrained base %s", out)
        return out

    t0 = time.perf_counter()
    data = load_dataset(dataset, task)
    offline = ReplayBuffer.from_arrays(data.transitions(cfg.diffusion.chunk_len))
    agent = ExpoAgent(cfg, seed=seed)
    agent.set_obs_normalization(data.obs.mean(0), data.obs.std(0))
    gen = torch.Generator().manual_seed(seed)
    loss = float("nan")
    bar = tqdm(range(steps), desc="pretrain base", unit="step", disable=not progress, mininterval=0.5)
    for i in bar:
        loss = agent.pretrain_step(offline.sample(cfg.batch_size, gen))["bc_loss"]
        if i % 100 == 0:
            bar.set_postfix(bc_loss=f"{loss:.4f}", refresh=False)
    bar.close()
    key.update(
        dataset_sha256=file_sha256(dataset),
        num_transitions=len(data),
        num_demos=data.num_episodes,
        final_bc_loss=loss,
        wall_time_s=time.perf_counter() - t0,
    )
    save_checkpoint(out, agent, metadata={PRETRAIN_KEY: key})
    log.info(
        "pretrained base: %d steps on %d transitions in %.0f s -> %s",
        steps,
        len(data),
        key["wall_time_s"],
        out,
    )
    return out


def preset_base(
    dataset: Path,
    task: str,
    cfg: ExpoConfig,
    preset: str,
    steps: int,
    seed: int,
    pre_dir: Path,
    progress: bool = True,
) -> Path:
    """:func:`pretrain_base` of ``cfg``'s base under a name that says what it is:
    ``pre_dir/base-<task>-<preset>-s<seed>-p<steps>-<config hash>.safetensors``. Every algorithm
    and every rerun of one preset (the harness, ``make sim``) shares that one cached file."""
    bcfg = base_config(cfg)
    digest = hashlib.sha256(bcfg.to_json().encode()).hexdigest()[:10]
    out = Path(pre_dir) / f"base-{task}-{preset}-s{seed}-p{steps}-{digest}"
    return pretrain_base(dataset, task, bcfg, steps, seed, out, progress)


def variant_base(base: Path, algo: str, cfg: ExpoConfig, seed: int) -> Path:
    """The pretrained ``base`` (of the preset config ``cfg``) as a checkpoint of the EXPO variant
    ``algo`` (:func:`expo_sim.train.presets.algo_config`): the same weights under that config, so
    that the policy node acts and the learner node trains as the variant does. Written next to
    the base as ``<base>-<algo>.safetensors`` every time (a second, cheap to write; never stale
    when the base is pretrained again)."""
    agent = load_pretrained(base, algo_config(algo, cfg), seed)
    out = Path(base).with_suffix("")
    out = out.with_name(f"{out.name}-{algo}")
    save_checkpoint(out, agent)
    return out.with_suffix(".safetensors")


def load_pretrained(path: Path, cfg: ExpoConfig, seed: int, device: str = "cpu") -> ExpoAgent:
    """An agent with ``cfg`` carrying the pretrained checkpoint's weights and base optimizer.

    ``cfg`` may differ from the checkpoint's config only in what online learning alone uses
    (:func:`expo_sim.train.presets.same_pretraining`). ``seed`` seeds the agent's own random stream.
    """
    pre, _ = load_checkpoint(path, device=device)
    if not same_pretraining(pre.cfg, cfg):
        raise ValueError(f"{path}: pretrained with a different config than the one requested")
    agent = ExpoAgent(cfg, device=device, seed=seed)
    agent.load_state_dict(pre.state_dict())
    agent.base_opt.load_state_dict(pre.base_opt.state_dict())
    agent.base_sched.last_epoch = pre.base_sched.last_epoch
    return agent
