"""What the policy node's configure loads and checks: the backend, its weights, the inputs.

No ROS. :func:`load_policy` resolves the device, looks at the checkpoint's kind first (a pixel
checkpoint: ``backend: auto`` must not pick a backend that refuses pixel weights), makes the
backend, loads the weights, checks them against the task's observation (a pixel policy's own
spec says what it observes: :func:`~expo_policy.camera_setup.pixel_inputs`) and the safety
limits' action dims, and warms the backend up. Every refusal is a ValueError naming the
parameter to fix, so configure fails with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from expo_core.spec import task_obs_spec

from .backends import InferenceBackend, is_pixel_weights, make_backend, resolve_device, weights_chunk_len
from .camera_inputs import PixelObservationInputs
from .camera_setup import pixel_inputs
from .inputs import ObservationInputs
from .obs_builder import ObservationBuilder
from .params import PolicyNodeConfig


@dataclass(frozen=True)
class LoadedPolicy:
    """A warmed-up backend, the version of the weights it loaded, the inputs that feed it."""

    backend: InferenceBackend
    version: int
    inputs: ObservationInputs | PixelObservationInputs


def load_policy(cfg: PolicyNodeConfig, log: Any) -> LoadedPolicy:
    """Backend + weights + the pure input helpers for ``cfg``; raises ValueError naming the
    parameter. ``log``: the node's logger (``backend: auto`` says what it chose and why)."""
    spec = task_obs_spec(cfg.task)
    try:
        resolve_device(cfg.device)
    except ValueError as e:
        raise ValueError(f"parameter 'device': {e}") from e
    try:  # the kind first: backend auto must not pick one that refuses pixel weights or chunks
        pixels = is_pixel_weights(cfg.checkpoint)
        chunks = weights_chunk_len(cfg.checkpoint) > 1
    except (ValueError, OSError) as e:
        raise ValueError(f"parameter 'checkpoint': {e}") from e
    try:
        backend = make_backend(
            cfg.backend,
            pixels=pixels,
            chunks=chunks,
            device=cfg.device,
            seed=cfg.seed,
            num_base_samples=cfg.num_base_samples,
            num_threads=cfg.num_threads,
        )
    except (ValueError, NotImplementedError) as e:
        raise ValueError(f"parameter 'backend': {e}") from e
    if backend.selection:  # backend: auto says what it chose and why
        log.info(f"backend: {backend.selection}")
    try:
        src = backend.load(cfg.checkpoint)
    except (ValueError, OSError) as e:  # WeightsError is a ValueError
        raise ValueError(f"parameter 'checkpoint': {e}") from e
    o, a = backend.config.obs_dim, backend.config.act_dim
    if backend.obs_spec is not None:  # a pixel policy: its own spec says what it observes
        inputs = pixel_inputs(cfg, backend.obs_spec)
    elif o != spec.dim:
        raise ValueError(
            f"parameter 'checkpoint': weights expect {o} observation values, "
            f"task '{cfg.task}' observations have {spec.dim} ({', '.join(spec.names)})"
        )
    if a != cfg.safety.action_dim:
        raise ValueError(
            f"parameter 'safety.action_low': limits are for {cfg.safety.action_dim} action dims, "
            f"the weights act in {a}"
        )
    backend.warmup()
    if backend.obs_spec is None:
        builder = ObservationBuilder(
            spec, cfg.obs_max_age_s, cfg.obs_max_skew_s, cfg.finger_joint_names, cfg.finger_signs
        )
        inputs = ObservationInputs(cfg.task, builder)
    return LoadedPolicy(backend, src.version, inputs)
