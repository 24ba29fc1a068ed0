"""A pixel policy's decision as per-camera encoder graphs + the lean graph on their features.

The traced pixel graph (:class:`~expo_core.export.graph.OTFGraph` of a
:class:`~expo_core.pixel_agent.PixelPolicy`) runs the frozen encoder and EXPO's networks as one
graph of the traced kind (3-D tensors, batched critic matmuls). A pixel policy's EXPO part is an
ordinary :class:`~expo_core.policy.ExpoPolicy` on the feature vector ``z = concat(camera
features in spec order, proprio)``, so it can run as the lean graph (:mod:`.lean`), with the
encoder in front as one small graph per camera (uint8 ``frame (1, S, S, 3)`` -> ``features (1,
F)``; cameras that share weights share one graph). :class:`PixelLeanRunner` joins them and
takes the traced graph's inputs and returns its outputs, so the backends' checks against eager
torch (``check.compare_with_torch``) apply unchanged. Measured at published EXPO sizes with the
``cpu`` encoder (N = 8, T = 10, one thread): p50 2.23 ms against 2.64 ms for the traced graph
(docs/results.md, issue 15).

The encoder is frozen: its graphs are built once per encoder (:func:`~.graph.encoder_digest`) and
a weight swap from the learner, which changes only the EXPO part, copies the new weights into
the :class:`~.lean.LeanTemplate` of the feature-space config (:class:`PixelLeanTemplate`).

A camera's features depend on its frame alone, so a caller may compute them as the frame arrives
(:meth:`PixelLeanRunner.encode`) and hand them to the decision (:meth:`PixelLeanRunner.decide`),
which then runs only the lean graph: that is what the policy node does when frames come before
the rest of an observation.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..encoder import CameraEncoder
from ..pixel_agent import PixelPolicy
from .graph import _EXPORT_LOCK, INPUT_OBS, INPUT_PROPRIO, OUTPUT_NAMES, encoder_digest, noise_shapes
from .lean import LEAN_OPSET, LeanTemplate, lean_unsupported

#: the encoder graph's input (one uint8 RGB frame, batch 1) and output
INPUT_FRAME = "frame"
OUTPUT_FEATURES = "features"


class _FrameEncoder(nn.Module):
    """The frozen camera encoder as the graph traces it: (1, S, S, 3) uint8 -> (1, F)."""

    def __init__(self, encoder: CameraEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.encoder(frame)


def encoder_onnx_bytes(encoder: CameraEncoder, opset: int = LEAN_OPSET) -> bytes:
    """One camera's frozen encoder as a serialized ONNX graph: ``frame`` (1, S, S, 3) uint8 ->
    ``features`` (1, F) float32 (traced with the TorchScript exporter, constants folded)."""
    if not encoder.is_frozen:
        raise ValueError("only a frozen encoder is exported: a training encoder's features change")
    s = encoder.image_size
    on_cpu = all(t.device.type == "cpu" for t in encoder.state_dict().values())
    cpu = encoder if on_cpu else copy.deepcopy(encoder).cpu()
    buf = io.BytesIO()
    with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            _FrameEncoder(cpu).eval(),
            (torch.zeros(1, s, s, 3, dtype=torch.uint8),),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_FRAME],
            output_names=[OUTPUT_FEATURES],
            do_constant_folding=True,
        )
    return buf.getvalue()


def pixel_lean_unsupported(policy: PixelPolicy) -> str | None:
    """Why :class:`PixelLeanTemplate` cannot express ``policy``'s decision (its EXPO part's
    reason, from :func:`~.lean.lean_unsupported`), or None when it can."""
    return lean_unsupported(policy.policy)


@dataclass(frozen=True)
class PixelLeanTemplate:
    """The split pixel decision of one (feature-space config, frozen encoder): ``lean`` the
    :class:`~.lean.LeanTemplate` of the EXPO part, ``cameras`` in spec order, ``encoders`` one
    serialized encoder graph per camera (the same bytes where cameras share weights),
    ``encoder_digest`` what :meth:`fits` compares, ``encoder_size`` the side S of the frames the
    encoder takes."""

    lean: LeanTemplate
    cameras: tuple[str, ...]
    encoders: tuple[bytes, ...]
    encoder_digest: str
    encoder_size: int

    @property
    def cfg(self) -> Any:
        return self.lean.cfg

    @classmethod
    def build(cls, policy: PixelPolicy) -> PixelLeanTemplate:
        """Export the encoder graphs of ``policy`` and build the lean template of its config;
        ValueError (with the reason) for a policy the lean graph does not express."""
        why = pixel_lean_unsupported(policy)
        if why is not None:
            raise ValueError(f"lean graph: {why}")
        graphs: dict[int, bytes] = {}  # one export per distinct encoder module
        encoders = []
        for cam in policy.cameras:
            enc = policy.encoder.encoder_for(cam)
            if id(enc) not in graphs:
                graphs[id(enc)] = encoder_onnx_bytes(enc)
            encoders.append(graphs[id(enc)])
        return cls(
            LeanTemplate.build(policy.cfg),
            policy.cameras,
            tuple(encoders),
            encoder_digest(policy),
            policy.encoder_cfg.image_size,
        )

    def fits(self, policy: Any) -> bool:
        """Whether :meth:`with_weights` takes ``policy``: a pixel policy of the same config with
        the same frozen encoder."""
        return (
            isinstance(policy, PixelPolicy)
            and policy.cfg == self.lean.cfg
            and encoder_digest(policy) == self.encoder_digest
        )

    def with_weights(self, policy: PixelPolicy) -> bytes:
        """The lean graph of ``policy``'s EXPO part (the encoder graphs stay the template's);
        ValueError for another config or encoder."""
        if not self.fits(policy):
            raise ValueError(
                "policy is not a pixel policy of the template's config and encoder: build a new "
                "PixelLeanTemplate"
            )
        return self.lean.with_weights(policy.policy)


Session = Any  # an onnxruntime InferenceSession (or anything with its ``run``)


class PixelLeanRunner:
    """Runs a :class:`PixelLeanTemplate`'s graphs as one decision.

    ``encoder_sessions`` one per camera (the template's order), ``lean_session`` the lean graph.
    Called with the traced pixel graph's inputs (``<camera>_image`` (1, S, S, 3) uint8,
    ``proprio`` (1, P), the noise inputs), it returns the outputs in
    :data:`~.graph.OUTPUT_NAMES` order, as a :data:`~.graph.Runner`; ``features`` may hold some
    cameras' features already computed (as their frames arrived), and only the others are
    encoded then."""

    def __init__(
        self, template: PixelLeanTemplate, encoder_sessions: Sequence[Session], lean_session: Session
    ) -> None:
        if len(encoder_sessions) != len(template.cameras):
            raise ValueError(f"{len(encoder_sessions)} encoder sessions for cameras {list(template.cameras)}")
        self.template = template
        self.cameras = template.cameras
        self.encoder_sessions = tuple(encoder_sessions)
        self._encoders = dict(zip(template.cameras, encoder_sessions))
        self._lean = lean_session
        self._noise = tuple(noise_shapes(template.cfg))
        self._names = list(OUTPUT_NAMES)

    def encode(self, camera: str, frame: np.ndarray) -> np.ndarray:
        """One camera's features ``(1, F)`` float32 from its frame ``(S, S, 3)`` or ``(1, S, S, 3)``
        uint8 (KeyError for a camera not in the template)."""
        if camera not in self._encoders:
            raise KeyError(f"unknown camera {camera!r}; cameras are {list(self.cameras)}")
        x = np.ascontiguousarray(frame, dtype=np.uint8)
        return self._encoders[camera].run(None, {INPUT_FRAME: x if x.ndim == 4 else x[None]})[0]

    def decide(
        self, features: Mapping[str, np.ndarray], proprio: np.ndarray, noise: Mapping[str, np.ndarray]
    ) -> Sequence[np.ndarray]:
        """The lean graph on ``z = concat(features of each camera (1, F), proprio (1, P))``."""
        z = np.concatenate([*(features[c] for c in self.cameras), proprio], axis=1)
        feeds = {INPUT_OBS: z.astype(np.float32, copy=False)} | {k: noise[k] for k in self._noise}
        return self._lean.run(self._names, feeds)

    def __call__(
        self, feeds: dict[str, np.ndarray], features: Mapping[str, np.ndarray] | None = None
    ) -> Sequence[np.ndarray]:
        ready = features or {}
        feats = {c: ready[c] if c in ready else self.encode(c, feeds[f"{c}_image"]) for c in self.cameras}
        return self.decide(feats, feeds[INPUT_PROPRIO], feeds)


def pixel_lean_runner(
    template: PixelLeanTemplate, model: bytes, make_session: Callable[[bytes], Session]
) -> PixelLeanRunner:
    """A runner of ``template`` with ``model`` (its :meth:`~PixelLeanTemplate.with_weights`) as
    the lean graph; ``make_session`` turns serialized graphs into sessions (one per distinct
    encoder graph)."""
    made: dict[int, Session] = {}
    sessions = []
    for graph in template.encoders:
        if id(graph) not in made:
            made[id(graph)] = make_session(graph)
        sessions.append(made[id(graph)])
    return PixelLeanRunner(template, sessions, make_session(model))
