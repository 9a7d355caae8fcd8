"""PSPNet (Zhao et al. 2017, Pyramid Scene Parsing Network, arXiv:1612.01105), the layout of the authors' code.

* backbone: a dilated ResNet at output stride 8 (``_dilated_resnet``; Sec. 3.2), by default with the authors'
  deep 3x3 stem;
* **pyramid pooling module** (Sec. 3.2, Fig. 3): the last features ``[B, C, h, w]`` average-pooled to 1x1, 2x2,
  3x3 and 6x6 bins (adaptive pooling), each reduced by a 1x1 conv (+ BN + ReLU) to ``C / 4`` channels ("1/N of
  the original dimension" for N = 4 levels), upsampled bilinearly to ``h x w`` and concatenated with the
  features (``2C`` channels);
* a 3x3 conv to 512 (+ BN + ReLU, dropout 0.1) and the 1x1 classifier (the authors' ``conv5_4`` / ``conv6``);
  the class scores upsampled bilinearly to the input;
* **auxiliary head** (Sec. 3.3, Fig. 4) on the res4b22 / ``layer3`` features: 3x3 conv to 256 (+ BN + ReLU,
  dropout 0.1), 1x1 classifier, upsampled; its loss is weighted 0.4 (Sec. 4.1) and it runs in training only.

Both classifiers start at N(0, 0.01) weights and zero bias (Caffe's Gaussian filler for score layers), so
training starts near the uniform prediction (what the contract's initial-loss check expects).  The bilinear
resizes use ``align_corners=False`` (PyTorch's convention; the authors' Caffe ``Interp`` aligns corners).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.segmentation._dilated_resnet import DilatedResNet, conv_bn_relu


def score_conv(cin: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 class-score conv drawn N(0, 0.01), zero bias: logits start near 0 (near the uniform prediction)."""
    conv = nn.Conv2d(cin, num_classes, 1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return conv


def resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x [B, C, h, w]`` bilinearly resized to ``like``'s spatial size."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """``x [B, C, h, w] -> [B, C + len(bins) * reduced, h, w]``: the features and, per bin count ``b``, the
    features average-pooled to ``b x b``, reduced by a 1x1 conv + BN + ReLU and upsampled back bilinearly."""

    def __init__(self, cin: int, bins: Sequence[int], reduced: int) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), *conv_bn_relu(cin, reduced, 1)) for b in self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, *(resize(stage(x), x) for stage in self.stages)], 1)


class PSPNet(nn.Module):
    """``x [B, 3, H, W] -> logits [B, num_classes, H, W]``; in training with ``aux``, ``{"out": logits,
    "aux": aux logits}`` (the engine weights the second by ``aux_weight``)."""

    def __init__(self, num_classes: int, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 23, 3),
                 width: int = 64, stem: str = "deep", bins: Sequence[int] = (1, 2, 3, 6), head_channels: int = 512,
                 aux: bool = True, aux_channels: int = 256, aux_weight: float = 0.4, dropout: float = 0.1) -> None:
        super().__init__()
        self.output_stride = 8  # dilated backbone; read by the contract test (what this stride can draw)
        self.aux_weight = aux_weight
        self.backbone = DilatedResNet(block, layers, width, stem)
        c3, c4 = self.backbone.out_channels
        if c4 < len(bins):
            raise ValueError(f"pspnet: {c4} backbone channels cannot be split over {len(bins)} pyramid levels")
        self.ppm = PyramidPooling(c4, bins, c4 // len(bins))
        self.head = nn.Sequential(conv_bn_relu(c4 + len(bins) * (c4 // len(bins)), head_channels, 3),
                                  nn.Dropout2d(dropout))
        self.classifier = score_conv(head_channels, num_classes)
        self.aux = nn.Sequential(conv_bn_relu(c3, aux_channels, 3), nn.Dropout2d(dropout),
                                 score_conv(aux_channels, num_classes)) if aux else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        c3, c4 = self.backbone(x)
        out = resize(self.classifier(self.head(self.ppm(c4))), x)
        if self.training and self.aux is not None:
            return {"out": out, "aux": resize(self.aux(c3), x)}
        return out
