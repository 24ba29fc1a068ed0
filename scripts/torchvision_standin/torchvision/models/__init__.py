"""Stand-in for ``torchvision.models``: every model constructor raises when called."""

from torchvision._standin import module_getattr


def __getattr__(name: str):
    return module_getattr(__name__, name)
