"""Sub-stepped control periods (expo_sim.envs.substep_physics): bit-for-bit env.step when the
command is set at the period start; a command set mid-period moves the arm less in that period;
without a new command the controller keeps its goal."""

from __future__ import annotations

import numpy as np
import pytest
from expo_sim.envs.substep_physics import SubstepPhysics

PUSH_X = np.array([1.0, 0, 0, 0, 0, 0, -1.0])


def run_period(physics: SubstepPhysics, at_chunk: dict[int, np.ndarray]) -> tuple:
    """One period, setting ``at_chunk[i]`` before chunk ``i``; returns env.step's output."""
    out = None
    for i in range(physics.chunks):
        if i in at_chunk:
            physics.set_action(at_chunk[i])
        out = physics.chunk()
        assert (out is None) == (i < physics.chunks - 1)
    return out


def test_period_start_commands_reproduce_env_step_exactly(lift_env) -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.0, 1.0, (6, 7))
    lift_env.reset(seed=5)
    reference = [lift_env.step(a) for a in actions]
    lift_env.reset(seed=5)
    physics = SubstepPhysics(lift_env, 5)
    for a, (obs, reward, terminated, truncated, info) in zip(actions, reference, strict=True):
        o, r, te, tr, i = run_period(physics, {0: a})
        np.testing.assert_array_equal(o, obs)
        assert (r, te, tr, i["t"]) == (reward, terminated, truncated, info["t"])
        np.testing.assert_array_equal(i["action"], info["action"])
    pos, quat = physics.ee_pose()
    np.testing.assert_allclose(pos, i["obs_dict"]["robot0_eef_pos"])
    np.testing.assert_allclose(quat, i["obs_dict"]["robot0_eef_quat"])


def test_a_late_command_moves_less_in_its_period_and_the_goal_is_kept_after(lift_env) -> None:
    def x_after(at_chunk: dict[int, np.ndarray], periods: int = 1) -> float:
        lift_env.reset(seed=1)
        physics = SubstepPhysics(lift_env, 5)
        x0 = physics.ee_pose()[0][0]
        for p in range(periods):
            run_period(physics, at_chunk if p == 0 else {})
        return physics.ee_pose()[0][0] - x0

    on_time, late = x_after({0: PUSH_X}), x_after({3: PUSH_X})
    assert on_time > late > 0.0
    # No new command for two more periods: the controller keeps pulling toward the goal (x + 5 cm
    # when it was set; robosuite's OSC covers ~5 mm of it per period), as an impedance controller
    # keeps its equilibrium: the arm goes on moving, it does not stop.
    kept = x_after({0: PUSH_X}, periods=3)
    assert 2.0 * on_time < kept < 0.05


def test_chunks_must_divide_the_period(lift_env) -> None:
    with pytest.raises(ValueError, match="one of \\[1, 5, 25\\]"):
        SubstepPhysics(lift_env, 4)
