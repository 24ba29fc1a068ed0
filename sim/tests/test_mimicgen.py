"""MimicGen demonstrations (issue 17): the missing path (one line naming the setup step, whether
MimicGen is installed or not), the validation pass on a demo of known outcome, the source experts,
the generation config, and (slow) the whole pipeline into a file robomimic's SequenceDataset
reads. Tests that need MimicGen skip, with the reason, where it is not installed."""

import importlib.util
import json
import sys

import h5py
import numpy as np
import pytest
from expo_sim.cli import main
from expo_sim.envs.episodes import episode_seeds, record_episode
from expo_sim.envs.scripted import DemoStyle, sample_style
from expo_sim.mimicgen import available
from expo_sim.mimicgen.available import (
    SETUP_HINT,
    MimicGenMissing,
    mimicgen_installed,
    register_envs,
    require_mimicgen,
    robomimic_installed,
)
from expo_sim.mimicgen.validate import validate_demo

HAVE_MIMICGEN = mimicgen_installed() and robomimic_installed()
needs_mimicgen = pytest.mark.skipif(
    not HAVE_MIMICGEN, reason=f"MimicGen/robomimic not installed: {SETUP_HINT}"
)


@pytest.fixture
def without_mimicgen(monkeypatch):
    """This process as if robomimic and MimicGen were not installed."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in ("mimicgen", "robomimic"):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(available.importlib.util, "find_spec", find_spec)


# --------------------------------------------------------------------------- missing path
def test_missing_mimicgen_is_one_line_naming_the_setup_step(without_mimicgen):
    assert not mimicgen_installed() and not robomimic_installed()
    with pytest.raises(MimicGenMissing) as e:
        require_mimicgen("expo-sim demos --generator mimicgen")
    msg = str(e.value)
    assert "\n" not in msg and "make setup" in msg and "NVIDIA MimicGen and robomimic" in msg
    with pytest.raises(MimicGenMissing, match="task 'stack' needs NVIDIA MimicGen"):
        register_envs("task 'stack'")


def test_cli_without_mimicgen_exits_2_with_the_setup_step(without_mimicgen, tmp_path, capsys):
    out = tmp_path / "stack.hdf5"
    assert (
        main(["demos", "--task", "stack", "--generator", "mimicgen", "--episodes", "2", "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "make setup" in err and "non-commercial" in err
    assert not out.exists()


@pytest.mark.skipif(HAVE_MIMICGEN, reason="MimicGen is installed here: the real missing path cannot run")
def test_really_missing_mimicgen(tmp_path, capsys):
    """Where setup left MimicGen out (EXPO_SKIP_MIMICGEN=1), the same one line, for real."""
    out = tmp_path / "stack.hdf5"
    assert main(["demos", "--task", "threading", "--generator", "mimicgen", "--out", str(out)]) == 2
    assert "make setup" in capsys.readouterr().err


def test_pypi_mimicgen_is_not_nvidia_mimicgen(tmp_path, monkeypatch):
    """PyPI's unrelated package named mimicgen has no robosuite environments: counts as missing."""
    (tmp_path / "mimicgen").mkdir()
    (tmp_path / "mimicgen" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mimicgen", raising=False)
    importlib.invalidate_caches()
    assert not mimicgen_installed()


def test_cli_rejects_generator_task_mismatch(tmp_path):
    with pytest.raises(SystemExit) as exc:  # no scripted demonstrator for stack
        main(["demos", "--task", "stack", "--out", str(tmp_path / "x.hdf5")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:  # MimicGen generation is set up for stack and threading
        main(["demos", "--task", "lift", "--generator", "mimicgen", "--out", str(tmp_path / "x.hdf5")])
    assert exc.value.code == 2


# --------------------------------------------------------------------------- validation
def test_validation_recomputes_a_successful_demo(lift_env):
    """A scripted Lift demo (success known) replayed from its states: the same length, rewards and
    dones, next_obs = the following obs, observations as recorded."""
    env_seed, rng = episode_seeds(0, 0)
    ep = record_episode(lift_env, sample_style("proficient", rng), env_seed, rng)
    assert ep.success
    got, after_last, diff = validate_demo(lift_env, ep.states, ep.actions, ep.obs)
    # our demos stop at the success: only replaying the last action reaches it
    assert got is not None and after_last and len(got) == len(ep)
    assert 0.0 < diff < 0.02  # recorded in the step, one physics sub-step before the stored state
    np.testing.assert_array_equal(got.rewards, ep.rewards)
    np.testing.assert_array_equal(got.dones, ep.dones)
    np.testing.assert_array_equal(got.actions, ep.actions)
    for k in ("object", "robot0_eef_pos", "robot0_base_to_eef_pos", "robot0_joint_pos"):
        np.testing.assert_array_equal(got.next_obs[k][:-1], got.obs[k][1:])
        # recorded during the step: one 2 ms physics sub-step before the stored state
        np.testing.assert_allclose(got.obs[k], ep.obs[k], atol=0.02)
        np.testing.assert_allclose(got.next_obs[k][-1], ep.next_obs[k][-1], atol=0.02)

    # As MimicGen stores them: the success state and steps after it in the demo. The pass cuts at
    # the first success state, found among the states this time.
    lift_env.reset_to(ep.states[-1])
    lift_env.step(ep.actions[-1])
    states = np.concatenate([ep.states, lift_env.get_state()[None]])
    actions = np.concatenate([ep.actions, np.zeros((1, 7))])
    cut, after_last, _ = validate_demo(lift_env, states, actions)
    assert cut is not None and not after_last and len(cut) == len(ep)
    np.testing.assert_array_equal(cut.rewards, ep.rewards)


def test_validation_drops_a_demo_whose_success_does_not_hold(lift_env):
    env_seed, rng = episode_seeds(0, 1)
    ep = record_episode(
        lift_env, DemoStyle("missed_grasp", noise_std=0.05, grasp_height_offset=0.06), env_seed, rng
    )
    assert not ep.success
    got, _, _ = validate_demo(lift_env, ep.states, ep.actions)
    assert got is None


# --------------------------------------------------------------------------- with MimicGen
@needs_mimicgen
@pytest.mark.parametrize("task", ["stack", "threading"])
def test_source_experts_solve_their_task(task):
    from expo_sim.envs.robosuite_env import make_env
    from expo_sim.mimicgen.source import record_source_episode

    register_envs()
    env = make_env(task)
    try:
        for i in range(2):
            env_seed, rng = episode_seeds(7, i)
            ep = record_source_episode(env, sample_style("proficient", rng), env_seed, rng)
            assert ep.success and ep.rewards[-1] == 1.0 and ep.dones[-1] == 1, (task, i, len(ep))
            assert ep.obs["object"].shape[1] == {"stack": 23, "threading": 28}[task]
    finally:
        env.close()


@needs_mimicgen
def test_generation_config_is_mimicgens_template_with_our_settings(tmp_path):
    from expo_sim.mimicgen.generate import generation_config

    cfg = generation_config("threading", tmp_path / "src.hdf5", tmp_path, attempts=7, seed=3)
    gen = cfg["experiment"]["generation"]
    assert (gen["num_trials"], gen["guarantee"], gen["keep_failed"]) == (7, False, False)
    assert cfg["experiment"]["seed"] == 3 and cfg["experiment"]["render_video"] is False
    assert cfg["experiment"]["source"]["dataset_path"] == str(tmp_path / "src.hdf5")
    spec = cfg["task"]["task_spec"]
    assert spec["subtask_1"]["object_ref"] == "needle" and spec["subtask_2"]["object_ref"] == "tripod"
    with pytest.raises(ValueError, match="set up for"):
        generation_config("lift", tmp_path, tmp_path, 1, 0)


@needs_mimicgen
@pytest.mark.slow
def test_pipeline_writes_validated_demos_robomimic_reads(tmp_path, capsys):
    """expo-sim demos --generator mimicgen end to end (3 source demos, 4 trials): counts add up,
    the file has our layout with rewards/dones/next_obs, and robomimic's SequenceDataset reads it."""
    import robomimic.utils.obs_utils as ObsUtils
    from expo_core.spec import task_obs_spec
    from robomimic.utils.dataset import SequenceDataset

    out = tmp_path / "stack_mg.hdf5"
    args = ["demos", "--task", "stack", "--generator", "mimicgen", "--episodes", "4", "--source-demos", "3"]
    assert main([*args, "--seed", "1", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "stack mimicgen: kept" in line and "/4 attempted" in line
    summary = json.loads((tmp_path / "stack_mg_mimicgen" / "summary.json").read_text())
    assert summary["attempts"] == 4 and 1 <= summary["kept"] <= summary["generated"] <= 4
    with h5py.File(out, "r") as f:
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args["env_name"] == "Stack_D0"
        names = [n for n in f["data"] if n.startswith("demo_")]
        assert len(names) == summary["kept"]
        for n in names:
            g = f["data"][n]
            T = int(g.attrs["num_samples"])
            assert g["rewards"][-1] == 1.0 and g["dones"][-1] == 1 and g["rewards"][:-1].sum() == 0
            assert g["obs/object"].shape == (T, 23) and g["next_obs/object"].shape == (T, 23)
    spec = task_obs_spec("stack")
    ObsUtils.initialize_obs_utils_with_obs_specs({"obs": spec.modalities()})
    ds = SequenceDataset(
        hdf5_path=str(out),
        obs_keys=spec.names,
        dataset_keys=("actions", "rewards", "dones"),
        load_next_obs=True,
        frame_stack=1,
        seq_length=10,
        pad_frame_stack=True,
        pad_seq_length=True,
        get_pad_mask=False,
        goal_mode=None,
        hdf5_cache_mode="low_dim",
        hdf5_use_swmr=True,
        hdf5_normalize_obs=False,
        filter_by_attribute=None,
    )
    assert len(ds) == summary["samples"]
    assert ds[0]["obs"]["object"].shape == (10, 23) and ds[0]["actions"].shape == (10, 7)
