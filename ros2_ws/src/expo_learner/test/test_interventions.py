"""Intervention transitions in the learner: routing into replay and the imitation buffer, the
base's extra imitation steps, the rates per episode and per hour, the parameters, the HDF5 flags."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from expo_core.batch import Batch
from expo_learner.checkpoints import CheckpointDir, load_start
from expo_learner.interventions import InterventionStats, InterventionUse
from expo_learner.learner_params import PARAMETERS, LearnerConfig
from expo_learner.replay_store import ReplayStore
from expo_learner.trainer import Trainer, TrainerConfig
from expo_learner.transition_table import TransitionTable

OBS_DIM, ACT_DIM = 19, 7
NS = 1_700_000_000_000_000_000
STEP_NS = 50_000_000  # 20 Hz


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _flag(table: TransitionTable, mask: np.ndarray) -> TransitionTable:
    cols = {k: getattr(table, k) for k in table.__dataclass_fields__}
    return TransitionTable(**(cols | {"intervention": np.asarray(mask, bool)}))


def _episode(stats: InterventionStats, flags: str, source: str = "a", episode: int = 0, t0: int = NS) -> None:
    """Feed one episode given as a string: 'p' = policy step, 'i' = intervention step."""
    for k, c in enumerate(flags):
        stats.add(source, episode, c == "i", t0 + (k + 1) * STEP_NS, done=k == len(flags) - 1)


def test_use_validation() -> None:
    assert InterventionUse().replay and InterventionUse().bc_steps == 1
    for bad in (dict(bc_steps=-1), dict(bc_min_rows=0), dict(capacity=0), dict(stats_episodes=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            InterventionUse(**bad)
    with pytest.raises(ValueError, match="replay"):
        InterventionUse(replay="yes")


def test_stats_count_takeovers_fractions_and_hours() -> None:
    s = InterventionStats(window_episodes=2)
    assert "interventions/step_fraction" not in s.scalars()  # no completed episode yet
    _episode(s, "ppiiippiip", episode=0)  # 2 takeovers, 5 of 10 steps
    _episode(s, "pppppppppp", episode=1)
    out = s.scalars()
    assert out["interventions/step_fraction"] == pytest.approx(5 / 20)
    assert out["interventions/per_episode"] == pytest.approx(1.0)
    assert out["interventions/episode_fraction"] == pytest.approx(0.5)
    assert out["interventions/per_hour"] == pytest.approx(2 / (20 * 0.05 / 3600))  # 20 steps = 1 s
    assert out["interventions/last_episode_step_fraction"] == 0.0
    _episode(s, "iiiipppppp", episode=2)  # the window keeps the last two episodes only
    out = s.scalars()
    assert out["interventions/step_fraction"] == pytest.approx(4 / 20)
    assert out["interventions/takeovers_total"] == 3.0 and out["interventions/steps_total"] == 9.0
    assert out["interventions/episodes_total"] == 3.0
    assert out["interventions/last_episode_step_fraction"] == pytest.approx(0.4)


def test_stats_keep_sources_apart_and_close_on_a_new_episode() -> None:
    s = InterventionStats()
    for k in range(4):  # two actors interleaved; 'b' intervenes at steps 1-2
        s.add("a", 0, False, NS + k, done=False)
        s.add("b", 0, k in (1, 2), NS + k, done=False)
    assert s.scalars()["interventions/takeovers_total"] == 1.0  # a's steps do not split b's run
    s.add("b", 1, False, NS + 10, done=False)  # b's episode 0 ended without a done row
    assert s.scalars()["interventions/episodes_total"] == 1.0
    assert s.last.intervention_steps == 2 and s.last.steps == 4


def _store(use: InterventionUse) -> ReplayStore:
    return ReplayStore(OBS_DIM, ACT_DIM, 1000, use=use)


@pytest.mark.parametrize("replay", [True, False])
def test_store_routes_interventions(make_table, replay: bool) -> None:
    table = _flag(make_table(20), np.arange(20) % 4 == 0)  # 5 intervention rows
    store = _store(InterventionUse(replay=replay, bc_min_rows=5))
    store.add_table(table)
    t, source = next(table.select(np.array([4])).rows())  # one live intervention row
    store.add(t, source)
    assert len(store.interventions) == 6 and store.seen == 21
    assert store.sizes()[0] == (21 if replay else 15)
    gen = torch.Generator().manual_seed(0)
    batch = store.sample_interventions(32, gen)
    flagged_ids = set(table.obs[table.intervention, 0].tolist())
    assert set(batch.obs[:, 0].tolist()) <= flagged_ids  # only intervention rows
    if not replay:  # no intervention row in the online buffer
        online_ids = {int(b) for b in store.sample(4, 64, gen)[0].obs[:, 0].tolist()}
        assert not online_ids & flagged_ids
    assert _store(InterventionUse(bc_min_rows=7)).sample_interventions(8, gen) is None
    scalars = store.intervention_scalars()
    assert scalars["interventions/buffer_size"] == 6.0 and scalars["interventions/steps_total"] == 6.0


def _trainer(tmp_path: Path, base: Path, use: InterventionUse) -> Trainer:
    ckpts = CheckpointDir(tmp_path / "ckpt", keep=2)
    cfg = TrainerConfig(warmup_transitions=0, checkpoint_every_updates=10_000, stats_period_s=1e9)
    return Trainer(load_start(ckpts, str(base)), _store(use), ckpts, cfg)


def test_trainer_imitates_intervention_rows(tmp_path: Path, base_checkpoint: Path, make_table) -> None:
    """With bc_steps the base trains on intervention rows after each update: its imitation loss on
    them falls below that of a twin trained on the same data without those steps."""
    table = make_table(200)
    table = _flag(table, np.arange(200) < 100)
    iv = table.select(table.intervention)
    probe = TransitionTable.concat([iv] * 2).transitions()  # the corrections, as one batch
    probe_batch = Batch(**{k: torch.as_tensor(v) for k, v in probe.items()})
    losses = {}
    for steps in (0, 4):
        t = _trainer(tmp_path / str(steps), base_checkpoint, InterventionUse(bc_steps=steps, bc_min_rows=50))
        t.store.add_table(table)
        t.notify(30)
        stats = [t.update_once() for _ in range(30)]
        assert ("intervention_bc_loss" in stats[-1]) == (steps > 0)
        losses[steps] = t.agent.evaluate_bc_loss(probe_batch)
        assert "interventions/step_fraction" in t.report().interventions
    assert losses[4] < losses[0]


def test_trainer_waits_for_min_rows(tmp_path: Path, base_checkpoint: Path, make_table) -> None:
    t = _trainer(tmp_path, base_checkpoint, InterventionUse(bc_steps=2, bc_min_rows=50))
    t.store.add_table(_flag(make_table(40), np.ones(40, bool)))
    assert t.intervention_bc() == {}
    t.store.add_table(_flag(make_table(10, start=40), np.ones(10, bool)))
    assert set(t.intervention_bc()) == {"intervention_bc_loss"}


def test_parameters() -> None:
    values = {p.name: p.default for p in PARAMETERS} | {"checkpoint_dir": "c", "bag_dir": "b"}
    cfg = LearnerConfig.from_values(values)
    assert cfg.interventions == InterventionUse()
    for name, bad in (
        ("intervention_replay", 1),
        ("intervention_bc_steps", -1),
        ("intervention_bc_min_rows", 0),
        ("intervention_capacity", 2.5),
        ("intervention_stats_episodes", 0),
    ):
        with pytest.raises(ValueError, match=f"'{name}'"):
            LearnerConfig.from_values(values | {name: bad})


@pytest.mark.ros  # bags through rclpy serialization
def test_hdf5_flags_round_trip_and_sirius_action_modes(tmp_path: Path, make_table) -> None:
    from expo_core.spec import task_obs_spec
    from expo_learner.intake import load_offline
    from expo_learner.robomimic_bags import hdf5_to_segments, read_intervention_flags, segments_to_hdf5
    from expo_learner.segment_reader import load_segments
    from expo_learner.segments import SegmentWriter

    live = _flag(make_table(20, source="/actor_0/policy_node"), (np.arange(20) % 10) >= 6)
    with SegmentWriter(tmp_path / "bags") as w:
        w.write_table(live)
    out = tmp_path / "run.hdf5"
    segments_to_hdf5([tmp_path / "bags"], out, task="lift")
    with h5py.File(out) as f:
        for i in range(2):
            g = f[f"data/demo_{i}"]
            assert g["interventions"][()].tolist() == [False] * 6 + [True] * 4
            assert g["action_modes"].dtype == np.int8 and g["action_modes"][()].tolist() == [0] * 6 + [1] * 4
    hdf5_to_segments(out, tmp_path / "back")
    back, _ = load_segments(tmp_path / "back")
    np.testing.assert_array_equal(back.intervention, live.intervention)
    spec = task_obs_spec("lift")
    _, iv, lines = load_offline(str(out), [str(tmp_path / "back")], spec, ACT_DIM)
    assert len(iv["obs"]) == 16 and "8 intervention steps" in lines[0]
    # A Sirius-style file (action_modes only: -1 demo, 0 robot, 1 intervention) reads the same.
    with h5py.File(out, "a") as f:
        f["data"].attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for i in range(2):
            del f[f"data/demo_{i}/interventions"]
            f[f"data/demo_{i}/action_modes"][0] = -1
    flags = read_intervention_flags(out, ["demo_0", "demo_1"])
    assert flags.tolist() == ([False] * 6 + [True] * 4) * 2
