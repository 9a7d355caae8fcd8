"""A ResNet whose last two stages are dilated instead of strided (output stride 8): the backbone of PSPNet and
DeepLab v2.

Both papers take ResNet (He et al. 2016) and remove the stride of ``layer3`` (res4) and ``layer4`` (res5),
dilating their 3x3 convolutions by 2 and 4 instead (atrous convolution), so the features stay at 1/8 of the
input while each later filter keeps the field of view it had: PSPNet Sec. 3.2 ("pretrained ResNet model with
the dilated network strategy ... the size of the final feature map is 1/8 of the input image"), DeepLab v2
Sec. 3.1 and 4 (ResNet-101, output stride 8).

* ``stem="resnet"``: the 7x7/2 conv (64) and the 3x3/2 max pool of He et al. (DeepLab v2's MSRA ResNet-101);
  ``stem="deep"``: three 3x3 convs (64/2, 64, 128) before the max pool, the ResNet of the PSPNet authors
  (their Caffe models and their PyTorch ``semseg`` code, ``deep_base``), which widens layer1's input to 128.
* Every block of a dilated stage dilates its 3x3 conv, the first one included (the authors' code for both
  papers; torchvision's ``replace_stride_with_dilation`` keeps the previous dilation in each stage's first
  block, a small difference in the field of view, none in the parameters).
* Bottleneck blocks stride on their 3x3 conv (torchvision's "v1.5"); the Caffe ResNets stride on the first
  1x1.  Only layer2 strides here, and the parameter count is the same either way.
* ``width`` is the first stage's width (64 in the paper; the stages have width x 1, 2, 4, 8 and bottleneck
  blocks expand by 4); small profiles narrow it.  ``block="basic"`` gives ResNet-18/34-style blocks
  (dilation allowed, unlike torchvision's ``BasicBlock``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STRIDES_AND_DILATIONS = ((1, 1), (2, 1), (1, 2), (1, 4))  # layer1..layer4 at output stride 8


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """``conv (no bias) -> BN -> ReLU``, padded to keep the size at stride 1."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); ``x [B, cin, H, W] -> [B, width, H/stride, W/stride]``."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(cin, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided / dilated), 1x1 expand x4 (ResNet-50/101); ``[B, cin, H, W] -> [B, 4 width, ...]``."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, dilation: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut (1x1 conv + BN) where the shape changes, else identity (``None``)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class DilatedResNet(nn.Module):
    """``x [B, 3, H, W] -> (layer3 [B, C3, H/8, W/8], layer4 [B, C4, H/8, W/8])`` (sizes rounded up).

    ``out_channels`` is ``(C3, C4)``: (1024, 2048) for ResNet-50/101 at width 64.
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 23, 3), width: int = 64,
                 stem: str = "resnet") -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"dilated resnet: block {block!r}: choose one of {sorted(BLOCKS)}")
        if len(layers) != 4 or min(layers) < 1 or width < 1:
            raise ValueError(f"dilated resnet: need 4 stages of >= 1 block and width >= 1, got {list(layers)}, "
                             f"{width}")
        if stem == "resnet":
            self.stem = conv_bn_relu(3, width, 7, stride=2)
            cin = width
        elif stem == "deep":
            self.stem = nn.Sequential(conv_bn_relu(3, width, 3, stride=2), conv_bn_relu(width, width, 3),
                                      conv_bn_relu(width, 2 * width, 3))
            cin = 2 * width
        else:
            raise ValueError(f"dilated resnet: stem {stem!r}: choose resnet or deep")
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        kind = BLOCKS[block]
        stages = []
        for i, (n, (stride, dilation)) in enumerate(zip(layers, STRIDES_AND_DILATIONS, strict=True)):
            w = width * 2**i
            blocks = [kind(cin if j == 0 else w * kind.expansion, w, stride if j == 0 else 1, dilation)
                      for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            cin = w * kind.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = (width * 4 * kind.expansion, width * 8 * kind.expansion)
        for m in self.modules():  # He et al.'s initialisation, as torchvision's ResNet
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.layer2(self.layer1(self.maxpool(self.stem(x))))
        c3 = self.layer3(x)
        return c3, self.layer4(c3)
