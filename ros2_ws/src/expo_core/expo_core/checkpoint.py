"""Checkpoints and policy-weights bundles: safetensors tensors + JSON config, never pickle.

Full checkpoint (`save_checkpoint`): every parameter and buffer of the agent, the optimizer
states (flattened to tensors; their hyperparameters as JSON), the RNG state, and user metadata.
Resuming from it continues training exactly.

Policy weights (`policy_weights_bytes`): only what acting needs (EMA base, editor, critics,
obs normalizer) plus the config, as one safetensors blob whose sha256 is the integrity check on
the wire. `load_policy_weights` verifies hash, config and shapes before anything is replaced.

Pixel policies (:class:`expo_core.pixel_agent.PixelAgent`, issue 13) use the same two files with
their own format tag, :data:`PIXELS_FORMAT`, so that no state-vector consumer can mistake one for
its own (and vice versa): the checkpoint adds the encoder's tensors (``encoder/...``, the frozen
ResNet trunk of mode (b) included, so the user's weights file is not needed to load it), its
optimizer while it trains, and in the JSON ``encoder_config`` (``EncoderConfig.to_dict``),
``obs_spec`` (``ObsSpec.to_json``) and ``encoder_frozen``. The pixel acting bundle holds the
:class:`~expo_core.pixel_agent.PixelPolicy` state (``encoder.*`` + ``policy.*``) with
``encoder_config`` and ``obs_spec`` (JSON strings) in its metadata.

Which loader: `load_checkpoint` / `policy_from_weights` for state policies (unchanged; a pixel
file raises WeightsError saying so), `load_pixel_checkpoint` / `pixel_policy_from_weights` for
pixel ones (a state file raises), `load_any_checkpoint` / `acting_policy_from_weights` for either.
Each takes an optional ``spec``: the observation spec the caller will feed; a mismatch (a
camera spec for a state policy, a state spec or other cameras for a pixel policy) raises
WeightsError naming both.
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
from .encoder import EncoderConfig
from .pixel_agent import PixelAgent, PixelPolicy, build_encoder
from .policy import ExpoPolicy
from .spec import ObsSpec

FORMAT = "expo-safetensors-v1"
#: Format tag of pixel checkpoints and pixel acting bundles.
PIXELS_FORMAT = "expo-pixels-safetensors-v1"


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


def _check_state_spec(spec: ObsSpec | None, cfg: ExpoConfig, where: str) -> None:
    """WeightsError unless a state policy of ``cfg`` can act on observations of ``spec``."""
    if spec is None:
        return
    if spec.has_images:
        raise WeightsError(
            f"{where} is a state policy (obs dim {cfg.obs_dim}, no image encoder); it cannot act on the "
            f"pixel spec with cameras {list(spec.cameras)}: use a pixel checkpoint"
        )
    if spec.dim != cfg.obs_dim:
        raise WeightsError(
            f"{where} acts on obs dim {cfg.obs_dim}; the spec has dim {spec.dim} ({list(spec.names)})"
        )


def _check_pixel_spec(spec: ObsSpec | None, saved: ObsSpec, where: str) -> None:
    """WeightsError unless ``spec`` (what the caller will feed) is the pixel policy's own spec."""
    if spec is None or spec == saved:
        return
    if not spec.has_images:
        raise WeightsError(
            f"{where} is a pixel policy (cameras {list(saved.cameras)}, proprio {list(saved.names)}); "
            f"it cannot act on the state spec {list(spec.names)}: use a state checkpoint"
        )
    raise WeightsError(f"{where} was trained on spec {saved.to_json()}, not {spec.to_json()}")


def _write(path: Path, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp))
    tmp_json = path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(path.with_suffix(".safetensors"))
    tmp_json.replace(path.with_suffix(".json"))


def _agent_tensors(agent: ExpoAgent) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {f"agent/{k}": v.detach().cpu().contiguous().clone() for k, v in agent.state_dict().items()}
    groups = {}
    for name, opt in _optimizers(agent).items():
        t, groups[name] = _flatten_optimizer(f"optim/{name}", opt)
        tensors.update(t)
    tensors["rng/generator"] = agent.generator.get_state()
    return tensors, groups


