"""Checkpoints and policy-weights bundles: safetensors tensors + JSON config, never pickle.

Full checkpoint (`save_checkpoint`): every parameter and buffer of the agent, the optimizer
states (flattened to tensors; their hyperparameters as JSON), the RNG state, and user metadata.
Resuming from it continues training exactly.

Policy weights (`policy_weights_bytes`): only what acting needs (EMA base, editor, critics,
obs normalizer) plus the config, as one safetensors blob whose sha256 is the integrity check on
the wire. `load_policy_weights` verifies hash, config and shapes before anything is replaced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save, save_file

from .agent import ExpoAgent
from .config import ExpoConfig
from .policy import ExpoPolicy

FORMAT = "expo-safetensors-v1"


class WeightsError(ValueError):
    """Weights that must not be loaded: corrupted, mismatched config or shapes."""


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{prefix}/{pid}/{k}"] = torch.as_tensor(v).detach().cpu().clone()
    return tensors, sd["param_groups"]


def _unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], groups: Any) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "/"):
            pid, name = key[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": groups}


def _optimizers(agent: ExpoAgent) -> dict[str, torch.optim.Optimizer]:
    return {
        "base": agent.base_opt,
        "critic": agent.critic_opt,
        "editor": agent.editor_opt,
        "alpha": agent.alpha_opt,
    }


def save_checkpoint(path: str | Path, agent: ExpoAgent, metadata: dict[str, Any] | None = None) -> None:
    """Writes `path` (.safetensors) and `path` with suffix .json, atomically (tmp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"agent/{k}": v.detach().cpu().contiguous().clone() for k, v in agent.state_dict().items()}
    groups = {}
    for name, opt in _optimizers(agent).items():
        t, groups[name] = _flatten_optimizer(f"optim/{name}", opt)
        tensors.update(t)
    tensors["rng/generator"] = agent.generator.get_state()
    info = {
        "format": FORMAT,
        "config": agent.cfg.to_dict(),
        "optimizer_groups": groups,
        "base_sched_step": agent.base_sched.last_epoch,
        "metadata": metadata or {},
    }
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp))
    tmp_json = path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(path.with_suffix(".safetensors"))
    tmp_json.replace(path.with_suffix(".json"))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[ExpoAgent, dict[str, Any]]:
    """Rebuild the agent from a checkpoint. Returns (agent, user metadata)."""
    path = Path(path)
    info = json.loads(path.with_suffix(".json").read_text())
    if info.get("format") != FORMAT:
        raise WeightsError(f"{path}: unknown checkpoint format {info.get('format')!r}, expected {FORMAT}")
    cfg = ExpoConfig.from_dict(info["config"])
    agent = ExpoAgent(cfg, device=device)
    tensors = load_file(str(path.with_suffix(".safetensors")))
    agent.load_state_dict({k[len("agent/") :]: v for k, v in tensors.items() if k.startswith("agent/")})
    for name, opt in _optimizers(agent).items():
        opt.load_state_dict(_unflatten_optimizer(f"optim/{name}", tensors, info["optimizer_groups"][name]))
    agent.base_sched.last_epoch = info["base_sched_step"]
    agent.generator.set_state(tensors["rng/generator"])
    return agent, info.get("metadata", {})


# --- policy weights bundle ---------------------------------------------------------------------


def policy_weights_bytes(agent: ExpoAgent, version: int = 0, training_step: int = 0) -> tuple[bytes, str]:
    """The acting bundle as safetensors bytes (config in its metadata) and its sha256 hex."""
    meta = {
        "format": FORMAT,
        "config": agent.cfg.to_json(),
        "version": str(version),
        "step": str(training_step),
    }
    data = save({k: v.contiguous() for k, v in agent.policy_state().items()}, metadata=meta)
    return data, hashlib.sha256(data).hexdigest()


def _read_meta(data: bytes) -> dict[str, str]:
    if len(data) < 8:
        raise WeightsError("weights blob too short to be safetensors")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise WeightsError("weights blob has a corrupt safetensors header")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError as e:
        raise WeightsError(f"weights blob header is not JSON: {e}") from e
    return header.get("__metadata__", {})


def decode_policy_weights(
    data: bytes, sha256: str | None = None
) -> tuple[ExpoConfig, dict[str, torch.Tensor]]:
    """Verify (hash first) and decode a bundle into (config, state dict). Raises WeightsError."""
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise WeightsError("sha256 mismatch: weights corrupted in transit or truncated")
    meta = _read_meta(data)
    if meta.get("format") != FORMAT:
        raise WeightsError(f"unknown weights format {meta.get('format')!r}, expected {FORMAT}")
    try:
        cfg = ExpoConfig.from_json(meta["config"])
        state = load(data)
    except (KeyError, ValueError, RuntimeError, SafetensorError) as e:
        raise WeightsError(f"undecodable weights: {e}") from e
    return cfg, state


def load_policy_weights(policy: ExpoPolicy, data: bytes, sha256: str | None = None) -> None:
    """Replace `policy`'s weights with the bundle's, or raise WeightsError and leave them untouched.
    The bundle's network shapes must match the running policy (same obs/action spec and sizes)."""
    cfg, state = decode_policy_weights(data, sha256)
    current = policy.state_dict()
    if set(state) != set(current):
        missing, extra = sorted(set(current) - set(state)), sorted(set(state) - set(current))
        raise WeightsError(f"weights keys differ: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in state.items():
        if v.shape != current[k].shape:
            raise WeightsError(
                f"weights shape mismatch for {k}: {tuple(v.shape)} vs {tuple(current[k].shape)}"
            )
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise WeightsError(f"weights tensor {k} has non-finite values")
    if (cfg.obs_dim, cfg.act_dim) != (policy.cfg.obs_dim, policy.cfg.act_dim):
        raise WeightsError(
            f"weights are for obs/act dims {(cfg.obs_dim, cfg.act_dim)}, policy has "
            f"{(policy.cfg.obs_dim, policy.cfg.act_dim)}"
        )
    policy.load_state_dict(state)


def policy_from_weights(data: bytes, sha256: str | None = None) -> ExpoPolicy:
    """A fresh acting policy built from a bundle alone (what the policy node starts from)."""
    cfg, _ = decode_policy_weights(data, sha256)
    policy = ExpoPolicy(cfg)
    load_policy_weights(policy, data, sha256)
    return policy.eval()
