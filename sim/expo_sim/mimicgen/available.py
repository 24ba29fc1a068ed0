"""Whether robomimic and NVIDIA MimicGen are installed, and registering MimicGen's environments.

MimicGen is optional (``make setup`` installs it; ``EXPO_SKIP_MIMICGEN=1`` leaves it out, and its
licence allows non-commercial use only). Everything that needs it calls :func:`register_envs`
or :func:`require_mimicgen` first, which raise :class:`MimicGenMissing` with one line naming the
setup step. The PyPI package called ``mimicgen`` is an unrelated project: an installed
``mimicgen`` without MimicGen's robosuite environments counts as missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: What to run when robomimic or MimicGen is missing (one line, shown as is).
SETUP_HINT = (
    "run `make setup` without EXPO_SKIP_MIMICGEN=1 (scripts/setup_sim_extras.sh installs robomimic and "
    "NVIDIA MimicGen from pinned sources; MimicGen's licence allows non-commercial use only; "
    "see docs/mimicgen.md)"
)


class MimicGenMissing(RuntimeError):
    """robomimic or NVIDIA MimicGen is not installed (the message names the setup step)."""


def robomimic_installed() -> bool:
    """Whether robomimic is importable (without importing it)."""
    return importlib.util.find_spec("robomimic") is not None


def mimicgen_installed() -> bool:
    """Whether NVIDIA MimicGen is importable, without importing it (``find_spec`` of a submodule
    would import the package, which prints): the package and its robosuite environments, which
    PyPI's unrelated ``mimicgen`` does not have."""
    spec = importlib.util.find_spec("mimicgen")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        (Path(loc) / "envs" / "robosuite" / "threading.py").is_file()
        for loc in spec.submodule_search_locations
    )


def require_mimicgen(what: str = "this") -> None:
    """Raise :class:`MimicGenMissing` unless robomimic and MimicGen are both installed."""
    missing = [
        n
        for n, ok in (("NVIDIA MimicGen", mimicgen_installed()), ("robomimic", robomimic_installed()))
        if not ok
    ]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MimicGenMissing(
            f"{what} needs {' and '.join(missing)}, which {verb} not installed: {SETUP_HINT}"
        )


def register_envs(what: str = "this task") -> None:
    """Import MimicGen so that its environments (Stack_D0, Threading_D0, ...) are registered with
    robosuite; idempotent and cheap after the first call. MimicGen prints warnings about its
    optional robosuite_task_zoo tasks on import: they go to the debug log."""
    if not mimicgen_installed():
        raise MimicGenMissing(f"{what} needs NVIDIA MimicGen, which is not installed: {SETUP_HINT}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        import mimicgen  # noqa: F401  (registers the environments with robosuite)
    if out.getvalue().strip():
        log.debug("mimicgen import said: %s", out.getvalue().strip())
