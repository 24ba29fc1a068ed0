"""The unit of training data passed from replay to the agent."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class Batch:
    """A minibatch of transitions, all float32 tensors on one device.

    obs, next_obs: (B, obs_dim); action: (B, act_dim) in [-1, 1]; reward: (B,);
    terminated: (B,) 1.0 where the MDP truly ended (success, failure) -> no bootstrap;
    truncated: (B,) 1.0 where a time limit cut the episode -> bootstrap anyway (unless the
    reference-compatible flag says otherwise).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        return Batch(**{f.name: torch.cat([getattr(b, f.name) for b in batches]) for f in fields(Batch)})
