"""Stand-in for ``torchvision.transforms``: ``Lambda``, ``Compose`` and every other transform
import, and raise when instantiated."""

from torchvision._standin import Missing, module_getattr
from torchvision.transforms import functional

Lambda = Missing("transforms.Lambda")
Compose = Missing("transforms.Compose")

__all__ = ["Compose", "Lambda", "functional"]


def __getattr__(name: str):
    return module_getattr(__name__, name)
