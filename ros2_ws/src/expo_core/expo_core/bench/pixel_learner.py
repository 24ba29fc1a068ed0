"""The pixel learner's cost per env step: cached frozen features vs a trained encoder.

    python -m expo_core.bench.pixel_learner [--preset cpu] [--encoders cpu,published]
        [--rounds 3] [--threads 1] [--out runs/bench_pixel_learner.json]

The stack trains the image encoder with the base during imitation, then freezes it: online,
replay holds features z = encoder(frames, proprio) and each env step costs a state-based EXPO
update on z (``PixelAgent.update``) plus one encoder pass for the new frame. Training the
encoder online instead (DrQ-style, as RLPD/EXPO pixel runs do) puts it inside every critic step:
the critic loss backpropagates into the encoder on the minibatch's frames, and the TD target
needs the next frames' features (a no-grad pass). This benchmark measures, per encoder preset,
on lift's pixel spec (two 84x84 cameras + 16-D proprio) with ``--preset``'s EXPO networks:

  update on cached z     one ``PixelAgent.update`` (UTD critic steps, BC, editor, temperature)
                         on random feature batches: what a cached-feature env step trains
  encode the new frame   encoder forward at batch 1, no grad (random shift off)
  encoder fwd+bwd        forward with the random shift and backward at the batch size (the
                         gradient a trained encoder takes per critic step)
  encoder fwd, no grad   forward at the batch size (the next frames' features per critic step)

and reports per env step: cached = update + encode; trained = update + UTD x (fwd+bwd + fwd no
grad) + fwd no grad (the actor/BC side sees the batch's features once more). The trained figure
is the sum of measured parts, not a run of a trained-encoder learner (the stack has none online);
it is a lower bound (the critic's input-gradient and the optimizer step of the encoder are left
out). Each part is timed ``--rounds`` times after a warm-up, rows interleaved; the table gives
medians. The JSON has every timing and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ..pixel_agent import PixelAgent, camera_frames, encoder_preset, pixel_expo_config
from ..presets import PRESETS, preset_config
from ..spec import task_obs_spec
from .learner_throughput import random_batches


def _frames(spec, batch: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = {
        k.camera: torch.randint(0, 256, (batch, *k.shape), generator=g, dtype=torch.uint8) for k in spec.rgb
    }
    return images, torch.randn(batch, spec.dim, generator=g)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(preset: str, encoder: str, rounds: int, seed: int) -> dict:
    """Median seconds of each part for one encoder preset (see the module docstring)."""
    spec = task_obs_spec("lift", "pixels")
    enc_cfg = encoder_preset(encoder)
    cfg = pixel_expo_config(preset_config(preset, 1, 7), enc_cfg, spec)
    frozen = PixelAgent(cfg, enc_cfg, spec, seed=seed)
    frozen.freeze_encoder()
    trained = PixelAgent(cfg, enc_cfg, spec, seed=seed)  # encoder still trainable
    batches = random_batches(cfg, seed)  # feature vectors of cfg.obs_dim
    one_images, one_proprio = _frames(spec, 1, seed)
    big_images, big_proprio = _frames(spec, cfg.batch_size, seed + 1)
    big = camera_frames(big_images, trained.cameras, trained.device)
    gen = torch.Generator().manual_seed(seed)

    def fwd_bwd() -> None:
        trained.encoder(big, big_proprio, gen).sum().backward()
        trained.encoder.zero_grad(set_to_none=True)

    @torch.no_grad()
    def fwd_nograd() -> None:
        trained.encoder(big, big_proprio)

    @torch.no_grad()
    def encode_one() -> None:
        frozen.features(one_images, one_proprio)

    parts = {
        "update on cached z": lambda: frozen.update(batches),
        "encode the new frame": encode_one,
        "encoder fwd+bwd": fwd_bwd,
        "encoder fwd, no grad": fwd_nograd,
    }
    for fn in parts.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(rounds):
        for name, fn in parts.items():
            times[name].append(_timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    utd = cfg.utd
    cached = med["update on cached z"] + med["encode the new frame"]
    trained_s = (
        med["update on cached z"]
        + utd * (med["encoder fwd+bwd"] + med["encoder fwd, no grad"])
        + med["encoder fwd, no grad"]
    )
    return {
        "preset": preset,
        "encoder": encoder,
        "utd": utd,
        "batch_size": cfg.batch_size,
        "feature_dim": cfg.obs_dim,
        "median_s": med,
        "times_s": times,
        "cached_s_per_env_step": cached,
        "trained_s_per_env_step": trained_s,
        "trained_over_cached": trained_s / cached,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=PRESETS, help="EXPO networks and UTD (default cpu)")
    ap.add_argument("--encoders", default="cpu,published", help="encoder presets, comma-separated")
    ap.add_argument("--rounds", type=int, default=3, help="timed repetitions of each part (>= 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_pixel_learner.json"))
    args = ap.parse_args(argv)
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    bad = [e for e in encoders if e not in PRESETS]
    if bad or not encoders or args.rounds < 1 or args.threads < 1:
        ap.error(f"--encoders from {list(PRESETS)} (got {bad or 'none'}); --rounds, --threads >= 1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = [measure(args.preset, e, args.rounds, args.seed) for e in encoders]
    load_after = os.getloadavg()
    print(
        f"pixel learner per env step, {args.preset} EXPO networks (UTD {rows[0]['utd']}, batch "
        f"{rows[0]['batch_size']}), lift pixel spec (2 x 84x84 + proprio 16), torch {args.threads} "
        f"thread(s), median of {args.rounds}; load average {load_before[0]:.2f} -> {load_after[0]:.2f}\n"
    )
    head = [
        "encoder",
        "features",
        *rows[0]["median_s"],
        "cached [s/step]",
        "trained [s/step]",
        "trained / cached",
    ]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        cells = [r["encoder"], str(r["feature_dim"]), *(f"{v:.3f}" for v in r["median_s"].values())]
        cells += [f"{r['cached_s_per_env_step']:.3f}", f"{r['trained_s_per_env_step']:.3f}"]
        cells += [f"{r['trained_over_cached']:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "torch": torch.__version__,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
