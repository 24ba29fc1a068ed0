"""The learner's own checkpoints: where training starts, resumes and how versions stay monotonic.

``checkpoint_dir`` holds ``learner_<agent updates, 9 digits>.safetensors`` + ``.json`` pairs
written by :func:`expo_core.checkpoint.save_checkpoint` (safetensors + JSON config, optimizer and
RNG state; never pickle), the last ``keep`` of them, plus ``weights_version.json``.

Start rule (:func:`load_start`): the newest readable checkpoint in ``checkpoint_dir`` wins
(resume); without one, the pretrained base ``checkpoint``. Either way the network is the
ExpoConfig stored in that checkpoint's JSON; only ``utd`` and ``batch_size`` are overridden.
Either kind loads (``load_any_checkpoint``): a state checkpoint gives an ExpoAgent, a pixel one
(``expo-pixels-safetensors-v1``) a PixelAgent, whose encoder comes with it; the learner's own
checkpoints then keep the pixel format.

Versions: every published PolicyWeights takes the next version. The last published version is
stored in each checkpoint's metadata (``learner.weights_version``) and, because weights go out
more often than checkpoints, also in ``weights_version.json`` (atomic rewrite at each
publication). A restart continues after the larger of the two, so a learner killed between a
publication and the next checkpoint never re-uses a version that actors already run.
A kill during :meth:`CheckpointDir.save` leaves at most a file without its partner; such
incomplete pairs are ignored (``save_checkpoint`` renames the .json last).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from expo_core.agent import ExpoAgent
from expo_core.checkpoint import load_any_checkpoint, save_checkpoint
from expo_core.pixel_agent import PixelAgent

log = logging.getLogger(__name__)

CKPT_RE = re.compile(r"^learner_(\d{9,})\.json$")
PROGRESS_KEY = "learner"  # where LearnerProgress lives in the checkpoint metadata
VERSION_FILE = "weights_version.json"


@dataclass
class LearnerProgress:
    """Counters that survive restarts (agent updates themselves are ``agent.num_updates``).

    critic_steps: critic gradient steps over the learner's life (LearnerStats.training_step);
    weights_version: the last published PolicyWeights.version (0 = none yet).
    """

    critic_steps: int = 0
    weights_version: int = 0

    @classmethod
    def from_metadata(cls, meta: dict) -> LearnerProgress:
        d = meta.get(PROGRESS_KEY) or {}
        return cls(int(d.get("critic_steps", 0)), int(d.get("weights_version", 0)))


def core_agent(agent: ExpoAgent | PixelAgent) -> ExpoAgent:
    """The ExpoAgent that trains: the agent itself, or a PixelAgent's feature-space agent."""
    return agent.agent if isinstance(agent, PixelAgent) else agent


def updates_of(agent: ExpoAgent | PixelAgent) -> int:
    """Agent updates (``ExpoAgent.update`` calls) the agent has done, from its own state."""
    return int(core_agent(agent).num_updates.item())


