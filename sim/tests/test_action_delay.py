"""Actions taking effect late within their period (expo_sim.envs.action_delay): no delay is
bit-for-bit env.step; a delay keeps the previous command in effect for that long (measurably
less motion toward a new command); jitter draws within bounds, seeded; bad values are refused."""

from __future__ import annotations

import numpy as np
import pytest
from expo_sim.envs.action_delay import ActionDelay, check_delay, with_action_delay

PUSH_X = np.array([1.0, 0, 0, 0, 0, 0, -1.0])


def eef_x(env, obs) -> float:
    return float(obs[env.obs_spec.slices()["robot0_eef_pos"]][0])


def test_zero_delay_is_the_env_itself_and_bit_for_bit(lift_env) -> None:
    assert with_action_delay(lift_env, 0.0, 0.0) is lift_env
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1.0, 1.0, (5, 7))
    lift_env.reset(seed=3)
    reference = [lift_env.step(a) for a in actions]
    delayed = ActionDelay(lift_env, delay_ms=0.0)
    delayed.reset(seed=3)
    for a, ref in zip(actions, reference, strict=True):
        obs, reward, terminated, truncated, _ = delayed.step(a)
        np.testing.assert_array_equal(obs, ref[0])
        assert (reward, terminated, truncated) == ref[1:4]
    assert delayed.delays_ms == [0.0] * 5


def test_a_delay_keeps_the_previous_command_in_effect(lift_env) -> None:
    """From rest, one push in +x: with 40 ms of a 50 ms period still at rest, the arm moves far
    less in that period than without delay; the next period, both carry the push."""

    def first_moves(delay_ms: float) -> tuple[float, float]:
        env = with_action_delay(lift_env, delay_ms)
        obs, _ = env.reset(seed=4)
        x0 = eef_x(lift_env, obs)
        x1 = eef_x(lift_env, env.step(PUSH_X)[0])
        x2 = eef_x(lift_env, env.step(PUSH_X)[0])
        return x1 - x0, x2 - x1

    now, now_next = first_moves(0.0)
    late, late_next = first_moves(40.0)
    assert now > 2e-3  # the push moves the arm within its period
    assert late < 0.5 * now  # 40 of 50 ms still holding the reset pose
    assert late_next > 2e-3  # the push is in effect the whole next period


def test_anchored_delay_sets_the_goal_from_the_observed_pose(lift_env) -> None:
    """anchor=True: a late action's goal is the pose its observation reported plus the delta
    (0.05 m per unit action), not the pose when it takes effect plus the delta."""

    def second_goal(anchor: bool) -> tuple[np.ndarray, np.ndarray]:
        env = with_action_delay(lift_env, 40.0, anchor=anchor)
        env.reset(seed=6)
        obs = env.step(PUSH_X)[0]  # moving in +x when the next observation is taken
        observed = obs[lift_env.obs_spec.slices()["robot0_eef_pos"]]
        env.step(PUSH_X)
        return lift_env.robosuite_env.robots[0].controller.goal_pos.copy(), observed

    anchored, observed = second_goal(True)
    np.testing.assert_allclose(anchored, observed + PUSH_X[:3] * 0.05, atol=1e-6)
    plain, _ = second_goal(False)
    assert plain[0] - anchored[0] > 1e-3  # unanchored: the motion during the 40 ms is added


def test_jitter_is_seeded_and_bounded(lift_env) -> None:
    a = ActionDelay(lift_env, 30.0, 10.0, seed=7)
    b = ActionDelay(lift_env, 30.0, 10.0, seed=7)
    draws_a = [a.delay_steps() for _ in range(200)]
    assert draws_a == [b.delay_steps() for _ in range(200)]
    ms = np.array(draws_a) * 2.0  # robosuite's 2 ms MuJoCo step
    assert ms.min() >= 20.0 and ms.max() <= 40.0 and ms.std() > 3.0
    # a delay beyond the period is clipped to its last MuJoCo step
    assert ActionDelay(lift_env, 200.0).delay_steps() == 24


def test_attributes_pass_through(lift_env) -> None:
    env = ActionDelay(lift_env, 10.0)
    assert env.task == lift_env.task and env.obs_spec is lift_env.obs_spec
    assert env.robosuite_env is lift_env.robosuite_env


@pytest.mark.parametrize(
    ("delay", "jitter", "match"),
    [
        (-1.0, 0.0, "action_delay_ms"),
        (float("nan"), 0.0, "action_delay_ms"),
        (5000.0, 0.0, "action_delay_ms"),
        (10.0, -1.0, "action_jitter_ms"),
        (10.0, 20.0, "must not exceed"),
    ],
)
def test_bad_values_are_refused(delay, jitter, match) -> None:
    with pytest.raises(ValueError, match=match):
        check_delay(delay, jitter)


@pytest.mark.slow
def test_demos_and_training_run_with_a_delay(tmp_path) -> None:
    """expo-sim demos records the delay in expo_generator; expo-sim train runs and evaluates with
    it (base evaluation cached in a file of its own), refuses a resume with another delay and
    resumes a run.json written before the setting existed as a run without delay."""
    import json

    import h5py
    import torch
    from expo_sim.cli import main, train_main

    torch.set_num_threads(1)
    demos = tmp_path / "lift_delay.hdf5"
    argv = ["demos", "--task", "lift", "--episodes", "2", "--horizon", "60", "--out", str(demos)]
    assert main([*argv, "--action-delay-ms", "30", "--action-jitter-ms", "10"]) == 0
    with h5py.File(demos, "r") as f:
        generator = json.loads(f["data"].attrs["expo_generator"])
    assert (generator["action_delay_ms"], generator["action_jitter_ms"]) == (30.0, 10.0)
    assert main([*argv, "--overwrite", "--action-delay-ms", "5", "--action-jitter-ms", "9"]) == 2

    def train(out, steps, *extra):
        return train_main(
            ["--task", "lift", "--dataset", str(demos), "--algo", "expo", "--out", str(out),
             "--preset", "tiny", "--env-steps", str(steps), "--eval-every", "20", "--eval-episodes", "1",
             "--horizon", "20",
             "--pretrain-steps", "10", "--warmup-steps", "5", "--pretrain-dir", str(tmp_path / "pretrain"),
             "--no-progress", *extra]
        )  # fmt: skip

    delayed = tmp_path / "delayed"
    assert train(delayed, 20, "--action-delay-ms", "30", "--action-jitter-ms", "10") == 0
    run = json.loads((delayed / "run.json").read_text())
    assert (run["action_delay_ms"], run["action_jitter_ms"]) == (30.0, 10.0)
    assert list((tmp_path / "pretrain").glob("*.eval-n1-h20-d30j10.json"))
    assert train(delayed, 40, "--resume") == 2  # the delay is part of the run

    plain = tmp_path / "plain"
    assert train(plain, 20) == 0
    run = json.loads((plain / "run.json").read_text())
    del run["action_delay_ms"], run["action_jitter_ms"]  # as written before the setting existed
    (plain / "run.json").write_text(json.dumps(run))
    assert train(plain, 40, "--resume") == 0
