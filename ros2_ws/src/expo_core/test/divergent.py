"""Test support: an agent whose online, EMA and target networks differ.

A fresh ExpoAgent starts with online base == EMA base and target critics == online critics, so a
test that compares a computation with its manual form cannot tell which copy the computation
used. `diverge` perturbs the online base and the target critics (the EMA base and the online
critics keep their weights) and sets a non-trivial observation normalizer, so a computation that
takes the wrong copy, or raw instead of normalized observations, gives different numbers.
"""

import torch
from expo_core.agent import ExpoAgent


def diverge(agent: ExpoAgent, seed: int = 0, scale: float = 0.1) -> ExpoAgent:
    """Returns `agent`, perturbed in place (deterministically for a given seed)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (agent.base, agent.critic_target):
            for p in module.parameters():
                p.add_(scale * torch.randn(p.shape, generator=g))
    d = agent.cfg.obs_dim
    agent.set_obs_normalization(torch.linspace(-0.5, 0.5, d), torch.linspace(0.5, 2.0, d))
    for a, b in zip(agent.base.parameters(), agent.policy.base.parameters()):
        assert not torch.equal(a, b)
    for a, b in zip(agent.critic_target.parameters(), agent.policy.critic.parameters()):
        assert not torch.equal(a, b)
    return agent
