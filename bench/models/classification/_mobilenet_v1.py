"""MobileNet v1 (Howard et al. 2017, arXiv:1704.04861), written from the paper's Table 1.

A 3x3 stride-2 conv, then 13 depthwise-separable layers (3x3 depthwise conv, BN, ReLU, 1x1
pointwise conv, BN, ReLU; Fig. 3), global average pooling and one FC layer.  The width multiplier
alpha thins every layer uniformly (Sec. 3.2): M input channels become alpha*M, N outputs alpha*N;
the resolution multiplier rho is the input size (``image_size``).
"""

from __future__ import annotations

import torch
from torch import nn

STEM_CHANNELS = 32
# (stride of the depthwise conv, pointwise output channels) of the 13 depthwise-separable layers,
# Table 1.  The table prints "Conv dw / s2" for the last one but keeps the 7x7 map; it is stride 1,
# as in the authors' TF-slim implementation.
LAYERS = (
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),
    (2, 1024), (1, 1024),
)
# The authors' implementation never thins a layer below 8 channels (TF-slim `min_depth`).
MIN_CHANNELS = 8


def scaled(channels: int, width: float) -> int:
    """``channels`` thinned by the width multiplier alpha (floor, at least ``MIN_CHANNELS``)."""
    return max(MIN_CHANNELS, int(channels * width))


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BN -> ReLU; ``groups == in_channels`` makes it depthwise."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv (stride ``stride``) + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.depthwise = ConvBNReLU(cin, cin, 3, stride, groups=cin)
        self.pointwise = ConvBNReLU(cin, cout, 1)


class MobileNetV1(nn.Module):
    """``x [B, 3, S, S] -> logits [B, K]``; total stride 32 (7x7 final map at 224 px)."""

    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        cin = scaled(STEM_CHANNELS, width)
        layers: list[nn.Module] = [ConvBNReLU(3, cin, 3, stride=2)]
        for stride, channels in LAYERS:
            cout = scaled(channels, width)
            layers.append(DepthwiseSeparable(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.bench_head = "fc"
        self.bench_stages = tuple(f"features.{i}" for i in range(len(layers)))
        self._init_weights()

    def _init_weights(self) -> None:
        # He init for the ReLU convs (fan-out, as torchvision's MobileNets), small normal for the FC.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))