def save_checkpoint(
    path: str | Path,
    agent: ExpoAgent | PixelAgent,
    metadata: dict[str, Any] | None = None,
    spec: ObsSpec | None = None,
) -> None:
    """Writes `path` (.safetensors) and `path` with suffix .json, atomically (tmp + rename).

    A :class:`PixelAgent` writes a pixel checkpoint (:data:`PIXELS_FORMAT`, its own spec). For a
    state agent ``spec`` (optional) is checked against the config and recorded as ``obs_spec``;
    without it the files are exactly those of earlier versions."""
    path = Path(path)
    if isinstance(agent, PixelAgent):
        _save_pixel_checkpoint(path, agent, metadata)
        return
    _check_state_spec(spec, agent.cfg, "this agent")
    tensors, groups = _agent_tensors(agent)
    info = {
        "format": FORMAT,
        "config": agent.cfg.to_dict(),
        "optimizer_groups": groups,
        "base_sched_step": agent.base_sched.last_epoch,
        "metadata": metadata or {},
    }
    if spec is not None:
        info["obs_spec"] = spec.to_json()
    _write(path, tensors, info)


def _save_pixel_checkpoint(path: Path, agent: PixelAgent, metadata: dict[str, Any] | None) -> None:
    tensors, groups = _agent_tensors(agent.agent)
    tensors.update({f"encoder/{k}": v.contiguous() for k, v in agent.encoder_state().items()})
    if agent.encoder_opt is not None:
        t, groups["encoder"] = _flatten_optimizer("optim/encoder", agent.encoder_opt)
        tensors.update(t)
    info = {
        "format": PIXELS_FORMAT,
        "config": agent.cfg.to_dict(),
        "encoder_config": agent.encoder_cfg.to_dict(),
        "obs_spec": agent.obs_spec.to_json(),
        "encoder_frozen": agent.is_frozen,
        "optimizer_groups": groups,
        "base_sched_step": agent.agent.base_sched.last_epoch,
        "metadata": metadata or {},
    }
    _write(path, tensors, info)


def _read_info(path: Path) -> dict[str, Any]:
    json_path = path.with_suffix(".json")
    try:
        info = json.loads(json_path.read_text())
    except FileNotFoundError as e:
        raise WeightsError(f"{path}: no checkpoint JSON {json_path.name}") from e
    except ValueError as e:
        raise WeightsError(f"{json_path}: not JSON ({e})") from e
    if info.get("format") not in (FORMAT, PIXELS_FORMAT):
        raise WeightsError(
            f"{path}: unknown checkpoint format {info.get('format')!r}, expected {FORMAT} or {PIXELS_FORMAT}"
        )
    return info


def _load_agent_tensors(agent: ExpoAgent, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    agent.load_state_dict({k[len("agent/") :]: v for k, v in tensors.items() if k.startswith("agent/")})
    for name, opt in _optimizers(agent).items():
        opt.load_state_dict(_unflatten_optimizer(f"optim/{name}", tensors, info["optimizer_groups"][name]))
    agent.base_sched.last_epoch = info["base_sched_step"]
    agent.generator.set_state(tensors["rng/generator"])


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", spec: ObsSpec | None = None
) -> tuple[ExpoAgent, dict[str, Any]]:
    """Rebuild a state agent from a checkpoint. Returns (agent, user metadata). A pixel
    checkpoint raises WeightsError (use :func:`load_pixel_checkpoint`); ``spec``, when given, must
    be a state spec of the agent's obs dim (and the recorded ``obs_spec`` when there is one)."""
    path = Path(path)
    info = _read_info(path)
    if info["format"] == PIXELS_FORMAT:
        cams = ObsSpec.from_json(info["obs_spec"]).cameras
        raise WeightsError(
            f"{path} is a pixel checkpoint (cameras {list(cams)}): it acts on images + proprio, not on a "
            "state vector; load it with load_pixel_checkpoint (or load_any_checkpoint)"
        )
    cfg = ExpoConfig.from_dict(info["config"])
    _check_state_spec(spec, cfg, str(path))
    if spec is not None and "obs_spec" in info and ObsSpec.from_json(info["obs_spec"]) != spec:
        raise WeightsError(f"{path} was trained on spec {info['obs_spec']}, not {spec.to_json()}")
    agent = ExpoAgent(cfg, device=device)
    _load_agent_tensors(agent, load_file(str(path.with_suffix(".safetensors"))), info)
    return agent, info.get("metadata", {})


