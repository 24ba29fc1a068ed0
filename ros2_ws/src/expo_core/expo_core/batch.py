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

    Action chunks (the imitation targets of a base with `DiffusionConfig.chunk_len` = k > 1),
    optional: action_chunk (B, k, act_dim) = [a_t, ..., a_t+k-1] of the same episode
    (action_chunk[:, 0] == action) and chunk_mask (B, k), 1 where that step exists in the
    episode, 0 past its end. None (online transitions, which carry only their own action)
    means [a_t, 0, ...] with mask [1, 0, ...]: see `chunk_targets`.

    n-step rows (`ExpoConfig.n_step` > 1), optional: steps (B,) the number k of env steps a row
    spans, reward then being sum_{j<k} gamma^j r_t+j and next_obs / terminated / truncated those
    of step t+k-1; the bootstrap is discounted by gamma^k (`discount`). None means k = 1.

    rewarded, optional: (B,) 1.0 where the row's episode earns a positive reward at that row or
    later (`ReplayBuffer` labels it: with a 0/1 success reward, the rows of successful episodes),
    0.0 elsewhere; what the base imitates with `ExpoConfig.bc_rows="rewarded"`. None: not known.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    action_chunk: torch.Tensor | None = None
    chunk_mask: torch.Tensor | None = None
    steps: torch.Tensor | None = None
    rewarded: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "rewarded"):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != tuple(self.reward.shape):
                raise ValueError(f"Batch: {name} {tuple(value.shape)} must be (B,) like reward")
        if (self.action_chunk is None) != (self.chunk_mask is None):
            raise ValueError("Batch: action_chunk and chunk_mask come together (both or neither)")
        if self.action_chunk is not None:
            B, d = self.action.shape
            k = self.action_chunk.shape[1] if self.action_chunk.ndim == 3 else -1
            if self.action_chunk.shape != (B, k, d) or tuple(self.chunk_mask.shape) != (B, k):
                raise ValueError(
                    f"Batch: action_chunk {tuple(self.action_chunk.shape)} and chunk_mask "
                    f"{tuple(self.chunk_mask.shape)} must be (B, k, {d}) and (B, k) with B = {B}"
                )

    def __len__(self) -> int:
        return self.obs.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{f.name: _to(getattr(self, f.name), device) for f in fields(self)})

    def replace(self, **changes: torch.Tensor | None) -> Batch:
        """This batch with some fields replaced (e.g. normalized observations)."""
        return Batch(**({f.name: getattr(self, f.name) for f in fields(self)} | changes))

    def discount(self, gamma: float) -> torch.Tensor:
        """(B,) the bootstrap's discount per row: gamma^steps (gamma where steps is None)."""
        return torch.full_like(self.reward, gamma) if self.steps is None else gamma**self.steps

    def chunk_targets(self, chunk_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The base's imitation targets for chunks of `chunk_len`: (chunk (B, k, d), mask (B, k)).
        Without stored chunks: [a_t, 0, ...] and [1, 0, ...] (the tail is learned from the
        demonstrations only). Stored chunks longer than k are cut to k; shorter ones raise."""
        if self.action_chunk is None:
            B, d = self.action.shape
            chunk = self.action.new_zeros(B, chunk_len, d)
            chunk[:, 0] = self.action
            mask = self.action.new_zeros(B, chunk_len)
            mask[:, 0] = 1.0
            return chunk, mask
        if self.action_chunk.shape[1] < chunk_len:
            raise ValueError(
                f"Batch holds chunks of {self.action_chunk.shape[1]} actions, the base needs {chunk_len}"
            )
        return self.action_chunk[:, :chunk_len], self.chunk_mask[:, :chunk_len]

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        """Rows of all batches in order. Chunks: kept when any batch has them (the others get
        their first-slot chunks, `chunk_targets`, of the same length); None when none has.
        Steps likewise: kept when any batch has them (1 for the others' rows); rewarded too: kept
        when every batch has it, None when one does not know it."""
        out = {f.name: torch.cat([getattr(b, f.name) for b in batches]) for f in fields(Batch)[:6]}
        lens = {b.action_chunk.shape[1] for b in batches if b.action_chunk is not None}
        if len(lens) > 1:
            raise ValueError(f"Batch.cat: batches hold chunks of different lengths {sorted(lens)}")
        if lens:
            k = lens.pop()
            parts = [b.chunk_targets(k) for b in batches]
            out["action_chunk"] = torch.cat([c for c, _ in parts])
            out["chunk_mask"] = torch.cat([m for _, m in parts])
        if any(b.steps is not None for b in batches):  # rows without steps span one step
            out["steps"] = torch.cat(
                [torch.ones_like(b.reward) if b.steps is None else b.steps for b in batches]
            )
        if all(b.rewarded is not None for b in batches):
            out["rewarded"] = torch.cat([b.rewarded for b in batches])
        return Batch(**out)


def _to(x: torch.Tensor | None, device: torch.device | str) -> torch.Tensor | None:
    return None if x is None else x.to(device)
