"""A Feature Pyramid Network (Lin et al. 2017, arXiv:1612.03144) used as a classifier.

Imported by the builder in ``fpn_classifier.py``.  The bottom-up pathway is a torchvision ResNet
(C2..C5 = outputs of layer1..layer4, strides 4..32); the top-down pathway starts from a 1x1
lateral conv on C5 and, level by level, upsamples the coarser map 2x (nearest neighbour) and adds
the 1x1 lateral conv of the finer C_i; a 3x3 conv on each merged map gives P2..P5 (d channels,
no non-linearity, as in the paper).  For classification (the guide's reading of FPN) every level is
global-average-pooled, the four d-vectors concatenated and fed to one linear classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# The ResNet stages FPN reads (C2..C5) and the stem that precedes them, in torchvision's names;
# keeping the names means a torchvision ResNet state dict loads straight into the backbone.
STEM = ("conv1", "bn1", "relu", "maxpool")
LEVELS = ("layer1", "layer2", "layer3", "layer4")


def upsample_to(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsampling of ``top [B, d, h, w]`` to the lateral's size ``[B, d, ~2h, ~2w]``.

    With inputs divisible by 32 this is exactly the paper's 2x nearest upsampling; otherwise (a
    28 px MNIST digit gives C2..C5 of 7, 4, 2, 1) the finer map is not exactly twice the coarser
    one and nearest resizing to its size is the same operation, as in Detectron and torchvision.
    """
    return F.interpolate(top, size=lateral.shape[-2:], mode="nearest")


class TopDown(nn.Module):
    """FPN's top-down pathway with lateral connections: ``[C2..C5] -> [P2..P5]``, each ``d`` channels."""

    def __init__(self, in_channels: Sequence[int], d: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, d, kernel_size=1) for c in in_channels)
        # 3x3 on each merged map "to reduce the aliasing effect of upsampling" (paper, Sec. 3).
        self.smooth = nn.ModuleList(nn.Conv2d(d, d, kernel_size=3, padding=1) for _ in in_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``feats``: C2..C5, fine to coarse; returns P2..P5 at the same resolutions."""
        merged = [self.lateral[-1](feats[-1])]
        for lat, c in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            lateral = lat(c)
            merged.append(lateral + upsample_to(merged[-1], lateral))
        merged.reverse()  # fine to coarse again
        return [smooth(m) for smooth, m in zip(self.smooth, merged, strict=True)]


class FPNClassifier(nn.Module):
    """ResNet bottom-up + FPN top-down; P2..P5 each pooled, concatenated, one linear classifier.

    ``x: [B, 3, S, S]`` -> logits ``[B, num_classes]``.
    """

    def __init__(self, backbone: nn.Module, in_channels: Sequence[int], num_classes: int, d: int = 256) -> None:
        super().__init__()
        for name in STEM + LEVELS:
            self.add_module(name, getattr(backbone, name))
        self.fpn = TopDown(in_channels, d)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(d * len(in_channels), num_classes)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: [B, 3, S, S]`` -> ``[P2, P3, P4, P5]``, ``P_i: [B, d, S / 2**i, S / 2**i]``."""
        for name in STEM:
            x = getattr(self, name)(x)
        feats = []
        for name in LEVELS:
            x = getattr(self, name)(x)
            feats.append(x)
        return self.fpn(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [self.pool(p).flatten(1) for p in self.pyramid(x)]  # 4 x [B, d]
        return self.fc(torch.cat(pooled, dim=1))                     # [B, 4d] -> [B, K]
