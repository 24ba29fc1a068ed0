"""EXPO's import-only stand-in for torchvision.

robomimic imports torchvision when its model modules load (``robomimic/models/base_nets.py``:
``from torchvision import transforms, models``; ``obs_core.py``: ``from torchvision.transforms
import Lambda, Compose`` and ``torchvision.transforms.functional``), and ``robomimic.utils.file_utils``,
which MimicGen and robomimic's dataset tools import, loads those modules. PyPI's torchvision for
our CPU torch 2.13.0 (0.28.0) is a CUDA build that fails to import next to it ("operator
torchvision::nms does not exist"). Low-dim robomimic (SequenceDataset, EnvUtils, obs utils) and
MimicGen's data generation never call torchvision, so this package only has to import.

Every name resolves to a placeholder; using one (``models.resnet18(...)``, ``transforms.Resize(...)``,
``Lambda(...)``, ``functional.adjust_hue(...)``) raises :class:`TorchvisionStandInError` (an
ImportError) that names the real fix: ``pip install torch==2.14.1 torchvision==0.29.1``.
``__version__`` says what this is; ``torchvision.EXPO_STANDIN`` is True.
"""

from torchvision import models, transforms
from torchvision._standin import FIX, TorchvisionStandInError, module_getattr

__version__ = "0.0.0+expo.standin"
EXPO_STANDIN = True

__all__ = ["EXPO_STANDIN", "FIX", "TorchvisionStandInError", "models", "transforms"]


def __getattr__(name: str):
    return module_getattr(__name__, name)
