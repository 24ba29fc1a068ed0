"""Action chunks in the harness (issue 19, item 4): the pretraining cache keeps k = 1 and k > 1
bases apart, demo chunks stop at demo ends, evaluations run plans open-loop for --execute-steps."""

import hashlib
import json

import numpy as np
import pytest
import torch
from expo_core.agent import ExpoAgent
from expo_core.checkpoint import save_checkpoint
from expo_core.config import DiffusionConfig
from expo_core.presets import preset_config
from expo_core.robomimic_io import load_robomimic_hdf5
from expo_core.spec import task_obs_spec
from expo_sim.cli import main
from expo_sim.train.evaluation import Decision, evaluate
from expo_sim.train.harness import TrainConfig, cached_base_evaluation
from expo_sim.train.learners import ExpoLearner
from expo_sim.train.presets import base_config
from expo_sim.train.pretrain import load_pretrained, preset_base


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _chunked(cfg, k):
    d = cfg.diffusion
    return cfg.replace(diffusion=DiffusionConfig(**(d.__dict__ | {"chunk_len": k})))


def test_k1_cache_name_is_unchanged_and_k4_gets_its_own(tmp_path, synthetic_lift_hdf5):
    # the cpu preset's lift base was cached as base-lift-cpu-s0-p20000-16d42452bd before chunks
    digest = hashlib.sha256(base_config(preset_config("cpu", 19, 7)).to_json().encode()).hexdigest()[:10]
    assert digest == "16d42452bd"
    data = synthetic_lift_hdf5()
    cfg = preset_config("tiny", 19, 7)
    k1 = preset_base(data, "lift", cfg, "tiny", 3, 0, tmp_path, progress=False)
    stamp = k1.stat().st_mtime_ns
    k4 = preset_base(data, "lift", _chunked(cfg, 4), "tiny", 3, 0, tmp_path, progress=False)
    assert k4 != k1 and k4.exists() and k1.stat().st_mtime_ns == stamp  # never overwritten
    assert preset_base(data, "lift", cfg, "tiny", 3, 0, tmp_path, progress=False) == k1
    assert k1.stat().st_mtime_ns == stamp  # and k = 1 is still a cache hit
    assert load_pretrained(k4, _chunked(cfg, 4), 0).cfg.diffusion.chunk_len == 4
    with pytest.raises(ValueError, match="different config"):
        load_pretrained(k4, cfg, 0)  # a k = 4 base is never loaded as the k = 1 base


def test_demo_chunks_stop_at_demo_ends(synthetic_lift_hdf5):
    data = load_robomimic_hdf5(synthetic_lift_hdf5(demos=3, steps=12), task_obs_spec("lift"))
    t = data.transitions(4)
    chunk, mask = t["action_chunk"], t["chunk_mask"]
    assert chunk.shape == (36, 4, 7)
    ends = [11, 23, 35]  # the last row of each demo
    for e in ends:
        assert mask[e].tolist() == [1, 0, 0, 0] and mask[e - 2].tolist() == [1, 1, 1, 0]
    np.testing.assert_array_equal(chunk[10, 1], data.action[11])
    assert not chunk[11, 1:].any()  # not the next demo's first actions
    assert mask[:9].all()


class _RecordingEnv:
    """A stand-in env: records the actions applied; observations count the steps."""

    def __init__(self, length=7):
        self.length, self.applied = length, []

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.applied.append(np.asarray(action).copy())
        self.t += 1
        done = self.t >= self.length
        return np.full(1, self.t, np.float32), 0.0, False, done, {"success": False, "action": action}


