"""The policy node with a scripted expert in place of the learned policy: a known-good controller
on the real ROS timing path (observation sync, acting on each observation, safety filter,
ActionCommand stamped with the observation it answers).

``python -m expo_sim.ros.expert_policy_node --ros-args -p task:=lift ...`` takes the policy
node's parameters (``policy.yaml``; ``checkpoint`` and ``backend`` are ignored) and decides with
:func:`expo_sim.envs.scripted.make_expert` (clean style: no noise, no pauses) instead of the
EXPO backend. The expert reads the robomimic observation dict; it is rebuilt from the node's
flattened observation vector (``task_obs_spec(task).unflatten`` plus ``<object>_pos`` /
``<object>_quat`` from the task's object vector, :func:`expo_ros.object_state.object_poses_from_vector`),
i.e. from exactly what arrived on ``joint_states``, ``ee_pose`` and ``object_poses``. The expert's
phase machine restarts whenever the node starts a new episode (a done feedback). Its env is
built once for the constants some experts read (bin and peg positions); it is never stepped.

Used by the realtime integration test (``sim/tests/test_realtime_expert.py``): a timing
regression on the ROS path shows as the expert failing where it succeeds when run directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from expo_core.spec import task_obs_spec
from expo_policy.backends.base import Decision
from expo_policy.inputs import ObservationInputs, Pieces
from expo_policy.obs_builder import ObservationBuilder
from expo_policy.params import PolicyNodeConfig
from expo_policy.policy_node import PolicyNode
from expo_ros.node_main import run_lifecycle_node
from expo_ros.object_state import TASK_OBJECT_LAYOUTS, object_poses_from_vector

from expo_sim.envs.robosuite_env import make_env
from expo_sim.envs.scripted import DemoStyle, make_expert

#: The expert's style on the ROS path and in the direct reference: deterministic.
CLEAN = DemoStyle(name="clean", noise_std=0.0)


def expert_obs_dict(task: str, flat: np.ndarray) -> dict[str, np.ndarray]:
    """The robomimic observation dict a scripted expert reads, from the flat observation."""
    obs = task_obs_spec(task).unflatten(np.asarray(flat, dtype=np.float64))
    positions, quats = object_poses_from_vector(task, obs["object"])
    for i, name in enumerate(TASK_OBJECT_LAYOUTS[task][1]):
        obs[f"{name}_pos"], obs[f"{name}_quat"] = positions[i], quats[i]
    return obs


class ExpertBackend:
    """Duck-types the parts of :class:`~expo_policy.backends.base.InferenceBackend` the control
    loop uses: ``decide`` (one candidate: the expert's action), ``num_base_samples``, ``name``,
    ``obs_spec``."""

    name = "scripted_expert"
    selection = ""
    num_base_samples = 1
    obs_spec = None  # a state policy (the node's pixel inputs are for pixel checkpoints)

    def __init__(self, task: str, seed: int) -> None:
        self.task = task
        self.env = make_env(task)
        self._seed = seed
        self.episodes = 0
        self.reset()

    def reset(self) -> None:
        """A new episode: the expert's phases start over."""
        rng = np.random.default_rng([self._seed, self.episodes])
        self.expert = make_expert(self.env, CLEAN, rng)
        self.episodes += 1

    def decide(self, obs: np.ndarray) -> Decision:
        action = self.expert.act(expert_obs_dict(self.task, obs)).astype(np.float32)
        return Decision(action=action, candidates=action[None], q=np.zeros(1, np.float32), index=0)

    def close(self) -> None:
        self.env.close()


class _NoWeights:
    """The expert has no weights: version 0, learner weights are ignored."""

    version = accepted = rejected = ignored = 0

    def offer(self, payload: Any) -> None:
        return None

    def poll(self) -> list:
        return []

    def close(self) -> None:
        pass


class ExpertPolicyNode(PolicyNode):
    """:class:`~expo_policy.policy_node.PolicyNode` deciding with :class:`ExpertBackend`."""

    def __init__(self, node_name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._expert_episode = 0

    def _load(self, cfg: PolicyNodeConfig) -> None:
        backend = ExpertBackend(cfg.task, cfg.seed)
        self.cfg, self.backend, self.weights = cfg, backend, _NoWeights()
        builder = ObservationBuilder(
            task_obs_spec(cfg.task),
            cfg.obs_max_age_s,
            cfg.obs_max_skew_s,
            cfg.finger_joint_names,
            cfg.finger_signs,
        )
        self._inputs = ObservationInputs(cfg.task, builder)
        self.get_logger().info(f"scripted {cfg.task} expert instead of a learned policy")

    def _control_step(self, pieces: Pieces, set_ns: int | None) -> None:
        if self._episode != self._expert_episode:  # a done feedback started a new episode
            self._expert_episode = self._episode
            self.backend.reset()
        super()._control_step(pieces, set_ns)

    def _destroy(self) -> None:
        if isinstance(self.backend, ExpertBackend):
            self.backend.close()
        super()._destroy()


def main(args: list[str] | None = None) -> None:
    run_lifecycle_node(ExpertPolicyNode, args)


if __name__ == "__main__":
    main()