class CheckpointDir:
    """The ``learner_*`` checkpoints under ``root`` (created if missing); keeps the last ``keep``."""

    def __init__(self, root: str | os.PathLike, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"CheckpointDir.keep must be >= 1, got {keep}")
        self.root, self.keep = Path(root), int(keep)
        self.root.mkdir(parents=True, exist_ok=True)
        for tmp in self.root.glob("learner_*.tmp"):  # left by a save that was killed
            tmp.unlink(missing_ok=True)

    def list(self) -> list[Path]:
        """Complete checkpoints (both files present) as paths without suffix, oldest first."""
        found = []
        for p in self.root.iterdir():
            m = CKPT_RE.match(p.name)
            if m and p.with_suffix(".safetensors").is_file():
                found.append((int(m.group(1)), p.with_suffix("")))
        return [p for _, p in sorted(found)]

    def save(self, agent: ExpoAgent | PixelAgent, progress: LearnerProgress) -> Path:
        """Write ``learner_<updates>`` (atomic per file) and delete all but the newest ``keep``."""
        path = self.root / f"learner_{updates_of(agent):09d}"
        save_checkpoint(path, agent, {PROGRESS_KEY: asdict(progress)})
        for old in self.list()[: -self.keep]:
            for suffix in (".json", ".safetensors"):
                old.with_suffix(suffix).unlink(missing_ok=True)
        return path

    def record_version(self, version: int) -> None:
        """Persist the last published weights version (atomic: tmp + rename)."""
        tmp = self.root / f"{VERSION_FILE}.tmp"
        tmp.write_text(json.dumps({"weights_version": int(version)}))
        tmp.replace(self.root / VERSION_FILE)

    def recorded_version(self) -> int:
        """The version :meth:`record_version` stored last; 0 if none or unreadable."""
        try:
            return int(json.loads((self.root / VERSION_FILE).read_text())["weights_version"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0


@dataclass
class StartPoint:
    """What training starts from: ``resumed`` from ``path`` in checkpoint_dir, or a base.
    ``skipped``: newer checkpoints that could not be read, with the reason."""

    agent: ExpoAgent | PixelAgent
    progress: LearnerProgress
    path: Path
    resumed: bool
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        how = "resuming from" if self.resumed else "starting from base"
        return (
            f"{how} {self.path} (updates {updates_of(self.agent)}, critic steps "
            f"{self.progress.critic_steps}, weights v{self.progress.weights_version})"
        )


def _base_path(checkpoint: str) -> Path:
    """``x``, ``x.safetensors`` or ``x.json`` -> ``x``; FileNotFoundError naming the parameter."""
    p = Path(checkpoint)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    if not (stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()):
        raise FileNotFoundError(
            f"parameter 'checkpoint': {checkpoint} is not a save_checkpoint checkpoint "
            f"(needs {stem.name}.safetensors and {stem.name}.json)"
        )
    return stem


#: Config fields a resumed run may change (the learner node's ``utd``/``batch_size`` parameters).
RESUME_OVERRIDES = ("utd", "batch_size")


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted names of the fields whose values differ between two config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out


def _check_same_config(resumed: Path, base: str) -> None:
    """ValueError when the run resumed from checkpoint_dir was trained with another config than
    the base ``checkpoint`` parameter's (e.g. another EXPO variant): resuming would silently train
    and act with the old one. Fields of `RESUME_OVERRIDES` may differ; no base: nothing to check."""
    if not base:
        return
    try:
        base_json = _base_path(base).with_suffix(".json")
        want = json.loads(base_json.read_text())["config"]
        have = json.loads(Path(resumed).with_suffix(".json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no base or unreadable metadata: resuming needs neither
    differ = [k for k in config_differences(want, have) if k not in RESUME_OVERRIDES]
    if differ:
        raise ValueError(
            f"checkpoint_dir holds a run trained with another config than parameter 'checkpoint' "
            f"({base_json.with_suffix('').name}): {', '.join(differ)} differ. Resume with the "
            "run's own base, or start the new config in a fresh checkpoint_dir"
        )


def load_start(
    ckpt_dir: CheckpointDir,
    base: str,
    device: str = "cpu",
    utd: int | None = None,
    batch_size: int | None = None,
) -> StartPoint:
    """The agent to train (see the module docstring); ``utd``/``batch_size`` None keep the
    checkpoint's. Raises ValueError/FileNotFoundError when neither a resumable checkpoint nor a
    readable base exists."""
    start, skipped = None, []
    for path in reversed(ckpt_dir.list()):
        try:
            agent, meta = load_any_checkpoint(path, device)
        except Exception as e:  # a damaged checkpoint costs its updates, never the start
            skipped.append(f"{path.name}: {type(e).__name__}: {e}")
            log.warning("cannot resume from %s (%s: %s); trying an older one", path, type(e).__name__, e)
            continue
        start = StartPoint(agent, LearnerProgress.from_metadata(meta), path, True, skipped)
        _check_same_config(path, base)
        break
    if start is None:
        if not base:
            raise ValueError(
                f"parameter 'checkpoint' is empty and checkpoint_dir {ckpt_dir.root} holds no readable "
                "checkpoint: set it to a pretrained base"
            )
        path = _base_path(base)
        try:
            agent, meta = load_any_checkpoint(path, device)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"parameter 'checkpoint': cannot load {path}: {e}") from e
        start = StartPoint(agent, LearnerProgress.from_metadata(meta), path, False, skipped)
    start.progress.weights_version = max(start.progress.weights_version, ckpt_dir.recorded_version())
    overrides = {k: v for k, v in (("utd", utd), ("batch_size", batch_size)) if v is not None}
    if overrides:
        core = core_agent(start.agent)
        core.cfg = core.cfg.replace(**overrides)
    return start
