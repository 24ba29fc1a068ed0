"""One small interface over the algorithms the harness compares.

A learner acts (``act(obs, deterministic)``: numpy (o,) -> (d,)), decides for evaluation
(``decide(obs)`` -> :class:`~expo_sim.train.evaluation.Decision`: the deterministic action with
the learner's Q of it), learns one env step at a time (``update(batch_iter)`` -> flat float
stats) and saves/loads itself as safetensors + JSON. ``learns`` is False for ``bc``: the harness
then evaluates it once and skips the online phase.

``expo`` and its variants act with the OTF policy of :class:`expo_core.agent.ExpoAgent`; ``bc``
acts with one sample of the same agent's EMA base (the imitation policy alone); ``rlpd`` is
:class:`expo_sim.train.rlpd.RLPDAgent`. Deterministic acting (evaluation) is a function of the
observation alone: editor/actor means, base noise from a fixed seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from expo_core.agent import ExpoAgent
from expo_core.batch import Batch
from expo_core.checkpoint import load_checkpoint, save_checkpoint
from expo_core.otf import edited_fraction

from expo_sim.train.evaluation import Decision
from expo_sim.train.presets import check_algo
from expo_sim.train.rlpd import RLPDAgent, load_rlpd, save_rlpd


class ExpoLearner:
    """EXPO (or a variant, as its config says): OTF acting, ExpoAgent.update."""

    learns = True

    def __init__(self, agent: ExpoAgent) -> None:
        self.agent = agent

    @property
    def gamma(self) -> float:
        return self.agent.cfg.gamma

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.agent.act(obs, deterministic)

    def decide(self, obs: np.ndarray, deterministic: bool = True) -> Decision:
        """The OTF decision, the score it was chosen on (the acting critics' Q by ``act_score``)
        and whether an edited candidate won. deterministic: the editor's mean edit (evaluation);
        False samples the edits as in training (the stochastic OTF policy)."""
        res = self.agent.decide(
            torch.as_tensor(np.asarray(obs, dtype=np.float32))[None], deterministic=deterministic
        )
        edited = edited_fraction(res.index, self.agent.cfg.num_samples)
        plan = None if res.plan is None else res.plan[0].cpu().numpy()
        return Decision(res.action[0].cpu().numpy(), float(res.chosen_q[0]), edited, plan)

    def base_decide(self, obs: np.ndarray) -> Decision:
        """The pretrained base alone (one deterministic EMA-base sample): the step-0 policy.
        With action chunks the sample's tail is the plan."""
        if self.agent.cfg.diffusion.chunk_len == 1:
            return Decision(self.agent.base_act(obs, deterministic=True))
        chunk = self.agent.base_act_chunk(obs, deterministic=True)
        return Decision(chunk[0], plan=chunk[1:])

    def bc_loss(self, batch: Batch) -> float:
        """The online base's imitation loss on ``batch`` (fixed noise, no training step)."""
        return self.agent.evaluate_bc_loss(batch)

    def update(self, batch_iter: Iterator[Batch]) -> dict[str, float]:
        return self.agent.update(batch_iter)

    def config_dict(self) -> dict[str, Any]:
        return self.agent.cfg.to_dict()

    def save(self, path: Path, metadata: dict[str, Any]) -> None:
        save_checkpoint(path, self.agent, metadata)


class BCLearner(ExpoLearner):
    """The pretrained diffusion base alone: one EMA-base sample per step, no online learning."""

    learns = False

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.agent.base_act(obs, deterministic)

    def decide(self, obs: np.ndarray) -> Decision:
        return self.base_decide(obs)

    def update(self, batch_iter: Iterator[Batch]) -> dict[str, float]:
        raise RuntimeError("the bc baseline does not learn online")


class RLPDLearner:
    learns = True

    def __init__(self, agent: RLPDAgent) -> None:
        self.agent = agent

    @property
    def gamma(self) -> float:
        return self.agent.cfg.gamma

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.agent.act(obs, deterministic)

    def decide(self, obs: np.ndarray) -> Decision:
        """tanh(mean) of the actor and the ensemble-mean Q of it (what the actor maximizes)."""
        action = self.agent.act(obs, deterministic=True)
        return Decision(action, self.agent.q_value(obs, action))

    def base_decide(self, obs: np.ndarray) -> Decision:
        return self.decide(obs)  # no pretrained base: rlpd starts from scratch

    def bc_loss(self, batch: Batch) -> float:
        return float("nan")  # no imitation-trained base

    def update(self, batch_iter: Iterator[Batch]) -> dict[str, float]:
        return self.agent.update(batch_iter)

    def config_dict(self) -> dict[str, Any]:
        return self.agent.cfg.to_dict()

    def save(self, path: Path, metadata: dict[str, Any]) -> None:
        save_rlpd(path, self.agent, metadata)


Learner = ExpoLearner | BCLearner | RLPDLearner


def wrap(algo: str, agent: ExpoAgent | RLPDAgent) -> Learner:
    """The learner of ``algo`` around an already built agent."""
    check_algo(algo)
    if algo == "rlpd":
        if not isinstance(agent, RLPDAgent):
            raise TypeError(f"rlpd needs an RLPDAgent, got {type(agent).__name__}")
        return RLPDLearner(agent)
    if not isinstance(agent, ExpoAgent):
        raise TypeError(f"{algo} needs an ExpoAgent, got {type(agent).__name__}")
    return BCLearner(agent) if algo == "bc" else ExpoLearner(agent)


def load_learner(algo: str, path: Path) -> tuple[Learner, dict[str, Any]]:
    """A learner saved by ``save`` (its checkpoint format follows the algorithm) and its metadata."""
    check_algo(algo)
    agent, meta = load_rlpd(path) if algo == "rlpd" else load_checkpoint(path)
    return wrap(algo, agent), meta
