"""A ResNet-18 defined here, key-for-key compatible with torchvision's, and strict local weight loading.

torchvision cannot be imported next to this project's CPU torch (FACTS.md), yet users bring
ImageNet ResNet-18 weights saved with ``torch.save(torchvision.models.resnet18(...).state_dict())``.
:class:`ResNet18` has exactly the parameter and buffer names and shapes of that state_dict (122
entries, 11,689,512 parameters, the ``fc`` classifier included so strict loading works; the image
encoder uses only :meth:`ResNet18.forward_features`).

:func:`load_state_dict_file` reads a local ``.pt``/``.pth`` (``torch.load`` with
``weights_only=True``: no pickled code runs) or ``.safetensors`` file and loads it with strict key
and shape checks. It never downloads: a URL is rejected.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from torch import nn


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)), torchvision's names."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ResNet18(nn.Module):
    """torchvision ``resnet18`` layout. ``width`` 64 is the real network; tests use a narrow one
    (same key names, smaller shapes) to keep their weight files small."""

    def __init__(self, width: int = 64, num_classes: int = 1000) -> None:
        super().__init__()
        widths = (width, 2 * width, 4 * width, 8 * width)
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = width
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.out_channels = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of :meth:`forward_features` for an input of ``height`` x ``width``."""
        hw = [height, width]
        for k, s, p in ((7, 2, 3), (3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 1)):  # conv1, pool, layer2-4
            hw = [_conv_out(v, k, s, p) for v in hw]
        return self.out_channels, hw[0], hw[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalized float -> (B, 8 * width, ~H/32, ~W/32) layer4 feature map."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier, as torchvision's (only to check a loaded file against its source)."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            sd = load_safetensors(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, SafetensorError) as e:
        raise ValueError(f"{path}: not a readable weights file ({type(e).__name__}: {e})") from e
    if not isinstance(sd, dict) or not all(isinstance(k, str) for k in sd):
        raise ValueError(f"{path}: expected a state_dict (dict of name -> tensor), got {type(sd).__name__}")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        hint = " (a wrapped checkpoint? save model.state_dict() itself)" if "state_dict" in sd else ""
        raise ValueError(f"{path}: entries that are not tensors: {bad[:8]}{hint}")
    return sd


def check_state_dict(module: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise ValueError listing missing keys, unexpected keys and shape mismatches (first 8 each)."""
    want = module.state_dict()
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    shapes = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in want.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys {missing[:8]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys {unexpected[:8]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches {shapes[:8]}")
        if any(k.startswith("module.") for k in unexpected):
            parts.append("keys carry a 'module.' prefix (DataParallel): strip it before saving")
        raise ValueError(f"{source} does not match {type(module).__name__}: " + "; ".join(parts))


def load_state_dict_file(module: nn.Module, path: str | os.PathLike) -> None:
    """Load a local weights file into ``module`` with strict key and shape checks.

    ``.safetensors`` via safetensors, anything else via ``torch.load(weights_only=True)``.
    Raises FileNotFoundError (no such file), ValueError (a URL, an unreadable file, not a
    state_dict, or keys/shapes that do not match ``module``).
    """
    if "://" in str(path):
        raise ValueError(f"weights path {str(path)!r} is a URL; only local files are loaded (no downloads)")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {str(p)!r} does not exist")
    sd = _read_state_dict(p)
    check_state_dict(module, sd, str(p))
    module.load_state_dict(sd, strict=True)