def load_pixel_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", spec: ObsSpec | None = None
) -> tuple[PixelAgent, dict[str, Any]]:
    """Rebuild a :class:`PixelAgent` (encoder, frozen or still training, with its optimizer).
    A state checkpoint raises WeightsError; so does a ``spec`` other than the saved one."""
    path = Path(path)
    info = _read_info(path)
    if info["format"] != PIXELS_FORMAT:
        cfg = ExpoConfig.from_dict(info["config"])
        raise WeightsError(
            f"{path} is a state checkpoint (obs dim {cfg.obs_dim}, no image encoder): a pixel policy needs "
            "cameras and an encoder; load it with load_checkpoint (or load_any_checkpoint)"
        )
    saved = ObsSpec.from_json(info["obs_spec"])
    _check_pixel_spec(spec, saved, str(path))
    cfg = ExpoConfig.from_dict(info["config"])
    enc_cfg = EncoderConfig.from_dict(info["encoder_config"])
    tensors = load_file(str(path.with_suffix(".safetensors")))
    enc_state = {k[len("encoder/") :]: v for k, v in tensors.items() if k.startswith("encoder/")}
    encoder = build_encoder(enc_cfg, saved.dim, enc_state)
    if info.get("encoder_frozen", True):
        encoder.freeze()
    agent = PixelAgent(cfg, enc_cfg, saved, device=device, encoder=encoder)
    _load_agent_tensors(agent.agent, tensors, info)
    if agent.encoder_opt is not None and "encoder" in info["optimizer_groups"]:
        groups = info["optimizer_groups"]["encoder"]
        agent.encoder_opt.load_state_dict(_unflatten_optimizer("optim/encoder", tensors, groups))
    return agent, info.get("metadata", {})


def load_any_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", spec: ObsSpec | None = None
) -> tuple[ExpoAgent | PixelAgent, dict[str, Any]]:
    """:func:`load_checkpoint` or :func:`load_pixel_checkpoint`, by the file's format tag."""
    if _read_info(Path(path))["format"] == PIXELS_FORMAT:
        return load_pixel_checkpoint(path, device, spec)
    return load_checkpoint(path, device, spec)


# --- policy weights bundle ---------------------------------------------------------------------


def policy_weights_bytes(
    agent: ExpoAgent | PixelAgent, version: int = 0, training_step: int = 0
) -> tuple[bytes, str]:
    """The acting bundle as safetensors bytes (config in its metadata) and its sha256 hex.
    A :class:`PixelAgent` (frozen encoder) gives a pixel bundle (:data:`PIXELS_FORMAT`)."""
    meta = {
        "format": FORMAT,
        "config": agent.cfg.to_json(),
        "version": str(version),
        "step": str(training_step),
    }
    if isinstance(agent, PixelAgent):
        if not agent.is_frozen:
            raise ValueError("a pixel acting bundle needs a frozen encoder (PixelAgent.freeze_encoder())")
        meta.update(
            format=PIXELS_FORMAT,
            encoder_config=json.dumps(agent.encoder_cfg.to_dict(), sort_keys=True),
            obs_spec=json.dumps(agent.obs_spec.to_json()),
        )
        tensors = {f"encoder.{k}": v for k, v in agent.encoder_state().items()}
        tensors |= {f"policy.{k}": v for k, v in agent.agent.policy_state().items()}
    else:
        tensors = agent.policy_state()
    data = save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)
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


def weights_format(data: bytes) -> str:
    """The bundle's format tag (:data:`FORMAT` or :data:`PIXELS_FORMAT`); WeightsError otherwise."""
    fmt = _read_meta(data).get("format")
    if fmt not in (FORMAT, PIXELS_FORMAT):
        raise WeightsError(f"unknown weights format {fmt!r}, expected {FORMAT} or {PIXELS_FORMAT}")
    return fmt


def _verify_hash(data: bytes, sha256: str | None) -> None:
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise WeightsError("sha256 mismatch: weights corrupted in transit or truncated")


def decode_policy_weights(
    data: bytes, sha256: str | None = None
) -> tuple[ExpoConfig, dict[str, torch.Tensor]]:
    """Verify (hash first) and decode a state bundle into (config, state dict). Raises
    WeightsError (a pixel bundle too: see :func:`decode_pixel_policy_weights`)."""
    _verify_hash(data, sha256)
    meta = _read_meta(data)
    if meta.get("format") == PIXELS_FORMAT:
        raise WeightsError(
            "these are pixel policy weights (an image encoder + EXPO on its features): this consumer acts "
            "on state vectors; use pixel_policy_from_weights / acting_policy_from_weights"
        )
    if meta.get("format") != FORMAT:
        raise WeightsError(f"unknown weights format {meta.get('format')!r}, expected {FORMAT}")
    try:
        cfg = ExpoConfig.from_json(meta["config"])
        state = load(data)
    except (KeyError, ValueError, RuntimeError, SafetensorError) as e:
        raise WeightsError(f"undecodable weights: {e}") from e
    return cfg, state


