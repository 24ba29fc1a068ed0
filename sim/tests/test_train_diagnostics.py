"""The per-evaluation diagnostics of issue 14: Q of the chosen actions against Monte-Carlo
returns, the share of edited candidates, the learners' decisions, the cached evaluation of a
pretrained base, the metrics file's migration to new columns and the run-directory lock."""

import csv
import math
import os

import numpy as np
import pytest
import torch
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.presets import preset_config
from expo_sim.train.evaluation import Decision, EvalResult, evaluate
from expo_sim.train.harness import _lock_run_dir, cached_base_evaluation
from expo_sim.train.learners import BCLearner, ExpoLearner, RLPDLearner
from expo_sim.train.rlpd import RLPDAgent, RLPDConfig
from expo_sim.train.run_log import COLUMNS, MetricsLog


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class ScriptedEnv:
    """Episode i (reset seed base + i) lasts lengths[i] steps; it succeeds (reward 1,
    terminated) on its last step if successes[i], else it is truncated with reward 0."""

    def __init__(self, lengths, successes, seed_base=1_000_000):
        self.lengths, self.successes, self.seed_base = lengths, successes, seed_base

    def reset(self, seed):
        self.i, self.t = seed - self.seed_base, 0
        return np.zeros(3, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        last = self.t == self.lengths[self.i]
        win = last and self.successes[self.i]
        obs = np.full(3, self.t, dtype=np.float32)
        return obs, float(win), win, last and not win, {"success": win}


def test_evaluate_compares_the_chosen_q_with_discounted_returns():
    env = ScriptedEnv(lengths=[3, 2], successes=[True, False])
    steps = iter([(0.5, 1.0), (0.6, 0.0), (0.7, 1.0), (0.1, 0.0), (0.2, 0.0)])

    def decide(obs):
        q, edited = next(steps)
        return Decision(np.zeros(7, dtype=np.float32), q, edited)

    res = evaluate(env, decide, episodes=2, gamma=0.5)
    # returns of episode 1: 0.25, 0.5, 1; of episode 2 (truncated): 0, 0
    assert res.eval_mc_return == pytest.approx((0.25 + 0.5 + 1.0) / 5)
    assert res.eval_q == pytest.approx((0.5 + 0.6 + 0.7 + 0.1 + 0.2) / 5)
    assert res.eval_q_bias == pytest.approx(res.eval_q - res.eval_mc_return)
    assert res.eval_edited_fraction == pytest.approx(2 / 5)
    assert (res.successes, res.mean_length) == (1, 2.5)


def test_evaluate_of_a_plain_action_policy_has_returns_but_no_q():
    env = ScriptedEnv(lengths=[2], successes=[True])
    res = evaluate(env, lambda obs: np.zeros(7, dtype=np.float32), episodes=1, gamma=0.9)
    assert res.eval_mc_return == pytest.approx((0.9 + 1.0) / 2)
    assert math.isnan(res.eval_q) and math.isnan(res.eval_edited_fraction) and math.isnan(res.eval_q_bias)


def _expo_agent(**changes):
    cfg = preset_config("tiny", 5, 3).replace(**changes)
    agent = ExpoAgent(cfg, seed=0)
    with torch.no_grad():  # critics that prefer edited candidates (the edit moves actions up)
        for p in agent.policy.critic.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return agent


def test_expo_learner_decision_is_the_deterministic_otf_choice_with_its_score():
    agent = _expo_agent()
    learner = ExpoLearner(agent)
    obs = np.linspace(-1, 1, 5).astype(np.float32)
    d = learner.decide(obs)
    ref = agent.decide(torch.as_tensor(obs)[None], deterministic=True)
    np.testing.assert_array_equal(d.action, ref.action[0].numpy())
    np.testing.assert_array_equal(d.action, agent.act(obs, deterministic=True))
    assert d.q == pytest.approx(ref.q[0, ref.index[0]].item())
    assert d.edited == float(ref.index[0].item() >= agent.cfg.num_samples)
    base = learner.base_decide(obs)
    np.testing.assert_array_equal(base.action, agent.base_act(obs, deterministic=True))
    assert math.isnan(base.q)
    assert BCLearner(agent).decide(obs).action.tolist() == base.action.tolist()


def test_bc_loss_on_online_data_is_the_base_loss_without_a_step():
    agent = _expo_agent()
    g = torch.Generator().manual_seed(0)
    b = Batch(
        torch.randn(32, 5, generator=g),
        torch.rand(32, 3, generator=g) * 2 - 1,
        torch.zeros(32),
        torch.randn(32, 5, generator=g),
        torch.zeros(32),
        torch.zeros(32),
    )
    before = [p.detach().clone() for p in agent.base.parameters()]
    loss = ExpoLearner(agent).bc_loss(b)
    assert loss == agent.evaluate_bc_loss(b) and np.isfinite(loss)
    assert all(torch.equal(a, p) for a, p in zip(before, agent.base.parameters()))


def test_rlpd_learner_decision_carries_the_critic_mean():
    cfg = RLPDConfig.from_expo(preset_config("tiny", 5, 3))
    agent = RLPDAgent(cfg, seed=0)
    obs = np.ones(5, dtype=np.float32)
    d = RLPDLearner(agent).decide(obs)
    np.testing.assert_array_equal(d.action, agent.act(obs, deterministic=True))
    assert d.q == pytest.approx(agent.q_value(obs, d.action)) and math.isnan(d.edited)


def _result(rate=0.5):
    return EvalResult(10, int(10 * rate), rate, 0.2, 0.8, rate, 100.0, eval_mc_return=0.3)


def test_base_evaluation_is_cached_per_base_file_and_settings(tmp_path):
    base = tmp_path / "base-lift.safetensors"
    base.write_bytes(b"weights")
    calls = []

    def run(rate):
        calls.append(rate)
        return _result(rate)

    first = cached_base_evaluation(base, 10, 400, 0.99, lambda: run(0.5))
    again = cached_base_evaluation(base, 10, 400, 0.99, lambda: run(0.9))
    assert calls == [0.5] and again == first and math.isnan(again.eval_q)
    cached_base_evaluation(base, 20, 400, 0.99, lambda: run(0.1))  # other episodes: evaluated
    assert calls == [0.5, 0.1]
    base.write_bytes(b"retrained")  # a new base file (new mtime): evaluated again
    os.utime(base, ns=(1, 1))
    assert cached_base_evaluation(base, 10, 400, 0.99, lambda: run(0.7)).success_rate == 0.7


def test_metrics_written_before_new_columns_are_migrated(tmp_path):
    path = tmp_path / "metrics.csv"
    old = [c for c in COLUMNS if not c.startswith("eval_q") and c not in ("bc_loss_online", "target_next_q")]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(old)
        w.writerow(["1000" if c == "env_steps" else "0.5" if c == "success_rate" else "" for c in old])
    log = MetricsLog(path)
    with open(path, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    (row,) = log.rows()
    assert row["env_steps"] == 1000 and row["success_rate"] == 0.5 and math.isnan(row["eval_q"])
    with open(path, "w", newline="") as f:
        csv.writer(f).writerow(["env_steps", "not_a_column"])
    with pytest.raises(ValueError, match="unexpected columns"):
        MetricsLog(path)


def test_a_run_directory_is_written_by_one_process_at_a_time(tmp_path):
    fd = _lock_run_dir(tmp_path)
    try:
        with pytest.raises(FileExistsError, match=r"being written by another process \(pid \d+\)"):
            _lock_run_dir(tmp_path)
    finally:
        os.close(fd)
    os.close(_lock_run_dir(tmp_path))  # free again