def test_execute_steps_applies_the_plan_open_loop():
    seen = []

    def act(obs):  # action = 10 * step of the observation, plan = the next ones + 0.1, 0.2, 0.3
        seen.append(float(obs[0]))
        a = np.array([10.0 * obs[0]])
        return Decision(a, plan=a[None] + np.array([[0.1], [0.2], [0.3]]))

    env = _RecordingEnv(7)
    evaluate(env, act, 1, execute_steps=3)
    assert seen == [0.0, 3.0, 6.0]  # decided every third step
    applied = [float(a[0]) for a in env.applied]
    assert applied == pytest.approx([0, 0.1, 0.2, 30, 30.1, 30.2, 60])  # the episode ends mid-plan
    env = _RecordingEnv(3)
    seen.clear()
    evaluate(env, act, 1)  # execute_steps 1: every step decided, the plan unused
    assert seen == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="needs plans of >= 4 actions"):
        evaluate(_RecordingEnv(3), act, 1, execute_steps=5)
    with pytest.raises(ValueError, match="needs plans"):
        evaluate(_RecordingEnv(3), lambda o: np.zeros(1), 1, execute_steps=2)


def test_learner_decisions_carry_the_plan():
    agent = ExpoAgent(_chunked(preset_config("tiny", 19, 7), 3), seed=0)
    learner = ExpoLearner(agent)
    obs = np.linspace(-1, 1, 19).astype(np.float32)
    d = learner.decide(obs)
    assert d.plan.shape == (2, 7)
    b = learner.base_decide(obs)
    chunk = agent.base_act_chunk(obs, deterministic=True)
    np.testing.assert_array_equal(b.action, chunk[0])
    np.testing.assert_array_equal(b.plan, chunk[1:])
    np.testing.assert_array_equal(b.action, agent.base_act(obs, deterministic=True))
    assert ExpoLearner(ExpoAgent(preset_config("tiny", 19, 7), seed=0)).decide(obs).plan is None


def test_train_config_validates_chunk_options():
    TrainConfig(task="lift", dataset="d.hdf5", out="run", chunk_len=4, execute_steps=4)
    with pytest.raises(ValueError, match="chunk_len=0"):
        TrainConfig(task="lift", dataset="d.hdf5", out="run", chunk_len=0)
    with pytest.raises(ValueError, match="execute_steps=2 is invalid; allowed: <= chunk_len=1"):
        TrainConfig(task="lift", dataset="d.hdf5", out="run", execute_steps=2)
    with pytest.raises(ValueError, match="algo 'rlpd'"):
        TrainConfig(task="lift", dataset="d.hdf5", out="run", algo="rlpd", chunk_len=2)


def test_cached_base_evaluation_is_kept_per_execute_steps(tmp_path):
    from expo_sim.train.evaluation import EvalResult

    base = tmp_path / "base.safetensors"
    base.write_bytes(b"x")
    calls = []

    def run(rate):
        def go():
            calls.append(rate)
            return EvalResult(2, int(2 * rate), rate, 0.0, 1.0, rate, 5.0)

        return go

    assert cached_base_evaluation(base, 2, 5, 0.99, run(0.5)).success_rate == 0.5
    assert cached_base_evaluation(base, 2, 5, 0.99, run(1.0), execute_steps=2).success_rate == 1.0
    assert cached_base_evaluation(base, 2, 5, 0.99, run(0.0)).success_rate == 0.5  # cached
    assert calls == [0.5, 1.0]
    assert (tmp_path / "base.eval-n2-h5-x2.json").exists()


def test_evaluate_cli_execute_steps(tmp_path, capsys):
    ckpt = tmp_path / "k2"
    save_checkpoint(ckpt, ExpoAgent(_chunked(preset_config("tiny", 19, 7), 2), seed=0))
    out = tmp_path / "eval.json"
    args = ["evaluate", str(ckpt), "--episodes", "1", "--horizon", "6", "--out", str(out), "--base-only"]
    assert main([*args, "--execute-steps", "2"]) == 0
    result = json.loads(out.read_text())
    assert (result["chunk_len"], result["execute_steps"]) == (2, 2)
    assert "2 steps per decision" in capsys.readouterr().out
    assert main([*args, "--execute-steps", "3"]) == 2
    assert "allowed 1..2" in capsys.readouterr().err
