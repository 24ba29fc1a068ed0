"""What every name of the stand-in resolves to: a placeholder that raises when it is used."""

from __future__ import annotations

from typing import Any, NoReturn

FIX = (
    "pip install torch==2.14.1 torchvision==0.29.1 (a CUDA build, ~5.6 GB, that runs on the CPU; it "
    "replaces this stand-in and the pinned CPU torch 2.13.0)"
)


class TorchvisionStandInError(ImportError):
    """Raised when code uses a torchvision feature; an ImportError, as if torchvision were absent."""


def missing(name: str) -> NoReturn:
    raise TorchvisionStandInError(
        f"torchvision.{name} is not available: this torchvision is EXPO's import-only stand-in "
        "(installed by scripts/setup_sim_extras.sh because no CPU torchvision matches torch 2.13.0; "
        "robomimic imports torchvision at import time, low-dim robomimic and MimicGen never call it). "
        f"robomimic's ResNet image encoders and color randomizers need the real one: {FIX}. "
        "See docs/mimicgen.md."
    )


class Missing:
    """A torchvision name. Importing it works; calling, instantiating or reading an attribute of
    it raises :class:`TorchvisionStandInError` naming the fix."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        missing(self._name)

    def __getattr__(self, attr: str) -> NoReturn:
        if attr.startswith("__"):
            raise AttributeError(attr)
        missing(f"{self._name}.{attr}")

    def __repr__(self) -> str:
        return f"<torchvision stand-in for {self._name}>"


def module_getattr(module: str, name: str) -> Missing:
    """A module-level ``__getattr__``: every public name is a :class:`Missing` placeholder."""
    if name.startswith("__"):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    prefix = module.removeprefix("torchvision").lstrip(".")
    return Missing(f"{prefix}.{name}" if prefix else name)
