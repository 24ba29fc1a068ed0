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


def test_offline_demos_keep_their_chunks_bags_their_first_slot(tmp_path: Path, make_table) -> None:
    """load_offline(chunk_len=k): the dataset's rows carry the next k actions of their demo (the
    harness's targets), recorded bag rows their own action in slot 0; interventions stay plain."""
    import numpy as np
    from expo_core.spec import task_obs_spec
    from expo_learner.intake import load_offline
    from expo_learner.robomimic_bags import hdf5_to_segments, segments_to_hdf5
    from expo_learner.segments import SegmentWriter

    table = make_table(20, source="/actor_0/policy_node")  # two episodes of 10
    table.intervention[:] = (np.arange(20) % 10) >= 7
    with SegmentWriter(tmp_path / "bags") as w:
        w.write_table(table)
    demos = tmp_path / "demos.hdf5"
    segments_to_hdf5([tmp_path / "bags"], demos, task="lift")
    hdf5_to_segments(demos, tmp_path / "back")
    spec = task_obs_spec("lift")
    buf, iv, _ = load_offline(str(demos), [str(tmp_path / "back")], spec, ACT_DIM, chunk_len=3)
    assert buf.chunk_len == 3 and len(buf) == 40
    rows = buf.arrays()
    chunk, mask, act = rows["action_chunk"], rows["chunk_mask"], rows["action"]
    np.testing.assert_array_equal(chunk[:, 0], act)
    demo_rows = mask[:, 1] == 1.0
    # the 20 demo rows: 2 x (8 rows with a full chunk, 1 with two slots, 1 with one); the bag rows
    # and each demo's last row have slot 0 only
    assert demo_rows.sum() == 2 * 9 and (mask[:, 2] == 1.0).sum() == 2 * 8
    by_action = {tuple(a): i for i, a in enumerate(table.action)}
    for r in np.flatnonzero(mask[:, 2] == 1.0):
        i = by_action[tuple(act[r])]
        np.testing.assert_array_equal(chunk[r], table.action[i : i + 3])
    assert set(iv) == {"obs", "action", "reward", "next_obs", "terminated", "truncated"}
    assert len(iv["obs"]) == 2 * 2 * 3  # flagged rows of the file and of the bags
    store = ReplayStore(OBS_DIM, ACT_DIM, 100, buf)
    assert store.add_offline_interventions(iv) == 12
    assert store.sample(1, 8, torch.Generator().manual_seed(0))[0].action_chunk.shape == (8, 3, ACT_DIM)
