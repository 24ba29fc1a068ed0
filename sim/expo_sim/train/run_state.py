"""The harness's own resumable state, saved next to the learner's checkpoint at every evaluation.

``replay.npz`` holds the online replay buffer (oldest first), the minibatch sampler's
torch.Generator state and the warm-up action RNG; the counters (env steps, episodes, updates,
elapsed time) travel in the checkpoint's JSON metadata and are repeated here so that a
checkpoint and a replay file from different moments are detected instead of silently mixed.
The offline dataset is not stored: it is reloaded from its file. An episode in progress at save
time is not resumed: the resumed run starts a fresh episode.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from expo_core.replay import TRANSITION_FIELDS, ReplayBuffer


@dataclass
class Counters:
    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    wall_time_s: float = 0.0  # accumulated over all sessions of the run
    pretrain_time_s: float = 0.0
    eval_time_s: float = 0.0
    update_time_s: float = 0.0


def save_run_state(
    path: Path,
    online: ReplayBuffer,
    sampler_gen: torch.Generator,
    action_rng: np.random.Generator,
    counters: Counters,
) -> None:
    """Atomic write of ``path`` (.npz)."""
    arrays = online.arrays()
    extra = {
        "sampler_generator": sampler_gen.get_state().numpy(),
        "capacity": np.array(online.capacity),
        "meta": np.array(
            json.dumps({"counters": asdict(counters), "action_rng": action_rng.bit_generator.state})
        ),
    }
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, **arrays, **extra)
    os.replace(tmp, path)


def load_run_state(
    path: Path,
    sampler_gen: torch.Generator,
    action_rng: np.random.Generator,
    expect_env_steps: int,
    min_capacity: int = 1,
) -> tuple[ReplayBuffer, Counters]:
    """Restore the buffer (grown to at least ``min_capacity``) and both RNGs (in place). Raises
    ValueError if the file was written at another env step than the checkpoint's."""
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        counters = Counters(**meta["counters"])
        if counters.env_steps != expect_env_steps:
            raise ValueError(
                f"{path} was saved at env step {counters.env_steps}, the checkpoint at {expect_env_steps}; "
                "the run directory is inconsistent"
            )
        online = ReplayBuffer(z["obs"].shape[1], z["action"].shape[1], max(int(z["capacity"]), min_capacity))
        online.add_many(**{k: z[k] for k in TRANSITION_FIELDS})
        sampler_gen.set_state(torch.from_numpy(z["sampler_generator"].copy()))
    action_rng.bit_generator.state = meta["action_rng"]
    return online, counters
