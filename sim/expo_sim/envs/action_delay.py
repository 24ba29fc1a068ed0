"""Actions that take effect late within their control period: latency randomization for
demonstrations and offline online-learning, in lockstep. Pure simulation, no ROS.

On the arm a decision lands some milliseconds after the observation it answers; until then the
controller keeps the previous goal. :class:`ActionDelay` models that inside one 20 Hz period:
each ``step(action)`` runs the period's 25 MuJoCo steps with the previous command in effect for
the first ``d`` ms and ``action`` for the rest, ``d`` drawn uniformly from
``[delay_ms - jitter_ms, delay_ms + jitter_ms]`` (seeded) and rounded to the 2 ms MuJoCo step.
``d`` is clipped to ``[0, period - 2 ms]``: an action always takes effect within its own period
(a later one is the realtime sim bridge's business: ``injected_latency_ms``, where commands
older than ``max_action_age_ms`` are dropped). With ``d = 0`` a step is bit-for-bit
``env.step`` (:class:`~expo_sim.envs.substep_physics.SubstepPhysics` with one MuJoCo step per
chunk).

``anchor=True`` applies each late action's pose delta to the pose its observation reported
(:func:`~expo_sim.envs.substep_physics.anchored_goal`), as an executor that remembers the pose of
the observation a command answers does; without it robosuite's rule applies the delta to the
pose at the moment the action takes effect, so the motion made meanwhile is added to the goal.

Uses: ``expo-sim demos --action-delay-ms 30 --action-jitter-ms 10`` records demonstrations whose
actions were chosen for, and executed with, that latency; ``expo-sim train --action-delay-ms``
runs the harness's online episodes (and evaluations) the same way. The wrapper forwards every
other attribute to the env, so code written for :class:`RobomimicEnv` takes it unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from expo_sim.envs.substep_physics import StepOutput, SubstepPhysics

#: Largest accepted delay or jitter [ms] (a 20 Hz period is 50 ms; more is a typo).
MAX_MS = 1000.0


def check_delay(delay_ms: float, jitter_ms: float) -> tuple[float, float]:
    """The two values as floats; ValueError naming the bad one (negative, not finite, > MAX_MS,
    or a jitter larger than the delay it varies)."""
    out = []
    for name, value in (("action_delay_ms", delay_ms), ("action_jitter_ms", jitter_ms)):
        v = float(value)
        if not np.isfinite(v) or not 0.0 <= v <= MAX_MS:
            raise ValueError(f"{name} must be in [0, {MAX_MS:g}] ms, got {value!r}")
        out.append(v)
    if out[1] > out[0]:
        raise ValueError(f"action_jitter_ms ({out[1]:g}) must not exceed action_delay_ms ({out[0]:g})")
    return out[0], out[1]


class ActionDelay:
    """``env`` (a :class:`~expo_sim.envs.robosuite_env.RobomimicEnv`) whose actions take effect
    ``delay_ms +- jitter_ms`` into their period; see the module docstring.

    Attributes:
        delays_ms: the delay applied at each step since construction (for diagnostics/tests).
    """

    def __init__(
        self, env: Any, delay_ms: float, jitter_ms: float = 0.0, seed: int = 0, anchor: bool = False
    ) -> None:
        self.delay_ms, self.jitter_ms = check_delay(delay_ms, jitter_ms)
        self.anchor = bool(anchor)
        rs = env.robosuite_env
        self._step_ms = rs.model_timestep * 1e3
        self._steps = round(rs.control_timestep / rs.model_timestep)
        self.env = env
        self.physics = SubstepPhysics(env, chunks=self._steps)  # one MuJoCo step per chunk
        self._rng = np.random.default_rng([int(seed), 0xDE1A7])  # a stream of its own
        self.delays_ms: list[float] = []

    def __getattr__(self, name: str) -> Any:  # everything but reset/step: the env's own
        if name == "env":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        out = self.env.reset(*args, **kwargs)
        self.physics.reset()  # the controller holds the reset pose until the first command
        return out

    def delay_steps(self) -> int:
        """MuJoCo steps (2 ms) the next action waits, drawn as the module docstring says."""
        d = self.delay_ms
        if self.jitter_ms:
            d += self._rng.uniform(-self.jitter_ms, self.jitter_ms)
        return int(np.clip(round(d / self._step_ms), 0, self._steps - 1))

    def step(self, action: np.ndarray) -> StepOutput:
        """One control period: the previous command for the drawn delay, then ``action``."""
        wait = self.delay_steps()
        self.delays_ms.append(wait * self._step_ms)
        pose = self.physics.anchor_pose() if self.anchor else None  # the observation's pose
        out = None
        for i in range(self._steps):
            if i == wait:
                self.physics.set_action(action, anchor=pose)
            out = self.physics.chunk()
        assert out is not None  # the period's last chunk returns env.step's output
        return out


def with_action_delay(
    env: Any, delay_ms: float = 0.0, jitter_ms: float = 0.0, seed: int = 0, anchor: bool = False
) -> Any:
    """``env`` itself when both are 0 (values checked either way), else :class:`ActionDelay`."""
    delay_ms, jitter_ms = check_delay(delay_ms, jitter_ms)
    if delay_ms == 0.0:
        return env
    return ActionDelay(env, delay_ms, jitter_ms, seed, anchor)
