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


def test_an_anchored_command_sets_its_goal_from_the_anchor_pose(lift_env) -> None:
    """goal = anchor + delta: a command decided at pose P and taking effect after the arm moved
    on asks for P + delta; unanchored it asks for (the pose now) + delta."""
    push = np.array([1.0, 0, 0, 0, 0, 0.5, -1.0])  # +x and a yaw: position and orientation goals

    def goals(anchored: bool) -> tuple[np.ndarray, ...]:
        lift_env.reset(seed=2)
        physics = SubstepPhysics(lift_env, 5)
        run_period(physics, {0: PUSH_X})  # the arm is moving toward x + 5 cm
        pos, rot = physics.anchor_pose()  # the observation's pose
        run_period(physics, {})  # the decision is one period late: the arm moved on meanwhile
        now_pos, _ = physics.anchor_pose()
        physics.set_action(push, anchor=(pos, rot) if anchored else None)
        physics.chunk()
        ctrl = lift_env.robosuite_env.robots[0].controller
        return ctrl.goal_pos.copy(), ctrl.goal_ori.copy(), pos, rot, now_pos

    goal, ori, pos, rot, now_pos = goals(anchored=True)
    scale = np.array([0.05, 0.05, 0.05])  # OSC_POSE output_max for a unit position action
    assert np.linalg.norm(now_pos - pos) > 2e-3  # the arm did move between decision and effect
    np.testing.assert_allclose(goal, pos + push[:3] * scale, atol=1e-9)
    plain_goal, plain_ori, *_ = goals(anchored=False)
    np.testing.assert_allclose(plain_goal, now_pos + push[:3] * scale, atol=1e-3)
    assert np.linalg.norm(plain_goal - goal) > 2e-3
    # the orientation goal is the delta rotation applied to the anchor's rotation, not the current
    from robosuite.utils.control_utils import set_goal_orientation

    np.testing.assert_allclose(ori, set_goal_orientation(push[3:6] * 0.5, rot), atol=1e-9)
    assert not np.allclose(plain_ori, ori, atol=1e-6)


def test_an_anchor_at_the_current_pose_changes_nothing(lift_env) -> None:
    rng = np.random.default_rng(3)
    actions = rng.uniform(-1.0, 1.0, (4, 7))

    def observations(anchor: bool) -> list[np.ndarray]:
        lift_env.reset(seed=4)
        physics = SubstepPhysics(lift_env, 5)
        out = []
        for a in actions:
            # the kinematics the controller will read (an observation's pose is one MuJoCo step
            # older: robosuite computes observables before integrating)
            lift_env.robosuite_env.sim.forward()
            physics.set_action(a, anchor=physics.anchor_pose() if anchor else None)
            for _ in range(physics.chunks):
                res = physics.chunk()
            out.append(res[0])
        return out

    for a, b in zip(observations(True), observations(False), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9)
