"""torchvision's ResNet as a segmentation trunk: stage widths scalable, stages 3 and 4 dilatable, no classifier.

Shared by DeepLab v3 (a dilated trunk, output stride 8) and FastFCN (a plain strided trunk, output stride 32).

* ``width`` scales the stem and the four stages' channels (64, 128, 256, 512; x4 out of a Bottleneck); at 1.0 the
  trunk is torchvision's ``resnet18/34/50/101`` exactly, less ``avgpool``/``fc`` (``test_deeplab_v3_fastfcn`` checks
  the parameter count and the state-dict layout against torchvision's).
* ``dilate`` (for layer2, layer3, layer4) replaces that stage's stride 2 with dilation 2 (doubling on from the
  previous stage), as torchvision's ``replace_stride_with_dilation``.  torchvision implements that only for the
  Bottleneck (ResNet-50/101: its ``_make_layer`` is used as is).  Its BasicBlock (ResNet-18/34) raises on a dilation,
  so for those the stage is built with stride 1 and the dilation is set here on the two 3x3 convs of each block
  (padding = dilation, so the map keeps its size), following the Bottleneck's convention: the stage's first block
  keeps the previous dilation (it is where the stride was), the others use the new one.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)


def check_backbone(name: str, width: float, where: str) -> None:
    """Raise a clear error for an unknown trunk name or a non-positive width."""
    if name not in SPECS:
        raise ValueError(f"{where}: backbone {name!r} unknown; choose one of {', '.join(SPECS)}")
    if width <= 0:
        raise ValueError(f"{where}: backbone_width must be > 0, got {width}")


def _set_dilation(conv: nn.Conv2d, dilation: int) -> None:
    """A 3x3 conv at ``dilation`` with "same" padding."""
    conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)


class ResNetTrunk(nn.Module):
    """``x [B, 3, H, W]`` through conv1, bn1, relu, maxpool, layer1..layer4 (children in that order, so
    torchvision's ``IntermediateLayerGetter`` can return any stages); ``channels``: the four stages' widths."""

    _make_layer = ResNet._make_layer  # torchvision's, reading the attributes set in __init__

    def __init__(self, name: str = "resnet50", width: float = 1.0,
                 dilate: tuple[bool, bool, bool] = (False, False, False)) -> None:
        super().__init__()
        check_backbone(name, width, "resnet trunk")
        block, layers = SPECS[name]
        planes = [max(1, round(c * width)) for c in STAGE_WIDTHS]
        self._norm_layer, self.groups, self.base_width, self.dilation = nn.BatchNorm2d, 1, 64, 1
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._stage(block, planes[1], layers[1], dilate[0])
        self.layer3 = self._stage(block, planes[2], layers[2], dilate[1])
        self.layer4 = self._stage(block, planes[3], layers[3], dilate[2])
        self.channels = tuple(p * block.expansion for p in planes)
        # torchvision's ResNet initialisation (zero_init_residual=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _stage(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
               dilate: bool) -> nn.Sequential:
        """A stride-2 stage, or (``dilate``) a stride-1 stage whose 3x3 convs are dilated instead."""
        if block is Bottleneck or not dilate:
            return self._make_layer(block, planes, blocks, stride=2, dilate=dilate)
        previous, self.dilation = self.dilation, 1  # BasicBlock refuses dilation > 1: build at 1, dilate below
        stage = self._make_layer(block, planes, blocks, stride=1)
        self.dilation = previous * 2
        for i, b in enumerate(stage):
            for conv in (b.conv1, b.conv2):
                _set_dilation(conv, previous if i == 0 else self.dilation)
        return stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, H, W] -> layer4 features [B, channels[3], H/s, W/s]`` (s = 32 / 2^(dilated stages))."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
