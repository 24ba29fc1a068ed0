"""A pixel base for a simulated task: imitation pretraining on image demos (cached) and evaluation.

    python -m expo_sim.train.pixels pretrain --task lift --dataset data/lift_pixels.hdf5 \
        --preset cpu --out-dir data/pretrain_pixels
    python -m expo_sim.train.pixels evaluate CHECKPOINT --episodes 25 [--policy base|otf] \
        [--out runs/pixels/eval.json]

:func:`pretrain_pixel_base` reads an image dataset (robomimic layout, ``obs/<camera>_image``
uint8 frames and the pixel spec's base-frame proprioception; ``expo-sim demos --cameras ...``)
through ``task_obs_spec(task, obs="pixels")`` and runs :func:`expo_core.pixel_pretrain.pretrain_pixels`:
encoder + base end to end (random shift), freeze, encode every frame once, base alone on the
cached features. It writes a pixel checkpoint (``save_checkpoint`` of a
:class:`~expo_core.pixel_agent.PixelAgent`) whose metadata holds the cache key (dataset
fingerprint, task, steps, seed, configs); a later call with the same inputs returns the file
without training, as :func:`expo_sim.train.pretrain.pretrain_base` does for state bases.

:func:`evaluate_pixel_checkpoint` runs the deterministic policy in ``make_env(task,
obs="pixels")`` (the cameras rendered offscreen, the proprioception in the base frame) for N
episodes from the shared evaluation seeds and reports success with a Wilson 95 % interval
(:func:`expo_sim.train.evaluation.evaluate`). ``policy="base"`` is the pretrained base alone (one
deterministic EMA-base sample: what the imitation phase produced); ``"otf"`` the EXPO decision
(meaningful after online learning; before it the critics are untrained).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from expo_core.checkpoint import load_pixel_checkpoint, save_checkpoint
from expo_core.encoder import EncoderConfig
from expo_core.pixel_agent import PixelAgent, encoder_preset, pixel_expo_config, unpack_observation
from expo_core.pixel_pretrain import pretrain_pixels
from expo_core.presets import PRESETS, preset_config
from expo_core.robomimic_io import load_robomimic_images
from expo_core.spec import FRANKA_ACTION_SPEC, ObsSpec, task_obs_spec

from expo_sim.train.evaluation import EvalResult, evaluate
from expo_sim.train.pretrain import file_sha256

log = logging.getLogger(__name__)

PRETRAIN_KEY = "pixel_pretrain"  # where the cache key lives in the checkpoint's metadata

#: Harness defaults per preset: (encoder steps, base steps, image batch size).
PIXEL_STEPS: dict[str, tuple[int, int, int]] = {
    "tiny": (4, 4, 4),
    "cpu": (1000, 20_000, 64),
    "published": (30_000, 100_000, 256),
}


def _cache_key(
    dataset: Path, task: str, cfg: Any, enc: EncoderConfig, steps: tuple[int, int, int], seed: int
) -> dict[str, Any]:
    st = dataset.stat()
    return {
        "dataset": str(dataset.resolve()),
        "dataset_size": st.st_size,
        "dataset_mtime_ns": st.st_mtime_ns,
        "task": task,
        "encoder_steps": steps[0],
        "base_steps": steps[1],
        "image_batch_size": steps[2],
        "seed": seed,
        "config": cfg.to_json(),
        "encoder_config": json.dumps(enc.to_dict(), sort_keys=True),
    }


def _cached(out: Path, key: dict[str, Any], dataset: Path) -> bool:
    """Whether ``out`` holds a pixel base made from the same inputs (dataset by size and mtime,
    or after a copy or touch by its sha256)."""
    meta_path = out.with_suffix(".json")
    if not (meta_path.is_file() and out.with_suffix(".safetensors").is_file()):
        return False
    try:
        stored = json.loads(meta_path.read_text())["metadata"][PRETRAIN_KEY]
    except (ValueError, KeyError, TypeError):
        log.warning("%s: not a pixel pretraining checkpoint; retraining", meta_path)
        return False
    same = [k for k in key if k not in ("dataset", "dataset_mtime_ns")]
    diff = [k for k in same if stored.get(k) != key[k]]
    if diff:
        log.info("%s: cached pixel base differs in %s; retraining", out, diff)
        return False
    if stored.get("dataset_mtime_ns") == key["dataset_mtime_ns"]:
        return True
    if stored.get("dataset_sha256") == file_sha256(dataset):
        return True
    log.info("%s: dataset content changed; retraining", out)
    return False


def pixel_base_path(
    out_dir: Path,
    task: str,
    preset: str,
    enc: EncoderConfig,
    cfg: Any,
    steps: tuple[int, int, int],
    seed: int,
) -> Path:
    """``out_dir/pixbase-<task>-<preset>-s<seed>-e<enc steps>-b<base steps>-<config hash>``."""
    text = cfg.to_json() + json.dumps(enc.to_dict(), sort_keys=True) + str(steps[2])
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return Path(out_dir) / f"pixbase-{task}-{preset}-s{seed}-e{steps[0]}-b{steps[1]}-{digest}.safetensors"


def pretrain_pixel_base(
    dataset: Path,
    task: str,
    *,
    preset: str = "cpu",
    encoder_cfg: EncoderConfig | None = None,
    encoder_steps: int | None = None,
    base_steps: int | None = None,
    image_batch_size: int | None = None,
    seed: int = 0,
    out_dir: Path = Path("data/pretrain_pixels"),
    max_demos: int | None = None,
    progress: bool = True,
) -> Path:
    """Pretrain (or find cached) a pixel base for ``task`` on the image ``dataset``.

    Args:
        preset: network sizes of the EXPO part (:func:`expo_core.presets.preset_config`) and the
            default encoder (:func:`expo_core.pixel_agent.encoder_preset`) and steps
            (:data:`PIXEL_STEPS`).
        encoder_cfg: overrides the preset's encoder (e.g. mode (b): ``backbone="resnet18"`` with a
            local ``weights_path``); its cameras and size must match the dataset's.
        encoder_steps, base_steps, image_batch_size: override the preset's.
        max_demos: read only the first demos (tests).
    Returns:
        The checkpoint's .safetensors path (a pixel checkpoint with the cache key in its metadata).
    """
    from tqdm import tqdm

    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; available presets: {list(PRESETS)}")
    dataset = Path(dataset)
    if not dataset.is_file():
        raise FileNotFoundError(f"dataset not found: {dataset}")
    d_enc, d_base, d_batch = PIXEL_STEPS[preset]
    steps = (
        d_enc if encoder_steps is None else encoder_steps,
        d_base if base_steps is None else base_steps,
        d_batch if image_batch_size is None else image_batch_size,
    )
    enc = encoder_cfg if encoder_cfg is not None else encoder_preset(preset)
    spec = task_obs_spec(task, "pixels", cameras=enc.camera_names, image_size=enc.image_size)
    cfg = pixel_expo_config(preset_config(preset, 1, FRANKA_ACTION_SPEC.dim), enc, spec)
    out = pixel_base_path(out_dir, task, preset, enc, cfg, steps, seed)
    key = _cache_key(dataset, task, cfg, enc, steps, seed)
    if max_demos is not None:
        key["max_demos"] = max_demos
    if _cached(out, key, dataset):
        log.info("using cached pixel base %s", out)
        return out

    t0 = time.perf_counter()
    data = load_robomimic_images(dataset, spec, max_demos=max_demos)
    agent = PixelAgent(cfg, enc, spec, seed=seed)
    total = steps[0] + steps[1]
    bar = tqdm(total=total, desc="pretrain pixel base", unit="step", disable=not progress, mininterval=1.0)

    def tick(phase: str, i: int, loss: float) -> None:
        bar.update(1)
        if i % 50 == 0:
            bar.set_postfix(phase=phase, bc_loss=f"{loss:.4f}", refresh=False)

    result, _ = pretrain_pixels(agent, data, steps[0], steps[1], steps[2], seed, tick)
    bar.close()
    key.update(
        dataset_sha256=file_sha256(dataset),
        num_transitions=len(data),
        num_demos=data.low_dim.num_episodes,
        result=dataclasses.asdict(result),
        wall_time_s=time.perf_counter() - t0,
        threads=torch.get_num_threads(),
    )
    save_checkpoint(out, agent, metadata={PRETRAIN_KEY: key})
    log.info(
        "pixel base: %d encoder + %d base steps on %d transitions (%d demos) in %.0f s -> %s",
        steps[0],
        steps[1],
        len(data),
        data.low_dim.num_episodes,
        key["wall_time_s"],
        out,
    )
    return out


def pixel_act(agent: PixelAgent, policy: str = "base"):
    """``act(obs) -> action`` of the deterministic pixel policy on the sim env's packed
    observation (``{"low_dim": proprio, "<camera>_image": frame}``): ``"base"`` one EMA-base
    sample, ``"otf"`` the EXPO decision."""
    if policy not in ("base", "otf"):
        raise ValueError(f"policy={policy!r} is invalid; allowed: 'base' | 'otf'")

    def act(obs: dict[str, Any]):
        images, proprio = unpack_observation(obs, agent.cameras)
        if policy == "base":
            return agent.base_act(images, proprio, deterministic=True)
        return agent.act(images, proprio, deterministic=True)

    return act


def evaluate_pixel_checkpoint(
    path: Path, episodes: int, *, task: str | None = None, policy: str = "base", horizon: int | None = None
) -> tuple[EvalResult, dict[str, Any]]:
    """Success (Wilson 95 %) of a pixel checkpoint's deterministic ``policy`` in
    ``make_env(task, obs="pixels")`` (task from the checkpoint's metadata unless given). Returns
    the result and facts of the run (wall time, steps/s, cameras)."""
    from expo_sim.envs.robosuite_env import make_env

    agent, meta = load_pixel_checkpoint(path)
    task = task or meta.get(PRETRAIN_KEY, {}).get("task")
    if task is None:
        raise ValueError(f"{path}: no task in its metadata; pass task")
    spec: ObsSpec = agent.obs_spec
    kwargs = {} if horizon is None else {"horizon": horizon}
    env = make_env(
        task, obs="pixels", cameras=spec.cameras, camera_size=agent.encoder_cfg.image_size, **kwargs
    )
    if env.obs_spec != spec:
        env.close()
        raise ValueError(f"env spec {env.obs_spec.to_json()} differs from the checkpoint's {spec.to_json()}")
    t0 = time.perf_counter()
    try:
        result = evaluate(env, pixel_act(agent, policy), episodes)
    finally:
        env.close()
    wall = time.perf_counter() - t0
    steps = result.mean_length * result.episodes
    return result, {
        "task": task,
        "policy": policy,
        "wall_s": wall,
        "env_steps": steps,
        "steps_per_s": steps / wall,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m expo_sim.train.pixels", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain", help="pretrain (or find cached) a pixel base")
    p.add_argument("--task", required=True)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--preset", default="cpu", choices=PRESETS)
    p.add_argument("--encoder-steps", type=int, default=None)
    p.add_argument("--base-steps", type=int, default=None)
    p.add_argument("--image-batch", type=int, default=None)
    p.add_argument(
        "--encoder-weights", type=Path, default=None, help="mode (b): a local ResNet-18 state_dict"
    )
    p.add_argument("--image-size", type=int, default=84, help="the dataset's square frame side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=Path("data/pretrain_pixels"))
    p.add_argument("--max-demos", type=int, default=None)
    e = sub.add_parser("evaluate", help="success of a pixel checkpoint in sim")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--episodes", type=int, default=25)
    e.add_argument("--policy", default="base", choices=("base", "otf"))
    e.add_argument("--task", default=None)
    e.add_argument("--horizon", type=int, default=None, help="episode step limit (default: the task's)")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--out", type=Path, default=None, help="JSON with the result")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    if args.cmd == "pretrain":
        weights = None if args.encoder_weights is None else str(args.encoder_weights)
        enc = encoder_preset(args.preset, image_size=args.image_size, weights_path=weights)
        path = pretrain_pixel_base(
            args.dataset,
            args.task,
            preset=args.preset,
            encoder_cfg=enc,
            encoder_steps=args.encoder_steps,
            base_steps=args.base_steps,
            image_batch_size=args.image_batch,
            seed=args.seed,
            out_dir=args.out_dir,
            max_demos=args.max_demos,
        )
        print(path)
        return 0
    result, facts = evaluate_pixel_checkpoint(
        args.checkpoint, args.episodes, task=args.task, policy=args.policy, horizon=args.horizon
    )
    report = dataclasses.asdict(result) | facts
    print(
        f"{facts['task']} {facts['policy']}: success {result.successes}/{result.episodes} = "
        f"{result.success_rate:.2f} [{result.success_ci_low:.2f}, {result.success_ci_high:.2f}] "
        "(Wilson 95 %), "
        f"{facts['wall_s']:.0f} s, {facts['steps_per_s']:.1f} env steps/s"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
