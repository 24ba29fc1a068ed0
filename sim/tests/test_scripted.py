"""Scripted demonstrators: proficient experts solve Lift, Can and Square; mixed styles fail on purpose;
everything is reproducible from the seed."""

import numpy as np
import pytest
from expo_sim.envs.episodes import episode_seeds, generate_demos, record_episode
from expo_sim.envs.scripted import DemoStyle, make_expert, sample_style


@pytest.mark.parametrize("task", ["lift", "can", "square"])
def test_proficient_expert_succeeds(env_cache, task):
    demos = list(generate_demos(env_cache(task), 3, "proficient", seed=11))
    assert [ep.success for ep in demos] == [True, True, True]
    for ep in demos:
        assert ep.rewards[-1] == 1.0 and ep.dones[-1] == 1 and ep.dones.sum() == 1
        assert len(ep) < (80 if task == "lift" else 250)  # far from the 400-step horizon
        assert np.all(np.abs(ep.actions) <= 1.0)


def test_demos_are_deterministic_given_the_seed(lift_env):
    a = next(generate_demos(lift_env, 1, "mixed", seed=5))
    b = next(generate_demos(lift_env, 1, "mixed", seed=5))
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.states, b.states)
    c = next(generate_demos(lift_env, 1, "mixed", seed=6))
    assert a.seed != c.seed


@pytest.mark.parametrize(
    "style",
    [
        DemoStyle("missed_grasp", noise_std=0.1, grasp_height_offset=0.06),
        DemoStyle("early_release", noise_std=0.1, early_release=True),
    ],
)
def test_failure_styles_fail(lift_env, style):
    env_seed, rng = episode_seeds(0, 0)
    ep = record_episode(lift_env, style, env_seed, rng)
    assert not ep.success
    assert ep.rewards.sum() == 0.0 and ep.dones.sum() == 0
    assert len(ep) < lift_env.horizon  # the operator gives up instead of idling to the horizon


def test_mixed_quality_draws_imperfect_styles():
    rng = np.random.default_rng(0)
    styles = [sample_style("mixed", rng) for _ in range(400)]
    names = {s.name for s in styles}
    assert names == {"clean", "hesitant", "noisy", "missed_grasp", "early_release"}
    failing = np.mean([s.intends_failure for s in styles])
    assert 0.2 < failing < 0.4
    assert all(sample_style("proficient", rng).name == "clean" for _ in range(20))
    with pytest.raises(ValueError, match="quality"):
        sample_style("expert", rng)


def test_no_expert_for_unscripted_task(lift_env, monkeypatch):
    monkeypatch.setattr(lift_env, "task", "stack")  # MimicGen's tasks have their experts in expo_sim.mimicgen
    with pytest.raises(ValueError, match="available"):
        make_expert(lift_env, DemoStyle("clean"), np.random.default_rng(0))
