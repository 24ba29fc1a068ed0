"""The ROS learner's training thread with an action-chunk base (issue 19, item 4): online
transitions carry one action, so the base learns their first slot; updates run and the published
weights act with a plan."""

from __future__ import annotations

from pathlib import Path

import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import policy_from_weights, save_checkpoint
from expo_core.config import DiffusionConfig
from expo_learner.checkpoints import CheckpointDir, load_start
from expo_learner.replay_store import ReplayStore
from expo_learner.trainer import Trainer, TrainerConfig, WeightsSnapshot

OBS_DIM, ACT_DIM = 19, 7


def test_learner_trains_a_chunk_base_on_first_slots(tmp_path: Path, tiny_config, make_table) -> None:
    torch.set_num_threads(1)
    d = tiny_config.diffusion
    cfg = tiny_config.replace(diffusion=DiffusionConfig(**(d.__dict__ | {"chunk_len": 4})))
    base = tmp_path / "base" / "k4"
    save_checkpoint(base, ExpoAgent(cfg, seed=0))
    ckpts = CheckpointDir(tmp_path / "ckpt", keep=2)
    trainer = Trainer(
        load_start(ckpts, str(base)),
        ReplayStore(OBS_DIM, ACT_DIM, 1000),
        ckpts,
        TrainerConfig(
            warmup_transitions=10, publish_every_updates=3, checkpoint_every_updates=4, stats_period_s=1e9
        ),
    )
    published: list[WeightsSnapshot] = []
    trainer.on_weights = published.append
    trainer.store.add_table(make_table(16, start=0), reloaded=False)
    trainer.notify(16)
    while trainer.step():
        pass
    assert trainer.updates == 6 and published
    r = trainer.report()
    assert torch.isfinite(torch.tensor(r.losses["bc_loss"]))
    policy = policy_from_weights(published[-1].data, published[-1].sha256)
    assert policy.cfg.diffusion.chunk_len == 4
    res = policy.decide(torch.zeros(1, OBS_DIM), torch.Generator().manual_seed(0))
    assert res.plan.shape == (1, 3, ACT_DIM)
