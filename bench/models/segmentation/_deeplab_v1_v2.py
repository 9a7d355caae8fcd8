"""DeepLab v1 (DeepLab-LargeFOV, Chen et al. 2015) and DeepLab v2 (ASPP-L on ResNet-101, Chen et al. 2017).

**DeepLab v1, LargeFOV** (arXiv:1412.7062, Sec. 3.1 and 4.1, Table 2; the authors' ``DeepLab-LargeFOV``
prototxt): VGG16's 13 convs, with

* pool1-pool3: 3x3 max pools, stride 2, pad 1;
* pool4 and pool5: 3x3 max pools at **stride 1** (pad 1), so the features stay at **output stride 8**; the
  conv5 block is dilated by 2 ("atrous", the hole algorithm of Sec. 3.1) to keep its field of view;
* ``fc6``: a 3x3 conv, dilation 12, 1024 channels (the LargeFOV subsampling of VGG's 7x7 x 4096 fc6);
  ``fc7``: 1x1, 1024; both ReLU + dropout 0.5; ``fc8``: 1x1 to the classes;
* the class scores bilinearly upsampled (x8) to the input.

**DeepLab v2** (arXiv:1606.00915, Sec. 3.1-3.2, Fig. 4, Sec. 4): ResNet-101 at output stride 8 (layer3 /
layer4 dilated by 2 / 4, ``_dilated_resnet``) and **ASPP-L**: four parallel 3x3 convs on the last features at
rates 6, 12, 18 and 24, each producing class scores, fused by summation; upsampled bilinearly.

Not reproduced: the training protocol's label subsampling (the papers compare the stride-8 scores with the
ground truth subsampled by 8; here the loss is on the upsampled scores at full resolution) and v2's
multi-scale input fusion (MSC, an optional inference/training protocol of Sec. 4.1; no parameters).  The pools
round down (PyTorch), so a 64 px input gives 8x8 features; Caffe's round-up gives ``ceil((S - 1) / 8) + 1``
(41 for its 321 px crops).  Score layers start at N(0, 0.01), zero bias (the prototxts' Gaussian filler).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bench.models.segmentation._dilated_resnet import DilatedResNet
from bench.models.segmentation._pspnet import resize, score_conv

# VGG16's conv blocks: (widths, pool stride after the block, dilation of the block's convs)
VGG16_BLOCKS: tuple[tuple[tuple[int, ...], int, int], ...] = (
    ((64, 64), 2, 1), ((128, 128), 2, 1), ((256, 256, 256), 2, 1), ((512, 512, 512), 1, 1), ((512, 512, 512), 1, 2),
)
LARGEFOV_DILATION = 12
ASPP_L_RATES = (6, 12, 18, 24)


class DeepLabV1(nn.Module):
    """``x [B, 3, H, W] -> logits [B, num_classes, H, W]`` from stride-8 scores (DeepLab-LargeFOV)."""

    def __init__(self, num_classes: int, width: float = 1.0, fc_dim: int = 1024, batch_norm: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.output_stride = 8  # read by the contract test (what this stride can draw)
        layers: list[nn.Module] = []
        cin = 3
        for widths, pool_stride, dilation in VGG16_BLOCKS:
            for w in widths:
                cout = max(1, round(w * width))
                layers.append(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(cout))
                layers.append(nn.ReLU(inplace=True))
                cin = cout
            layers.append(nn.MaxPool2d(3, pool_stride, padding=1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Conv2d(cin, fc_dim, 3, padding=LARGEFOV_DILATION, dilation=LARGEFOV_DILATION),  # fc6
            nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(fc_dim, fc_dim, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),  # fc7
        )
        self.fc8 = score_conv(fc_dim, num_classes)
        for m in [*self.features, *self.fc]:  # random init (the paper fine-tunes ImageNet VGG16)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(self.fc8(self.fc(self.features(x))), x)


class ASPP(nn.Module):
    """ASPP-L: ``x [B, C, h, w] -> [B, num_classes, h, w]``, the sum of one 3x3 class-score conv per rate."""

    def __init__(self, cin: int, num_classes: int, rates: Sequence[int] = ASPP_L_RATES) -> None:
        super().__init__()
        self.rates = tuple(rates)
        self.branches = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in self.rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([branch(x) for branch in self.branches]).sum(0)


class DeepLabV2(nn.Module):
    """``x [B, 3, H, W] -> logits [B, num_classes, H, W]``: dilated ResNet (stride 8), ASPP-L, bilinear up."""

    def __init__(self, num_classes: int, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 23, 3),
                 width: int = 64, rates: Sequence[int] = ASPP_L_RATES) -> None:
        super().__init__()
        self.output_stride = 8
        self.backbone = DilatedResNet(block, layers, width, stem="resnet")
        self.aspp = ASPP(self.backbone.out_channels[1], num_classes, rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(self.aspp(self.backbone(x)[1]), x)
