"""The training thread alone (no ROS): UTD bookkeeping, warm-up, degradation, checkpoints, resume."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from expo_core.checkpoint import load_checkpoint, save_checkpoint
from expo_learner.checkpoints import CheckpointDir, load_start
from expo_learner.replay_store import ReplayStore
from expo_learner.trainer import Trainer, TrainerConfig, UpdateBudget, WeightsSnapshot

OBS_DIM, ACT_DIM = 19, 7


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_trainer_modules_do_not_import_rclpy() -> None:
    mods = "expo_learner.trainer, expo_learner.learner_params, expo_learner.learner_stats"
    code = f"import sys, {mods}; sys.exit('rclpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_budget_warmup_backlog_and_skips() -> None:
    b = UpdateBudget(warmup=5, max_backlog=3)
    b.add(4)
    assert not b.warmed_up and b.backlog == 0 and not b.take()
    b.add(1)  # the 5th transition completes the warm-up: the first update is owed by the 6th
    assert b.warmed_up and b.backlog == 0
    b.add(2)
    assert (b.backlog, b.owed_total) == (2, 2)
    assert b.take() and b.take() and not b.take()
    b.add(10)  # faster than training: 3 wait, 7 are dropped
    assert (b.backlog, b.skipped, b.owed_total, b.done) == (3, 7, 12, 2)
    c = UpdateBudget(warmup=5, max_backlog=100, seen=3)
    c.add(4)  # straddles the warm-up: only the rows past it owe
    assert (c.seen, c.received, c.owed_total) == (7, 4, 2)
    reloaded = UpdateBudget(warmup=5, max_backlog=100, seen=50)  # reloaded rows owe nothing
    assert reloaded.warmed_up and reloaded.backlog == 0
    reloaded.add(1)
    assert reloaded.backlog == 1


def _trainer(tmp_path: Path, base: Path, clock=time.monotonic, **cfg) -> Trainer:
    ckpts = CheckpointDir(tmp_path / "ckpt", keep=2)
    start = load_start(ckpts, str(base))
    store = ReplayStore(OBS_DIM, ACT_DIM, 1000)
    defaults = dict(
        warmup_transitions=10, publish_every_updates=3, checkpoint_every_updates=4, stats_period_s=1e9
    )
    return Trainer(start, store, ckpts, TrainerConfig(**{**defaults, **cfg}), clock=clock)


def _receive(trainer: Trainer, make_table, n: int, start: int) -> None:
    trainer.store.add_table(make_table(n, start=start), reloaded=False)
    trainer.notify(n)


def test_utd_bookkeeping_and_publication_cadence(tmp_path: Path, base_checkpoint: Path, make_table) -> None:
    t = _trainer(tmp_path, base_checkpoint)
    published: list[WeightsSnapshot] = []
    t.on_weights = published.append
    _receive(t, make_table, 10, 0)  # exactly the warm-up: nothing owed yet
    assert not t.step() and t.updates == 0 and t.budget.warmed_up
    _receive(t, make_table, 7, 10)
    while t.step():
        pass
    assert t.updates == 7 and t.progress.critic_steps == 14  # utd 2 critic steps per update
    r = t.report()
    assert r.achieved_utd == pytest.approx(2.0) and r.achieved_utd_window == pytest.approx(2.0)
    assert r.env_steps_received == 17 and r.online_size == 17 and r.sources == {"sim_0": 17}
    assert {"critic_loss", "q_mean", "bc_loss", "alpha"} <= set(r.losses)
    assert [w.version for w in published] == [1, 2]  # every 3 updates
    assert published[-1].training_step == 12 and len(published[-1].sha256) == 64
    # Data faster than training: the backlog is capped, the rest skipped, the ratio reported.
    _receive(t, make_table, 40, 17)
    while t.step():
        pass
    r = t.report()
    assert (r.updates_skipped, r.backlog, t.updates) == (0, 0, 47)  # within max_update_backlog
    assert r.achieved_utd_window == pytest.approx(2.0) and r.env_steps_received == 57


def test_degrades_gracefully_and_reports_the_achieved_ratio(
    tmp_path: Path, base_checkpoint: Path, make_table
) -> None:
    t = _trainer(tmp_path, base_checkpoint, warmup_transitions=0, max_update_backlog=5)
    _receive(t, make_table, 40, 0)  # 40 owed at once, only 5 can wait
    while t.step():
        pass
    r = t.report()
    assert (t.updates, r.updates_skipped, r.backlog) == (5, 35, 0)
    assert r.achieved_utd == pytest.approx(2.0 * 5 / 40)
    assert r.achieved_utd_window == pytest.approx(2.0 * 5 / 40)
    assert "skipped 35" in r.line()


def test_timed_publication(tmp_path: Path, base_checkpoint: Path, make_table) -> None:
    now = [0.0]
    t = _trainer(
        tmp_path,
        base_checkpoint,
        lambda: now[0],
        warmup_transitions=0,
        publish_every_updates=1000,
        publish_every_s=5.0,
    )
    published: list[WeightsSnapshot] = []
    t.on_weights = published.append
    _receive(t, make_table, 1, 0)
    assert t.step() and not published
    now[0] = 6.0
    assert not t.step() and [w.version for w in published] == [1]  # time passed, one update since
    now[0] = 20.0
    assert not t.step() and len(published) == 1  # no update since: nothing new to publish


def test_checkpoint_and_resume_restore_updates_and_version(
    tmp_path: Path, base_checkpoint: Path, make_table
) -> None:
    t = _trainer(tmp_path, base_checkpoint, warmup_transitions=0)
    _receive(t, make_table, 10, 0)
    while t.step():
        pass
    assert t.updates == 10 and t.version == 3  # published at 3, 6, 9
    names = [p.name for p in t.checkpoints.list()]
    assert names == ["learner_000000004", "learner_000000008"]  # every 4, keep 2
    final = t.stop()  # not started: just the final checkpoint
    assert final.name == "learner_000000010" and len(t.checkpoints.list()) == 2
    assert t.stop() is None  # nothing changed since
    t.publish()  # v4 goes out after the last checkpoint: the version file remembers it
    want = t.agent.policy_state()

    again = load_start(CheckpointDir(tmp_path / "ckpt", keep=2), str(base_checkpoint), utd=3, batch_size=8)
    assert again.resumed and again.path.name == "learner_000000010"
    assert again.progress.critic_steps == 20 and again.progress.weights_version == 4
    assert (again.agent.cfg.utd, again.agent.cfg.batch_size) == (3, 8)  # learner-side overrides
    got = again.agent.policy_state()
    assert all(torch.equal(got[k], want[k]) for k in want)
    t2 = Trainer(again, t.store, CheckpointDir(tmp_path / "ckpt", keep=2), t.cfg)
    assert t2.updates == 10 and t2.publish().version == 5  # continues, never repeats a version
    _receive(t2, make_table, 1, 10)
    assert t2.step() and t2.updates == 11 and t2.progress.critic_steps == 23

    # the same checkpoint_dir with the base of another EXPO variant: refused, naming the fields
    base_agent, _ = load_checkpoint(base_checkpoint)
    base_agent.cfg = base_agent.cfg.replace(n_step=5, bc_rows="rewarded")
    save_checkpoint(tmp_path / "variant", base_agent)
    with pytest.raises(ValueError, match="another config .*bc_rows, n_step differ"):
        load_start(CheckpointDir(tmp_path / "ckpt", keep=2), str(tmp_path / "variant"), utd=3)


def test_resume_skips_a_damaged_checkpoint_and_base_errors(
    tmp_path: Path, base_checkpoint: Path, make_table
) -> None:
    t = _trainer(tmp_path, base_checkpoint, warmup_transitions=0, checkpoint_every_updates=2)
    _receive(t, make_table, 4, 0)
    while t.step():
        pass
    newest = t.checkpoints.list()[-1]
    newest.with_suffix(".safetensors").write_bytes(b"garbage")
    start = load_start(t.checkpoints, "")
    assert start.resumed and start.path.name == "learner_000000002"
    assert len(start.skipped) == 1 and "learner_000000004" in start.skipped[0]
    with pytest.raises(ValueError, match="parameter 'checkpoint' is empty"):
        load_start(CheckpointDir(tmp_path / "empty"), "")
    with pytest.raises(FileNotFoundError, match="parameter 'checkpoint'"):
        load_start(CheckpointDir(tmp_path / "empty"), str(tmp_path / "missing.safetensors"))
    fresh = load_start(CheckpointDir(tmp_path / "empty"), str(base_checkpoint) + ".safetensors")
    assert (
        not fresh.resumed and fresh.progress.weights_version == 0 and "starting from base" in fresh.describe()
    )


def test_thread_trains_off_the_caller_and_checkpoints_on_stop(
    tmp_path: Path, base_checkpoint: Path, make_table
) -> None:
    reports = []
    # a report after every update: on a fast machine 7 updates can take less than any period
    t = _trainer(tmp_path, base_checkpoint, warmup_transitions=5, stats_period_s=1e-6)
    t.on_stats = reports.append
    t.start()  # publishes v1 first
    assert t.version == 1 and t.running
    _receive(t, make_table, 12, 0)
    deadline = time.monotonic() + 30
    while t.updates < 7 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert t.updates == 7
    path = t.stop()
    assert not t.running and t.error is None and path.name == "learner_000000007"
    assert reports and reports[-1].updates <= 7 and reports[0].warmed_up


def test_a_rewarded_bc_checkpoint_trains_on_the_stores_labelled_rows(
    tmp_path: Path, tiny_config, make_table
) -> None:
    """ExpoConfig.bc_rows='rewarded' over ROS: the learner's store labels the rows it receives (here
    rows that do not chain, so each row is its own episode: labelled where rewarded) and the
    agent's updates read those labels."""
    from expo_core.agent import ExpoAgent
    from expo_core.checkpoint import save_checkpoint

    path = tmp_path / "base" / "rewarded_bc"
    save_checkpoint(path, ExpoAgent(tiny_config.replace(bc_rows="rewarded"), seed=0), {"note": "test"})
    t = _trainer(tmp_path, path, warmup_transitions=0)
    assert t.agent.cfg.bc_rows == "rewarded"
    _receive(t, make_table, 20, 0)
    for b in t.store.sample(3, 16, torch.Generator().manual_seed(0)):
        assert b.rewarded is not None and torch.equal(b.rewarded, (b.reward > 0).float())
    while t.step():
        pass
    assert t.updates == 20


def test_the_training_thread_yields_the_cpu_by_its_nice_increment(
    tmp_path: Path, base_checkpoint: Path, make_table
) -> None:
    import os
    import threading

    import pytest

    with pytest.raises(ValueError, match="TrainerConfig.nice: nice increment 20 is invalid"):
        TrainerConfig(nice=20)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    t = _trainer(tmp_path, base_checkpoint, warmup_transitions=5, nice=7)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while t.thread_nice is None and time.monotonic() < deadline:
            time.sleep(0.01)
        tid = next(th.native_id for th in threading.enumerate() if th.name == "expo-trainer")
        assert t.thread_nice == os.getpriority(os.PRIO_PROCESS, tid) == min(19, own + 7)
        _receive(t, make_table, 8, 0)  # it still trains
        while t.updates < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert t.updates == 3
    finally:
        t.stop(checkpoint=False)
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # the caller's thread is left as it was
