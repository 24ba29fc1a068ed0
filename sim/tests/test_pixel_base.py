"""expo_sim.train.pixels: a pixel base pretrained on an image dataset (cached by its inputs, like
the state base), evaluated in the pixel env, and the module's command line."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from expo_core.checkpoint import WeightsError, load_checkpoint, load_pixel_checkpoint
from expo_core.pixel_agent import encoder_preset
from expo_core.spec import task_obs_spec
from expo_sim.train.pixels import (
    PRETRAIN_KEY,
    evaluate_pixel_checkpoint,
    main,
    pixel_act,
    pretrain_pixel_base,
)

SIZE = 32  # the encoder is size-agnostic; small frames keep the test fast


def _image_dataset(path: Path, demos: int = 2, steps: int = 8) -> Path:
    """A robomimic-layout lift file with the pixel spec's keys and uint8 frames (no simulator)."""
    spec = task_obs_spec("lift", "pixels", image_size=SIZE)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps(
            {"env_name": "Lift", "env_version": "1.4.1", "type": 1, "env_kwargs": {}}
        )
        for i in range(demos):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = steps
            for key in spec.keys:
                demo.create_dataset(f"obs/{key.name}", data=rng.standard_normal((steps, key.dim)))
            for key in spec.rgb:
                demo.create_dataset(
                    f"obs/{key.name}", data=rng.integers(0, 256, (steps, *key.shape), dtype=np.uint8)
                )
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
            rewards = np.zeros(steps)
            rewards[-1] = 1.0
            demo.create_dataset("rewards", data=rewards)
            demo.create_dataset("dones", data=rewards.astype(np.int64))
    return path


def test_pretrain_is_cached_by_its_inputs(tmp_path: Path) -> None:
    data = _image_dataset(tmp_path / "px.hdf5")
    enc = encoder_preset("tiny", image_size=SIZE)
    kw = dict(preset="tiny", encoder_cfg=enc, out_dir=tmp_path / "pre", progress=False)
    path = pretrain_pixel_base(data, "lift", **kw)
    meta = json.loads(path.with_suffix(".json").read_text())["metadata"][PRETRAIN_KEY]
    assert meta["num_demos"] == 2 and meta["num_transitions"] == 16 and meta["result"]["encoder_steps"] == 4
    agent, _ = load_pixel_checkpoint(path)
    assert agent.is_frozen and agent.obs_spec == task_obs_spec("lift", "pixels", image_size=SIZE)
    with pytest.raises(WeightsError, match="pixel checkpoint"):
        load_checkpoint(path)  # a state consumer refuses it
    mtime = path.stat().st_mtime_ns
    assert pretrain_pixel_base(data, "lift", **kw) == path and path.stat().st_mtime_ns == mtime  # cached
    other = pretrain_pixel_base(data, "lift", **kw, encoder_steps=2)
    assert other != path and other.is_file()  # other steps: another file
    with pytest.raises(FileNotFoundError):
        pretrain_pixel_base(tmp_path / "missing.hdf5", "lift", **kw)
    with pytest.raises(ValueError, match="preset"):
        pretrain_pixel_base(data, "lift", preset="huge", out_dir=tmp_path)


def test_pixel_act_reads_the_env_observation(tmp_path: Path) -> None:
    path = pretrain_pixel_base(
        _image_dataset(tmp_path / "px.hdf5"),
        "lift",
        preset="tiny",
        encoder_cfg=encoder_preset("tiny", image_size=SIZE),
        out_dir=tmp_path,
        progress=False,
    )
    agent, _ = load_pixel_checkpoint(path)
    rng = np.random.default_rng(1)
    obs = {"low_dim": rng.standard_normal(16).astype(np.float32)}
    obs |= {f"{c}_image": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for c in agent.cameras}
    a = pixel_act(agent, "base")(obs)
    assert a.shape == (7,) and np.array_equal(a, pixel_act(agent, "base")(obs))  # deterministic
    assert pixel_act(agent, "otf")(obs).shape == (7,)
    with pytest.raises(ValueError, match="policy"):
        pixel_act(agent, "bc")


def test_evaluate_in_the_pixel_env_and_cli(tmp_path: Path, capsys) -> None:
    """pretrain and evaluate through the CLI: two 3-step episodes in make_env('lift',
    obs='pixels') with 32x32 cameras; the JSON holds the Wilson interval and the wall time."""
    data = _image_dataset(tmp_path / "px.hdf5")
    pre = [
        "pretrain",
        "--task",
        "lift",
        "--dataset",
        str(data),
        "--preset",
        "tiny",
        "--image-size",
        str(SIZE),
    ]
    assert main([*pre, "--out-dir", str(tmp_path / "pre")]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path.is_file()
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(path), "--episodes", "2", "--horizon", "3", "--out", str(out)]) == 0
    assert "Wilson 95 %" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["episodes"] == 2 and report["mean_length"] == 3 and report["env_steps"] == 6
    assert 0 <= report["success_ci_low"] <= report["success_ci_high"] <= 1 and report["wall_s"] > 0
    result, facts = evaluate_pixel_checkpoint(path, 1, horizon=2, policy="otf")
    assert result.episodes == 1 and facts["policy"] == "otf"
