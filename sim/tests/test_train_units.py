"""Pieces of the training harness that need no simulator: presets, Wilson intervals, the metrics
log, the pretraining cache, the learners' checkpoints and the run comparison."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from expo_core.presets import PRESETS, preset_config
from expo_sim.train.compare import load_run, markdown_table, plot_runs
from expo_sim.train.evaluation import wilson_interval
from expo_sim.train.learners import load_learner
from expo_sim.train.presets import ALGOS, algo_config, base_config, harness_defaults, same_pretraining
from expo_sim.train.pretrain import dataset_variant, load_pretrained, pretrain_base
from expo_sim.train.run_log import COLUMNS, MetricsLog, plot_learning_curve, write_json


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("algo", ALGOS)
def test_every_preset_and_algo_gives_a_valid_config(preset, algo):
    cfg = algo_config(algo, preset_config(preset, 19, 7))
    assert (cfg.obs_dim, cfg.act_dim) == (19, 7)
    assert cfg.use_editor == (not algo.endswith("no-edit"))
    assert cfg.max_q_backup == (algo != "expo-sarsa-backup")
    assert cfg.td_precision == ("bfloat16" if "bf16" in algo else "float32")
    assert cfg.critic_precision == ("bfloat16" if algo == "expo-ddim1-bf16-all" else "float32")
    assert cfg.editor_score == ("subset_min" if algo == "expo-pessimistic-editor" else "mean")
    assert cfg.n_step == (5 if algo.startswith("expo-n5") else 1)
    assert cfg.utd == preset_config(preset, 19, 7).utd * (2 if algo == "expo-n5-utd4" else 1)
    assert cfg.backup_edits == (algo != "expo-base-backup")
    assert cfg.bc_rows == ("rewarded" if "rewarded-bc" in algo else "all")
    preset_beta = preset_config(preset, 19, 7).editor.beta
    assert cfg.editor.beta == (0.05 if "beta05" in algo else preset_beta)
    unified = algo in ("expo-unified-scoring", "expo-n5-rewarded-bc-beta05-min")
    assert cfg.act_score == ("subset_min" if unified else preset_config(preset, 19, 7).act_score)
    if algo.startswith("expo-ddim1-bf16"):
        assert cfg.td_sampling_steps == 1 and cfg.target_sampler == "fast"
    preset_cfg = preset_config(preset, 19, 7)
    assert same_pretraining(preset_cfg, cfg)  # all variants share one pretrained base
    if algo.startswith("expo-ddim1-bf16"):  # the target sampler's steps are kept by base_config
        assert base_config(cfg) == preset_cfg.replace(td_sampling_steps=1)
    elif algo == "expo-n5-utd4":  # the UTD is kept by base_config too
        assert base_config(cfg) == preset_cfg.replace(utd=cfg.utd)
    elif "beta05" in algo:  # the editor's bound is kept by base_config
        assert base_config(cfg) == preset_cfg.replace(editor=cfg.editor)
    elif algo != "expo-double-q":  # (which also shrinks the critics' subset)
        assert base_config(cfg) == preset_cfg
    assert harness_defaults(preset).pretrain_steps > 0


def test_same_pretraining_ignores_what_pretraining_never_uses_and_nothing_else():
    cpu = preset_config("cpu", 19, 7)
    # the editor's bound scales its edits online; pretraining trains the base alone
    assert same_pretraining(cpu, cpu.replace(editor=replace(cpu.editor, beta=0.05)))
    assert same_pretraining(cpu, cpu.replace(critic=replace(cpu.critic, num_min=2), utd=4))
    # anything that shapes a weight or enters imitation needs its own base
    assert not same_pretraining(cpu, cpu.replace(editor=replace(cpu.editor, hidden_dims=(64,))))
    assert not same_pretraining(cpu, cpu.replace(critic=replace(cpu.critic, num_critics=4, num_min=4)))
    assert not same_pretraining(cpu, cpu.replace(diffusion=replace(cpu.diffusion, lr=1e-4)))


def test_variant_base_is_the_pretrained_base_under_the_variant_config(tmp_path):
    from expo_core.agent import ExpoAgent
    from expo_core.checkpoint import load_checkpoint, save_checkpoint
    from expo_sim.train.pretrain import variant_base

    cfg = preset_config("tiny", 19, 7)
    base = ExpoAgent(cfg, seed=3)
    base.set_obs_normalization(np.full(19, 0.5, np.float32), np.full(19, 2.0, np.float32))
    save_checkpoint(tmp_path / "base-lift", base)
    algo = "expo-n5-rewarded-bc-beta05-min"
    path = variant_base(tmp_path / "base-lift.safetensors", algo, cfg, seed=0)
    assert path == tmp_path / f"base-lift-{algo}.safetensors"
    agent, _ = load_checkpoint(path)
    assert agent.cfg == algo_config(algo, cfg) and agent.cfg != cfg
    want = base.state_dict()
    got = agent.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    with pytest.raises(ValueError, match="unknown algo"):
        variant_base(tmp_path / "base-lift.safetensors", "sac", cfg, seed=0)


def test_published_preset_is_the_expo_config_default():
    from expo_core.config import ExpoConfig

    assert preset_config("published", 19, 7) == ExpoConfig(obs_dim=19, act_dim=7)
    with pytest.raises(ValueError, match="unknown preset 'gpu'"):
        preset_config("gpu", 19, 7)
    with pytest.raises(ValueError, match="unknown algo 'sac'"):
        algo_config("sac", preset_config("cpu", 19, 7))


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] == pytest.approx(0.1611, abs=1e-4)
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] < 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_metrics_log_appends_reads_and_truncates(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    for step in (0, 100, 200):
        log.append({"env_steps": step, "success_rate": step / 400, "alpha": 0.1})
    rows = log.rows()
    assert [r["env_steps"] for r in rows] == [0, 100, 200]
    assert math.isnan(rows[0]["editor_loss"]) and rows[2]["success_rate"] == 0.5
    assert log.truncate_after(100) == 1
    assert [r["env_steps"] for r in MetricsLog(tmp_path / "metrics.csv").rows()] == [0, 100]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    with pytest.raises(KeyError, match="bogus"):
        log.append({"env_steps": 300, "bogus": 1.0})
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="unexpected columns"):
        MetricsLog(tmp_path / "other.csv")


def test_pretrain_is_cached_by_its_inputs(tmp_path, synthetic_lift_hdf5, caplog):
    data = synthetic_lift_hdf5()
    cfg = preset_config("tiny", 19, 7)
    out = pretrain_base(data, "lift", cfg, 3, 0, tmp_path / "base", progress=False)
    assert out == tmp_path / "base.safetensors" and out.exists()
    meta = json.loads(out.with_suffix(".json").read_text())["metadata"]["pretrain"]
    assert meta["steps"] == 3 and meta["num_demos"] == 3 and len(meta["dataset_sha256"]) == 64
    stamp = out.stat().st_mtime_ns
    assert pretrain_base(data, "lift", cfg, 3, 0, tmp_path / "base", progress=False) == out
    assert out.stat().st_mtime_ns == stamp  # cache hit: not retrained
    # another dataset file, same settings: the first base stays, the second goes beside it
    other = tmp_path / "other.hdf5"
    other.write_bytes(data.read_bytes() + b"\0")  # hdf5 ignores trailing bytes; another file and hash
    second = pretrain_base(other, "lift", cfg, 3, 0, tmp_path / "base", progress=False)
    assert second == dataset_variant(out, other) and second != out and second.exists()
    assert out.stat().st_mtime_ns == stamp
    second_stamp = second.stat().st_mtime_ns
    assert pretrain_base(data, "lift", cfg, 3, 0, tmp_path / "base", progress=False) == out
    assert pretrain_base(other, "lift", cfg, 3, 0, tmp_path / "base", progress=False) == second
    assert (out.stat().st_mtime_ns, second.stat().st_mtime_ns) == (stamp, second_stamp)
    data.write_bytes(data.read_bytes() + b"\0\0")  # the same file, changed: its old base stays too
    third = pretrain_base(data, "lift", cfg, 3, 0, tmp_path / "base", progress=False)
    assert third == dataset_variant(out, data) not in (out, second) and out.stat().st_mtime_ns == stamp
    pretrain_base(data, "lift", cfg, 4, 0, tmp_path / "base", progress=False)
    assert out.stat().st_mtime_ns != stamp  # different steps: retrained
    # the pretrained agent: data normalization set, ablation switches may differ
    agent = load_pretrained(out, algo_config("expo-no-edit", cfg), seed=0)
    assert not agent.cfg.use_editor and agent.policy.normalizer.std.min() > 0.5
    with pytest.raises(ValueError, match="different config"):
        load_pretrained(out, cfg.replace(batch_size=cfg.batch_size + 1), seed=0)
    assert load_pretrained(out, cfg.replace(utd=3), seed=0).cfg.utd == 3  # the UTD shapes no weight


def test_pretrain_rejects_bad_inputs(tmp_path, synthetic_lift_hdf5):
    cfg = preset_config("tiny", 19, 7)
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        pretrain_base(tmp_path / "nope.hdf5", "lift", cfg, 1, 0, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="unknown task"):
        pretrain_base(synthetic_lift_hdf5(), "lfit", cfg, 1, 0, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="obs/act dims"):
        pretrain_base(synthetic_lift_hdf5(), "can", cfg, 1, 0, tmp_path / "b", progress=False)
    bad = synthetic_lift_hdf5(tmp_path / "bad.hdf5", drop_key="object")
    with pytest.raises(KeyError, match="missing observation key 'obs/object'"):
        pretrain_base(bad, "lift", cfg, 1, 0, tmp_path / "b", progress=False)


def test_bc_learner_acts_with_the_base_alone(tmp_path, synthetic_lift_hdf5):
    cfg = preset_config("tiny", 19, 7)
    path = pretrain_base(synthetic_lift_hdf5(), "lift", cfg, 2, 0, tmp_path / "base", progress=False)
    bc, _ = load_learner("bc", path)
    expo, _ = load_learner("expo", path)
    obs = np.zeros(19, dtype=np.float32)
    a = bc.act(obs, deterministic=True)
    np.testing.assert_array_equal(a, bc.act(obs, deterministic=True))
    assert a.shape == (7,) and not bc.learns and expo.learns
    x = bc.agent.policy.normalizer(torch.as_tensor(obs)[None])
    gen = torch.Generator().manual_seed(12345)
    np.testing.assert_array_equal(a, bc.agent.policy.base.sample(x, 1, gen)[0, 0].detach().numpy())


def _fake_run(path, algo, successes):
    path.mkdir()
    log = MetricsLog(path / "metrics.csv")
    for i, s in enumerate(successes):
        lo, hi = wilson_interval(int(s * 10), 10)
        log.append(
            {
                "env_steps": i * 100,
                "success_rate": s,
                "success_ci_low": lo,
                "success_ci_high": hi,
                "wall_time_s": 60,
            }
        )
    write_json(path / "summary.json", {"algo": algo, "seed": 0, "timing": {"wall_time_s": 120.0}})
    plot_learning_curve(log.rows(), path / "learning_curve.png", algo)
    return path


def test_compare_plots_runs_and_tabulates_them(tmp_path):
    runs = [
        load_run(_fake_run(tmp_path / "a", "expo", [0.3, 0.6, 0.8])),
        load_run(_fake_run(tmp_path / "b", "bc", [0.4])),
    ]
    plot_runs(runs, tmp_path / "cmp" / "plot.png")
    assert (tmp_path / "cmp" / "plot.png").stat().st_size > 1000
    assert (tmp_path / "a" / "learning_curve.png").stat().st_size > 1000
    table = markdown_table(runs).splitlines()
    assert len(table) == 4
    assert "| a | expo | 0 | 0.80 [" in table[2] and "| 0.80 (200) | 200 | 2.0 min |" in table[2]
    assert "| b | bc | 0 | 0.40 [" in table[3]
    with pytest.raises(FileNotFoundError, match="not a training run"):
        load_run(tmp_path / "cmp")
