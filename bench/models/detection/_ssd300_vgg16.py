"""SSD300's VGG-16 feature extractor (Liu et al. 2016, Fig. 2), torchvision's ``SSDFeatureExtractorVGG``
layout with two knobs torchvision hard-codes: a width multiplier and the normalisation.

Six maps: conv4_3 (L2-normalised, learned scale 20, ParseNet), fc7 (fc6 as a 3x3 conv dilated 6 after a
stride-1 pool5), conv8_2, conv9_2 (3x3 stride 2), conv10_2, conv11_2 (3x3 valid): 38, 19, 10, 5, 3, 1 at
300 px.  At width 1 without normalisation the parameters are torchvision's exactly.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.vgg import make_layers

VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
NORMS = ("none", "bn")


def scaled(channels: int, width: float) -> int:
    """``channels x width``, at least 8."""
    return max(8, round(channels * width))


def conv_block(cin: int, cout: int, norm: str, **conv: int) -> list[nn.Module]:
    """conv (+ BatchNorm with ``norm: bn``) + ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, **conv)]
    return [*layers, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)] if norm == "bn" else [*layers, nn.ReLU(inplace=True)]


def map_sizes(image_size: int) -> list[int]:
    """Side of each of the six maps at ``image_size`` (the paper's valid 3x3 convs where there is room)."""
    s = image_size // 2 // 2
    conv4_3 = math.ceil(s / 2)  # pool3 in ceil mode (75 -> 38 at 300 px)
    fc7 = conv4_3 // 2
    conv8 = math.ceil(fc7 / 2)
    conv9 = math.ceil(conv8 / 2)
    conv10 = conv9 - 2 if conv9 >= 3 else conv9
    conv11 = conv10 - 2 if conv10 >= 3 else conv10
    return [conv4_3, fc7, conv8, conv9, conv10, conv11]


class SSDVGG16(nn.Module):
    """VGG-16 trunk + fc6/fc7 + four extra blocks -> ``OrderedDict`` "0".."5" of ``[B, C_k, s_k, s_k]``.

    ``width`` scales every channel count (1: 512/1024/512/256/256/256 out); ``norm`` ``none`` (the paper,
    torchvision) or ``bn`` (BatchNorm after every conv: training from scratch, as in DSOD, needs it).
    conv10_2 / conv11_2 are 3x3 *valid* convs (5 -> 3 -> 1 at 300 px); below ~270 px their input is under
    3x3, and there they pad by 1 instead (same weights, the map keeps its size): a smaller input keeps all
    six levels.
    """

    def __init__(self, image_size: int, width: float = 1.0, norm: str = "none") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"ssd300_vgg16: unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        c = {k: scaled(k, width) for k in (128, 256, 512, 1024)}
        trunk = make_layers([v if v == "M" else scaled(int(v), width) for v in VGG16_CFG], batch_norm=norm == "bn")
        pools = [i for i, m in enumerate(trunk) if isinstance(m, nn.MaxPool2d)]
        trunk[pools[2]].ceil_mode = True  # 75 -> 38, as the paper's Caffe pooling
        self.features = nn.Sequential(*trunk[:pools[3]])  # conv1_1 .. conv4_3 (+ ReLU)
        self.scale_weight = nn.Parameter(torch.ones(c[512]) * 20)  # ParseNet's learned L2-norm scale
        sizes = map_sizes(image_size)
        if min(sizes) < 1:
            raise ValueError(f"ssd300_vgg16: image_size {image_size} is too small for the six SSD levels "
                             f"(map sides {sizes}); use at least 64 px")
        fc = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),  # pool5 at stride 1
            *conv_block(c[512], c[1024], norm, kernel_size=3, padding=6, dilation=6),  # fc6, atrous
            *conv_block(c[1024], c[1024], norm, kernel_size=1),  # fc7
        )
        pad10, pad11 = int(sizes[3] < 3), int(sizes[4] < 3)
        extras = [
            nn.Sequential(*conv_block(c[1024], c[256], norm, kernel_size=1),
                          *conv_block(c[256], c[512], norm, kernel_size=3, padding=1, stride=2)),  # conv8_2
            nn.Sequential(*conv_block(c[512], c[128], norm, kernel_size=1),
                          *conv_block(c[128], c[256], norm, kernel_size=3, padding=1, stride=2)),  # conv9_2
            nn.Sequential(*conv_block(c[256], c[128], norm, kernel_size=1),
                          *conv_block(c[128], c[256], norm, kernel_size=3, padding=pad10)),  # conv10_2
            nn.Sequential(*conv_block(c[256], c[128], norm, kernel_size=1),
                          *conv_block(c[128], c[256], norm, kernel_size=3, padding=pad11)),  # conv11_2
        ]
        for block in (fc, *extras):
            xavier(block)
        for m in self.features.modules():  # torchvision's VGG init (He, fan-out)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.extra = nn.ModuleList([nn.Sequential(*trunk[pools[3]:-1], fc), *extras])  # pool4 .. conv5_3, fc
        self.out_channels = [c[512], c[1024], c[512], c[256], c[256], c[256]]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: [B, 3, S, S] normalised -> {"0": conv4_3 (L2-normalised x scale), "1": fc7, "2".."5": extras}."""
        x = self.features(x)
        out = [self.scale_weight.view(1, -1, 1, 1) * F.normalize(x)]
        for block in self.extra:
            x = block(x)
            out.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(out))


def xavier(module: nn.Module) -> None:
    """Xavier-uniform weights, zero biases (the SSD reference code's init for its new layers)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
