"""Writing a verified ONNX file of the OTF decision, and its command line.

From the command line, a checkpoint (``save_checkpoint``) or a policy-weights bundle file to a
verified ONNX file (dynamic batch unless ``--static-batch``); a pixel checkpoint or bundle gives
the graph with the image encoder (uint8 camera inputs + proprio, see :mod:`.graph`)::

    python -m expo_core.export runs/x/ckpt.safetensors runs/x/otf.onnx [--batch 1] [--opset 17]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import WeightsError
from ..pixel_agent import PixelPolicy
from ..policy import ExpoPolicy
from .check import Parity, verify_onnx_report
from .graph import (
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    DEFAULT_RTOL,
    ExportMismatchError,
    export_onnx_bytes,
    load_acting_policy,
    read_onnx_metadata,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportInfo:
    """What :func:`export_onnx` wrote: the file, its sha256, the weights' digest, the opset,
    whether the batch axis is dynamic, the parity checks run (empty when skipped; their max abs
    difference as ``max_abs_diff``, None when skipped) and the seconds taken."""

    path: Path
    sha256: str
    weights_sha256: str
    opset: int
    max_abs_diff: float | None
    seconds: float
    dynamic_batch: bool = False
    checks: tuple[Parity, ...] = ()

    @property
    def max_rel_err(self) -> float | None:
        return max((p.max_rel_err for p in self.checks), default=None)


def export_onnx(
    policy: ExpoPolicy | PixelPolicy,
    path: str | Path,
    *,
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
    check_trials: int = 3,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> ExportInfo:
    """Export ``policy``'s OTF decision to ``path`` (written atomically) and, when
    ``check_trials`` > 0, verify it against torch with onnxruntime (:func:`verify_onnx_report`;
    raises ExportMismatchError and writes nothing on a mismatch)."""
    t0 = time.perf_counter()
    model = export_onnx_bytes(
        policy, batch=batch, opset=opset, metadata=metadata, dynamic_batch=dynamic_batch
    )
    checks: list[Parity] = []
    if check_trials > 0:
        checks = verify_onnx_report(policy, model, trials=check_trials, atol=atol, rtol=rtol)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(model)
    tmp.replace(path)
    return ExportInfo(
        path,
        hashlib.sha256(model).hexdigest(),
        read_onnx_metadata(model)["expo.weights_sha256"],
        opset,
        max((p.max_abs_diff for p in checks), default=None),
        time.perf_counter() - t0,
        dynamic_batch,
        tuple(checks),
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: export a checkpoint or bundle to a verified ONNX file (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m expo_core.export", description="Export the OTF decision to ONNX."
    )
    ap.add_argument(
        "weights", type=Path, help="save_checkpoint .safetensors (or its stem) or a policy-weights bundle"
    )
    ap.add_argument("out", type=Path, help="the .onnx file to write")
    ap.add_argument("--batch", type=int, default=1, help="batch the graph is traced at (default 1)")
    ap.add_argument("--static-batch", action="store_true", help="fix the batch axis (default: dynamic)")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    ap.add_argument("--trials", type=int, default=3, help="random parity checks against torch (0: none)")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.trials < 0:
        ap.error("--batch >= 1 and --trials >= 0")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        policy = load_acting_policy(args.weights)
        info = export_onnx(
            policy,
            args.out,
            batch=args.batch,
            dynamic_batch=not args.static_batch,
            opset=args.opset,
            check_trials=args.trials,
        )
    except (WeightsError, ExportMismatchError) as e:
        log.error("export failed: %s", e)
        return 1
    for check in info.checks:
        log.info("parity vs torch: %s", check)
    batch = "dynamic" if info.dynamic_batch else f"static {args.batch}"
    log.info(
        "wrote %s (opset %d, batch %s, sha256 %s, weights %s) in %.1f s",
        info.path,
        info.opset,
        batch,
        info.sha256[:12],
        info.weights_sha256[:12],
        info.seconds,
    )
    return 0