def decode_pixel_policy_weights(
    data: bytes, sha256: str | None = None
) -> tuple[ExpoConfig, EncoderConfig, ObsSpec, dict[str, torch.Tensor]]:
    """Verify and decode a pixel bundle into (feature-space config, encoder config, spec,
    PixelPolicy state dict). A state bundle raises WeightsError."""
    _verify_hash(data, sha256)
    meta = _read_meta(data)
    if meta.get("format") == FORMAT:
        raise WeightsError(
            "these are state policy weights (no image encoder): a pixel consumer needs pixel weights; "
            "use policy_from_weights / acting_policy_from_weights"
        )
    if meta.get("format") != PIXELS_FORMAT:
        raise WeightsError(f"unknown weights format {meta.get('format')!r}, expected {PIXELS_FORMAT}")
    try:
        cfg = ExpoConfig.from_json(meta["config"])
        enc_cfg = EncoderConfig.from_dict(json.loads(meta["encoder_config"]))
        spec = ObsSpec.from_json(json.loads(meta["obs_spec"]))
        state = load(data)
    except (KeyError, ValueError, TypeError, RuntimeError, SafetensorError) as e:
        raise WeightsError(f"undecodable pixel weights: {e}") from e
    return cfg, enc_cfg, spec, state


def _check_tensors(current: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
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


def load_policy_weights(policy: ExpoPolicy | PixelPolicy, data: bytes, sha256: str | None = None) -> None:
    """Replace `policy`'s weights with the bundle's, or raise WeightsError and leave them untouched.
    The bundle's network shapes must match the running policy (same obs/action spec and sizes;
    for a pixel policy also the same encoder config and spec)."""
    if isinstance(policy, PixelPolicy):
        cfg, enc_cfg, spec, state = decode_pixel_policy_weights(data, sha256)
        if enc_cfg.to_dict() != policy.encoder_cfg.to_dict() or spec != policy.obs_spec:
            raise WeightsError(
                "pixel weights are for another encoder or spec: "
                f"{enc_cfg.camera_names} {spec.to_json()} vs {policy.encoder_cfg.camera_names} "
                f"{policy.obs_spec.to_json()}"
            )
    else:
        cfg, state = decode_policy_weights(data, sha256)
    _check_tensors(policy.state_dict(), state)
    if (cfg.obs_dim, cfg.act_dim) != (policy.cfg.obs_dim, policy.cfg.act_dim):
        raise WeightsError(
            f"weights are for obs/act dims {(cfg.obs_dim, cfg.act_dim)}, policy has "
            f"{(policy.cfg.obs_dim, policy.cfg.act_dim)}"
        )
    policy.load_state_dict(state)


def policy_from_weights(data: bytes, sha256: str | None = None) -> ExpoPolicy:
    """A fresh acting policy built from a state bundle alone (what the policy node starts from).
    A pixel bundle raises WeightsError (see :func:`acting_policy_from_weights`)."""
    cfg, _ = decode_policy_weights(data, sha256)
    policy = ExpoPolicy(cfg)
    load_policy_weights(policy, data, sha256)
    return policy.eval()


def pixel_policy_from_weights(data: bytes, sha256: str | None = None) -> PixelPolicy:
    """A fresh :class:`PixelPolicy` (frozen encoder + acting bundle) from a pixel bundle alone."""
    cfg, enc_cfg, spec, state = decode_pixel_policy_weights(data, sha256)
    enc_state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    try:
        encoder = build_encoder(enc_cfg, spec.dim, enc_state)
        policy = PixelPolicy(cfg, enc_cfg, spec, encoder)
    except (KeyError, ValueError, RuntimeError) as e:
        raise WeightsError(f"pixel weights do not fit their own encoder config: {e}") from e
    load_policy_weights(policy, data, sha256)
    return policy.eval()


def acting_policy_from_weights(data: bytes, sha256: str | None = None) -> ExpoPolicy | PixelPolicy:
    """:func:`policy_from_weights` or :func:`pixel_policy_from_weights`, by the bundle's format."""
    _verify_hash(data, sha256)
    if weights_format(data) == PIXELS_FORMAT:
        return pixel_policy_from_weights(data, sha256)
    return policy_from_weights(data, sha256)
